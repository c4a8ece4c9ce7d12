"""The sample customer 360: three related tables of invented customers, built inside DuckDB.

`generate` writes the tables of SPEC §1 — a profile table (``customer_360``), a source table
(``merged_customers``) and an order table (``unified_transactions``) — for any number of
customers, relative to a given day. Rows are never built in Python: each table is one
``CREATE OR REPLACE TABLE … AS SELECT`` over a temporary table of customer numbers, dropped at
the end.

Every random choice is ``hash(seed, key, salt)``: the seed, the row's key (customer number, or
customer number × 64 + order number for an order) and a salt naming the field. DuckDB's ``hash``
is a pure function, so the same seed and day give the same tables whatever the thread count,
where ``random()`` would depend on how rows are spread over threads. Inside the SQL below,
``H(salt)`` is shorthand for that hash, ``U(salt)`` for a uniform draw in [0, 1) made from it
and ``PICK(salt, $list)`` for a uniform pick from a bound list; `_expand` rewrites them before
the text reaches DuckDB.

Lifetime and RFM figures are aggregated from the finished order table, in SQL, with returns and
cancellations left out, so they agree with behavioural conditions evaluated on the same orders.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlglot import exp

from audience.demo import vocabulary as vocab

__all__ = ["SampleTables", "generate"]


@dataclass(frozen=True)
class SampleTables:
    """Names of the three sample tables and of the customer id column they share."""

    profile: str = "customer_360"
    source: str = "merged_customers"
    events: str = "unified_transactions"
    id: str = "amperity_id"


# One row per customer. Column `k` is the hashing key (the customer number, 0-based); later
# aliases may use earlier ones, which DuckDB allows within one SELECT list.
_PEOPLE = """
    SELECT
        k,
        -- a version-4 UUID: 62 hashed bits make it look random, and its last 48 bits are an
        -- affine map of k modulo 2^48 with an odd factor, a bijection, so no two ids collide
        ((((H(id) & 18446744073709490175::UBIGINT) | 16384::UBIGINT)::UHUGEINT << 64)
            | (9223372036854775808::UBIGINT | ((H(id_low) & 16383::UBIGINT) << 48)
               | ((k::UBIGINT * 6364136223 + hash(hash($seed::BIGINT, 'id')))
                  & 281474976710655::UBIGINT))::UHUGEINT
        )::UUID::VARCHAR AS amperity_id,
        CASE WHEN U(gender) < 0.52 THEN 'F' WHEN U(gender) < 0.98 THEN 'M' ELSE 'U' END AS gender,
        CASE WHEN U(tier) < 0.55 THEN 'none' WHEN U(tier) < 0.80 THEN 'silver'
             WHEN U(tier) < 0.95 THEN 'gold' ELSE 'platinum' END AS loyalty_tier,
        1 + CASE gender
            WHEN 'F' THEN floor(U(given) * $female_count)
            WHEN 'M' THEN $female_count + floor(U(given) * (len($given_names) - $female_count))
            ELSE floor(U(given) * len($given_names))
        END::BIGINT AS given_index,
        1 + floor(U(surname) * len($surnames))::BIGINT AS surname_index,
        $given_names[given_index] AS given_name,
        $surnames[surname_index] AS surname,
        $given_keys[given_index] AS given_key,
        $surname_keys[surname_index] AS surname_key,
        CASE
            WHEN U(email_form) < 0.35 THEN given_key || '.' || surname_key
            WHEN U(email_form) < 0.55 THEN given_key[1] || surname_key
            WHEN U(email_form) < 0.70 THEN given_key || surname_key
            WHEN U(email_form) < 0.80 THEN given_key || '_' || surname_key
            WHEN U(email_form) < 0.90 THEN surname_key || given_key[1]
            ELSE given_key
        END AS email_local,
        $email_domains[PICK(email_domain, $email_domain_pick)] AS email_domain,
        U(email_missing) < 0.04 AS email_missing,
        PICK(city, $city_pick) AS city_index,
        CASE WHEN U(phone_missing) >= 0.06 THEN $city_area_codes[city_index] || '-555-01'
            || lpad(floor(U(phone) * 100)::INTEGER::VARCHAR, 2, '0') END AS phone,
        (1 + floor(pow(U(house), 1.6) * 9998))::INTEGER::VARCHAR || ' '
            || PICK(street, $street_names) || ' ' || PICK(street_suffix, $street_suffixes)
            AS address,
        CASE
            WHEN U(address2) >= 0.15 THEN NULL
            WHEN U(address2_form) < 0.40 THEN 'Apt ' || (1 + floor(U(unit) * 20))::INTEGER
                || substr('ABCDEF', 1 + floor(U(unit_letter) * 6)::INTEGER, 1)
            WHEN U(address2_form) < 0.65 THEN 'Apt ' || (1 + floor(U(unit) * 40))::INTEGER
            WHEN U(address2_form) < 0.85 THEN 'Unit ' || (100 + floor(U(unit) * 400))::INTEGER
            WHEN U(address2_form) < 0.95 THEN 'Suite ' || (100 + floor(U(unit) * 800))::INTEGER
            ELSE '#' || (1 + floor(U(unit) * 30))::INTEGER
        END AS address2,
        $city_names[city_index] AS city,
        $city_states[city_index] AS state,
        lpad(($city_zip_lows[city_index] + floor(U(postal) * ($city_zip_highs[city_index]
            - $city_zip_lows[city_index] + 1))::INTEGER)::VARCHAR, 5, '0') AS postal,
        'US' AS country,
        -- ages 18 to 85 on `today`, peaking in the early forties
        ($today::DATE - INTERVAL 18 YEAR)::DATE AS youngest,
        ($today::DATE - INTERVAL 86 YEAR)::DATE + 1 AS oldest,
        youngest - floor(pow((U(age) + U(age_2)) / 2, 1.5) * (youngest - oldest + 1))::INTEGER
            AS birthdate,
        CASE WHEN U(email_opt_out) >= 0.02 THEN U(email_opt_out) < 0.14 END AS email_opt_out,
        CASE WHEN U(sms_opt_out) >= 0.02 THEN U(sms_opt_out) < 0.32 END AS sms_opt_out,
        ($today::DATE - INTERVAL 5 YEAR) + to_seconds(floor(U(created) * (
            epoch($today::DATE::TIMESTAMP) - epoch($today::DATE - INTERVAL 5 YEAR)))::BIGINT
        ) AS created_at,
        -- orders fall on whole days after the sign-up day, within 3 years, before today
        greatest(created_at::DATE + 1, ($today::DATE - INTERVAL 3 YEAR)::DATE) AS first_day,
        $today::DATE - first_day AS order_days,
        -- loyal tiers buy more often; order counts are geometric, capped at 40
        CASE
            WHEN order_days <= 0 THEN 0
            WHEN U(no_orders) < CASE loyalty_tier WHEN 'none' THEN 0.22 WHEN 'silver' THEN 0.10
                                                  WHEN 'gold' THEN 0.05 ELSE 0.02 END THEN 0
            ELSE least(40, 1 + floor(ln(1 - U(orders)) / ln(1 - 1 / CASE loyalty_tier
                WHEN 'none' THEN 4.5 WHEN 'silver' THEN 6.5 WHEN 'gold' THEN 8.0 ELSE 12.0 END)))
        END::INTEGER AS order_count
    FROM {keys}
"""

_EVENTS = """
CREATE OR REPLACE TABLE {events} AS
WITH people AS ({people}),
orders AS (
    SELECT amperity_id, k AS person, city_index, first_day, order_days,
        unnest(range(order_count)) AS order_number
    FROM people
),
drawn AS (
    SELECT
        *,
        person * 64 + order_number AS k,
        CASE WHEN U(channel) < 0.60 THEN 'online' ELSE 'store' END AS channel,
        PICK(category, $category_pick) AS category_index,
        PICK(quantity, $quantity_pick) AS quantity,
        -- uniform over the customer's days; later sign-ups make recent months busier
        first_day + floor(order_days * U(day))::INTEGER AS order_day,
        -- stores open 10:00-21:00; online orders come at any hour
        CASE channel WHEN 'online' THEN floor(U(time) * 86400)
                     ELSE 36000 + floor(U(time) * 39600) END::BIGINT AS second_of_day,
        sqrt(-2 * ln(1 - U(price))) * cos(2 * pi() * U(price_2)) AS price_z
    FROM orders
)
SELECT
    amperity_id::VARCHAR AS {id},
    -- at most 40 orders per customer, so this numbering never repeats
    ('ORD' || lpad((person * 40 + order_number + 1)::VARCHAR, 10, '0'))::VARCHAR AS order_id,
    (order_day::TIMESTAMP + to_seconds(second_of_day))::TIMESTAMP AS order_datetime,
    round(least(800, greatest(5, $category_prices[category_index] * pow(quantity, 0.85)
        * exp(0.55 * price_z))), 2)::DECIMAL(12, 2) AS order_revenue,
    quantity::INTEGER AS order_quantity,
    $categories[category_index]::VARCHAR AS product_category,
    $brands[PICK(brand, $brand_pick)]::VARCHAR AS brand,
    channel::VARCHAR AS channel,
    -- most store visits are to the customer's home-city store
    CASE WHEN channel = 'store' THEN 'S' || lpad(CASE WHEN U(store) < 0.85 THEN city_index
        ELSE PICK(other_store, $city_pick) END::VARCHAR, 3, '0') END::VARCHAR AS store_id,
    U(status) < 0.05 AS is_return,
    U(status) >= 0.05 AND U(status) < 0.07 AS is_cancellation
FROM drawn
"""

_PROFILE = """
CREATE OR REPLACE TABLE {profile} AS
WITH people AS NOT MATERIALIZED ({people}),
-- most addresses are name-based; a running number after the first keeps every address unique.
-- Numbering by a hash of the address only shares numbers between clashing hashes, which keeps
-- them unique, and a narrow side table joined back by `k` keeps the rows in customer order.
numbered AS (
    SELECT k, row_number() OVER (PARTITION BY hash(email_local, email_domain) ORDER BY k) AS email_n
    FROM people
),
valid AS (
    SELECT {id} AS id, order_datetime, order_revenue,
        order_datetime >= $today::DATE - INTERVAL 1 YEAR AS recent
    FROM {events}
    WHERE NOT is_return AND NOT is_cancellation
),
totals AS (
    SELECT id,
        min(order_datetime)::DATE AS first_order_date,
        max(order_datetime)::DATE AS last_order_date,
        count(*) AS lifetime_order_count,
        sum(order_revenue) AS lifetime_revenue,
        max(order_datetime) FILTER (WHERE recent) AS recent_at,
        count(*) FILTER (WHERE recent) AS recent_orders,
        sum(order_revenue) FILTER (WHERE recent) AS recent_revenue
    FROM valid
    GROUP BY id
),
-- deciles among customers with a valid order in the last 12 months; the id breaks ties
scored AS (
    SELECT id,
        ntile(10) OVER (ORDER BY recent_at, id) AS rfm_recency,
        ntile(10) OVER (ORDER BY recent_orders, id) AS rfm_frequency,
        ntile(10) OVER (ORDER BY recent_revenue, id) AS rfm_monetary
    FROM totals
    WHERE recent_orders > 0
)
SELECT
    p.amperity_id::VARCHAR AS {id},
    p.given_name::VARCHAR AS given_name,
    p.surname::VARCHAR AS surname,
    CASE WHEN NOT p.email_missing THEN p.email_local
        || CASE WHEN n.email_n > 1 THEN n.email_n::VARCHAR ELSE '' END || '@' || p.email_domain
    END::VARCHAR AS email,
    p.phone::VARCHAR AS phone,
    p.address::VARCHAR AS address,
    p.address2::VARCHAR AS address2,
    p.city::VARCHAR AS city,
    p.state::VARCHAR AS state,
    p.postal::VARCHAR AS postal,
    p.country::VARCHAR AS country,
    p.birthdate::DATE AS birthdate,
    p.gender::VARCHAR AS gender,
    p.loyalty_tier::VARCHAR AS loyalty_tier,
    p.email_opt_out::BOOLEAN AS email_opt_out,
    p.sms_opt_out::BOOLEAN AS sms_opt_out,
    p.created_at::TIMESTAMP AS created_at,
    t.first_order_date::DATE AS first_order_date,
    t.last_order_date::DATE AS last_order_date,
    coalesce(t.lifetime_order_count, 0)::INTEGER AS lifetime_order_count,
    coalesce(t.lifetime_revenue, 0)::DECIMAL(14, 2) AS lifetime_revenue,
    s.rfm_recency::INTEGER AS rfm_recency,
    s.rfm_frequency::INTEGER AS rfm_frequency,
    s.rfm_monetary::INTEGER AS rfm_monetary
FROM people AS p
JOIN numbered AS n ON n.k = p.k
LEFT JOIN totals AS t ON t.id = p.amperity_id
LEFT JOIN scored AS s ON s.id = p.amperity_id
ORDER BY p.k
"""

# range() is read by one thread; a table of the customer numbers is scanned in parallel
_KEYS = """
CREATE OR REPLACE TEMPORARY TABLE {keys} AS SELECT range AS k FROM range($profiles)
"""

_SOURCE = """
CREATE OR REPLACE TABLE {source} AS
SELECT {id}, given_name, surname, email, phone, address, address2, city, state, postal, country
FROM {profile}
"""

_UNIFORM = re.compile(r"\bU\((\w+)\)")
_PICK = re.compile(r"\bPICK\((\w+), (\$\w+)\)")
_HASH = re.compile(r"\bH\((\w+)\)")
_PARAMETER = re.compile(r"\$(\w+)")
_KEYS_TABLE = "audience_demo_customer_numbers"
_MAX_PROFILES = 100_000_000  # so order numbers (40 per customer) fit in 10 digits


def _expand(sql: str) -> str:
    """Rewrite the ``H``, ``U`` and ``PICK`` shorthands into DuckDB hash arithmetic."""
    # (the modulus is cast because UBIGINT % BIGINT would be computed, slowly, as HUGEINT)
    sql = _PICK.sub(r"\2[1 + (H(\1) % len(\2)::UBIGINT)::BIGINT]", sql)
    # 53 bits of the hash over 2^53 gives a double in [0, 1) that can never round up to 1
    sql = _UNIFORM.sub(r"((H(\1) >> 11) / 9007199254740992.0)", sql)
    # DuckDB combines the hashes of several arguments with a final XOR, so draws that differ
    # only in their salt would share most of their high bits; hashing again mixes them apart
    return _HASH.sub(r"hash(hash($seed::BIGINT, k, '\1'))", sql)


def _vocabulary() -> dict[str, Any]:
    """The word lists, as named query parameters (1-based indexes pick from them in SQL)."""
    given = vocab.FEMALE_NAMES + vocab.MALE_NAMES
    return {
        "female_count": len(vocab.FEMALE_NAMES),
        "given_names": list(given),
        "given_keys": [vocab.email_key(name) for name in given],
        "surnames": list(vocab.SURNAMES),
        "surname_keys": [vocab.email_key(name) for name in vocab.SURNAMES],
        "email_domains": [domain for domain, _ in vocab.EMAIL_DOMAINS],
        "email_domain_pick": vocab.weighted_indexes([w for _, w in vocab.EMAIL_DOMAINS]),
        "city_names": [city.name for city in vocab.CITIES],
        "city_states": [city.state for city in vocab.CITIES],
        "city_zip_lows": [city.zip_low for city in vocab.CITIES],
        "city_zip_highs": [city.zip_high for city in vocab.CITIES],
        "city_area_codes": [city.area_code for city in vocab.CITIES],
        "city_pick": vocab.weighted_indexes([city.weight for city in vocab.CITIES]),
        "street_names": list(vocab.STREET_NAMES),
        "street_suffixes": list(vocab.STREET_SUFFIXES),
        "categories": [name for name, _, _ in vocab.PRODUCT_CATEGORIES],
        "category_prices": [price for _, price, _ in vocab.PRODUCT_CATEGORIES],
        "category_pick": vocab.weighted_indexes([w for _, _, w in vocab.PRODUCT_CATEGORIES]),
        "quantity_pick": vocab.weighted_indexes(vocab.QUANTITY_WEIGHTS),
        "brands": [brand for brand, _ in vocab.BRANDS],
        "brand_pick": vocab.weighted_indexes([w for _, w in vocab.BRANDS]),
    }


def _identifier(name: str, field: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"SampleTables.{field} must be a non-empty name, got {name!r}")
    return exp.to_identifier(name, quoted=True).sql("duckdb")


def _validate(profiles: int, seed: int, today: datetime.date) -> None:
    if isinstance(profiles, bool) or not isinstance(profiles, int):
        raise TypeError(f"profiles must be an int, got {profiles!r}")
    if not 0 <= profiles <= _MAX_PROFILES:
        raise ValueError(f"profiles must be between 0 and {_MAX_PROFILES:,}, got {profiles:,}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must fit in 64 signed bits, got {seed}")
    # a datetime is a date too, but "today" with a time of day would shift every window
    if isinstance(today, datetime.datetime) or not isinstance(today, datetime.date):
        raise TypeError(f"today must be a datetime.date, got {today!r}")
    if not 100 <= today.year <= 9000:
        raise ValueError(f"today must be a date between the years 100 and 9000, got {today}")


def _run(con: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, Any]) -> None:
    # DuckDB rejects named parameters that a statement does not use, so pass only its own
    used = set(_PARAMETER.findall(sql))
    # fetching the one-row result leaves no unfinished result behind on the connection
    con.execute(sql, {name: value for name, value in parameters.items() if name in used}).fetchall()


def generate(
    con: duckdb.DuckDBPyConnection,
    *,
    profiles: int,
    seed: int,
    today: datetime.date,
    tables: SampleTables = SampleTables(),
) -> None:
    """Create (or replace) the three sample tables in `con`.

    `profiles` customers are generated, with on average about five orders each spread over the
    three years before `today` (none on or after it). The same `seed` and `today` always give
    identical tables. All three tables are replaced in one transaction, so a failure leaves the
    previous ones in place; `con` must therefore not be inside a transaction already.

    Raises TypeError or ValueError for arguments out of range or table names that are empty or
    not distinct.
    """
    _validate(profiles, seed, today)
    names = {
        "profile": _identifier(tables.profile, "profile"),
        "source": _identifier(tables.source, "source"),
        "events": _identifier(tables.events, "events"),
        "id": _identifier(tables.id, "id"),
    }
    if len({tables.profile, tables.source, tables.events}) != 3:
        raise ValueError(f"the three sample tables need distinct names, got {tables}")
    keys = _identifier(_KEYS_TABLE, "keys")
    people = _expand(_PEOPLE).format(keys=keys)
    statements = [_KEYS.format(keys=keys)] + [
        _expand(template).format(people=people, **names)
        for template in (_EVENTS, _PROFILE, _SOURCE)
    ]
    parameters = {"seed": seed, "profiles": profiles, "today": today, **_vocabulary()}
    con.begin()
    try:
        for statement in statements:
            _run(con, statement, parameters)
        _run(con, f"DROP TABLE {keys}", parameters)
    except BaseException:
        con.rollback()
        raise
    con.commit()
