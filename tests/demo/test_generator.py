"""The sample customer 360: schema, determinism, figures and value domains, on real DuckDB."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from audience.demo import vocabulary
from audience.demo.generator import SampleTables, generate

TODAY = datetime.date(2025, 3, 1)
PROFILES = 2_000
SEED = 11

PROFILE_COLUMNS = [
    ("amperity_id", "VARCHAR"),
    ("given_name", "VARCHAR"),
    ("surname", "VARCHAR"),
    ("email", "VARCHAR"),
    ("phone", "VARCHAR"),
    ("address", "VARCHAR"),
    ("address2", "VARCHAR"),
    ("city", "VARCHAR"),
    ("state", "VARCHAR"),
    ("postal", "VARCHAR"),
    ("country", "VARCHAR"),
    ("birthdate", "DATE"),
    ("gender", "VARCHAR"),
    ("loyalty_tier", "VARCHAR"),
    ("email_opt_out", "BOOLEAN"),
    ("sms_opt_out", "BOOLEAN"),
    ("created_at", "TIMESTAMP"),
    ("first_order_date", "DATE"),
    ("last_order_date", "DATE"),
    ("lifetime_order_count", "INTEGER"),
    ("lifetime_revenue", "DECIMAL(14,2)"),
    ("rfm_recency", "INTEGER"),
    ("rfm_frequency", "INTEGER"),
    ("rfm_monetary", "INTEGER"),
]
SOURCE_COLUMNS = PROFILE_COLUMNS[:11]
EVENT_COLUMNS = [
    ("amperity_id", "VARCHAR"),
    ("order_id", "VARCHAR"),
    ("order_datetime", "TIMESTAMP"),
    ("order_revenue", "DECIMAL(12,2)"),
    ("order_quantity", "INTEGER"),
    ("product_category", "VARCHAR"),
    ("brand", "VARCHAR"),
    ("channel", "VARCHAR"),
    ("store_id", "VARCHAR"),
    ("is_return", "BOOLEAN"),
    ("is_cancellation", "BOOLEAN"),
]
TABLES = ("customer_360", "merged_customers", "unified_transactions")


def _make(
    profiles: int = PROFILES, seed: int = SEED, threads: int = 2
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": threads})
    generate(con, profiles=profiles, seed=seed, today=TODAY)
    return con


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = _make()
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return _rows(con, sql)[0][0]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [
        (name, kind)
        for name, kind in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def _arrow(con: duckdb.DuckDBPyConnection, table: str) -> pa.Table:
    return con.table(table).to_arrow_table()


# --- shape -------------------------------------------------------------------------------------


def test_schema_is_exactly_spec_section_1(con: duckdb.DuckDBPyConnection) -> None:
    assert _columns(con, "customer_360") == PROFILE_COLUMNS
    assert _columns(con, "merged_customers") == SOURCE_COLUMNS
    assert _columns(con, "unified_transactions") == EVENT_COLUMNS


def test_one_row_per_customer_in_profile_and_source(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "SELECT count(*) FROM customer_360") == PROFILES
    assert _one(con, "SELECT count(*) FROM merged_customers") == PROFILES
    assert _one(con, "SELECT count(*) FROM unified_transactions") > PROFILES


def test_source_holds_the_same_people_as_the_profile(con: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(name for name, _ in SOURCE_COLUMNS)
    differences = f"""
        SELECT count(*) FROM (
            (SELECT {columns} FROM customer_360 EXCEPT ALL SELECT * FROM merged_customers)
            UNION ALL
            (SELECT * FROM merged_customers EXCEPT ALL SELECT {columns} FROM customer_360)
        )
    """
    assert _one(con, differences) == 0


def test_every_order_belongs_to_a_customer(con: duckdb.DuckDBPyConnection) -> None:
    orphans = """
        SELECT count(*) FROM unified_transactions t
        ANTI JOIN customer_360 c USING (amperity_id)
    """
    assert _one(con, orphans) == 0


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_whatever_the_thread_count() -> None:
    one, two = _make(threads=1), _make(threads=2)
    for table in TABLES:
        # physical row order included: the tables are byte-for-byte the same
        assert _arrow(one, table).equals(_arrow(two, table)), table


@pytest.mark.slow
def test_many_row_groups_keep_the_same_order_whatever_the_thread_count() -> None:
    def digests(threads: int) -> list[str]:
        connection = _make(profiles=150_000, threads=threads)
        connection.execute("SET threads = 1")  # read back in physical order
        digest = "SELECT md5(string_agg(CAST(COLUMNS(*) AS VARCHAR), '|')) FROM {}"
        return [list(_rows(connection, digest.format(table))[0]) for table in TABLES]

    assert digests(1) == digests(2)


def test_different_seeds_give_different_tables(con: duckdb.DuckDBPyConnection) -> None:
    other = _make(seed=SEED + 1)
    digest = "SELECT md5(string_agg(amperity_id || email, ',' ORDER BY amperity_id)) FROM {}"
    assert _one(con, digest.format("customer_360")) != _one(other, digest.format("customer_360"))
    ids = "SELECT amperity_id FROM customer_360"
    assert not {row[0] for row in _rows(con, ids)} & {row[0] for row in _rows(other, ids)}


def test_generating_again_replaces_the_tables(con: duckdb.DuckDBPyConnection) -> None:
    again = _make(profiles=50)
    generate(again, profiles=30, seed=SEED, today=TODAY)
    assert _one(again, "SELECT count(*) FROM customer_360") == 30
    assert _one(again, "SELECT count(*) FROM merged_customers") == 30
    assert _one(again, "SELECT count(DISTINCT amperity_id) FROM unified_transactions") <= 30
    assert not _rows(again, "SELECT table_name FROM duckdb_tables() WHERE temporary")


def test_zero_profiles_gives_empty_tables_with_the_schema() -> None:
    empty = _make(profiles=0)
    for table in TABLES:
        assert _one(empty, f"SELECT count(*) FROM {table}") == 0
    assert _columns(empty, "customer_360") == PROFILE_COLUMNS


# --- figures computed from the orders ----------------------------------------------------------


def test_lifetime_and_rfm_agree_with_a_hand_written_aggregate(
    con: duckdb.DuckDBPyConnection,
) -> None:
    year_ago = datetime.datetime(TODAY.year - 1, TODAY.month, TODAY.day)
    expected = f"""
        WITH valid AS (
            SELECT * FROM unified_transactions WHERE NOT is_return AND NOT is_cancellation
        ),
        lifetime AS (
            SELECT amperity_id,
                CAST(min(order_datetime) AS DATE) AS first_order_date,
                CAST(max(order_datetime) AS DATE) AS last_order_date,
                count(*) AS lifetime_order_count,
                sum(order_revenue) AS lifetime_revenue
            FROM valid GROUP BY amperity_id
        ),
        recent AS (
            SELECT amperity_id, max(order_datetime) AS latest, count(*) AS orders,
                sum(order_revenue) AS spend
            FROM valid WHERE order_datetime >= TIMESTAMP '{year_ago.isoformat(sep=" ")}'
            GROUP BY amperity_id
        ),
        deciles AS (
            SELECT amperity_id,
                ntile(10) OVER (ORDER BY latest, amperity_id) AS r,
                ntile(10) OVER (ORDER BY orders, amperity_id) AS f,
                ntile(10) OVER (ORDER BY spend, amperity_id) AS m
            FROM recent
        )
        SELECT c.amperity_id, l.first_order_date, l.last_order_date,
            coalesce(l.lifetime_order_count, 0), coalesce(l.lifetime_revenue, 0), d.r, d.f, d.m
        FROM customer_360 c
        LEFT JOIN lifetime l USING (amperity_id)
        LEFT JOIN deciles d USING (amperity_id)
        ORDER BY c.amperity_id
    """
    actual = """
        SELECT amperity_id, first_order_date, last_order_date, lifetime_order_count,
            lifetime_revenue, rfm_recency, rfm_frequency, rfm_monetary
        FROM customer_360 ORDER BY amperity_id
    """
    assert _rows(con, actual) == _rows(con, expected)


def test_customers_without_valid_orders_have_empty_figures(
    con: duckdb.DuckDBPyConnection,
) -> None:
    without = """
        SELECT count(*), count(first_order_date), count(last_order_date), sum(lifetime_revenue),
            count(rfm_recency) + count(rfm_frequency) + count(rfm_monetary)
        FROM customer_360 WHERE lifetime_order_count = 0
    """
    customers, first, last, revenue, rfm = _rows(con, without)[0]
    assert customers > 0
    assert (first, last, revenue, rfm) == (0, 0, 0, 0)


def test_rfm_scores_are_deciles_among_recent_buyers(con: duckdb.DuckDBPyConnection) -> None:
    buckets = """
        SELECT rfm_recency, count(*) FROM customer_360
        WHERE rfm_recency IS NOT NULL GROUP BY ALL ORDER BY 1
    """
    sizes = dict(_rows(con, buckets))
    assert list(sizes) == list(range(1, 11))
    assert max(sizes.values()) - min(sizes.values()) <= 1
    scored_together = """
        SELECT count(*) FROM customer_360
        WHERE (rfm_recency IS NULL) != (rfm_frequency IS NULL)
           OR (rfm_recency IS NULL) != (rfm_monetary IS NULL)
    """
    assert _one(con, scored_together) == 0


# --- value domains -----------------------------------------------------------------------------


def test_ids_order_ids_and_emails_are_unique(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "SELECT count(DISTINCT amperity_id) FROM customer_360") == PROFILES
    orders = "SELECT count(*) = count(DISTINCT order_id) FROM unified_transactions"
    assert _one(con, orders)
    emails = "SELECT count(email) = count(DISTINCT email) FROM customer_360"
    assert _one(con, emails)
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid.match(row[0]) for row in _rows(con, "SELECT amperity_id FROM customer_360"))


def test_profile_values_are_in_their_domains(con: duckdb.DuckDBPyConnection) -> None:
    tiers = {row[0] for row in _rows(con, "SELECT DISTINCT loyalty_tier FROM customer_360")}
    assert tiers == {"none", "silver", "gold", "platinum"}
    places = set(_rows(con, "SELECT DISTINCT city, state FROM customer_360"))
    assert places <= {(city.name, city.state) for city in vocabulary.CITIES}
    assert _one(con, "SELECT bool_and(regexp_full_match(postal, '[0-9]{5}')) FROM customer_360")
    assert _one(con, "SELECT bool_and(regexp_full_match(state, '[A-Z]{2}')) FROM customer_360")
    assert _rows(con, "SELECT DISTINCT country FROM customer_360") == [("US",)]
    assert {row[0] for row in _rows(con, "SELECT DISTINCT gender FROM customer_360")} <= {
        "F",
        "M",
        "U",
    }
    ages = "SELECT min(date_diff('year', birthdate, ?)), max(date_diff('year', birthdate, ?))"
    youngest, oldest = con.execute(ages + " FROM customer_360", [TODAY, TODAY]).fetchall()[0]
    assert youngest >= 18
    assert oldest <= 86  # date_diff counts year boundaries, so an 85-year-old may read 86
    created = "SELECT min(created_at), max(created_at) FROM customer_360"
    earliest, latest = _rows(con, created)[0]
    assert earliest >= datetime.datetime(TODAY.year - 5, TODAY.month, TODAY.day)
    assert latest < datetime.datetime.combine(TODAY, datetime.time())


def test_contact_details_look_real_and_are_derived_from_names(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = _rows(con, "SELECT given_name, surname, email, phone, address2 FROM customer_360")
    email = re.compile(r"^[a-z._]+[0-9]*@[a-z.]+$")
    phone = re.compile(r"^[2-9][0-9]{2}-555-01[0-9]{2}$")
    for given, surname, mail, number, address2 in rows:
        if mail is not None:
            assert email.match(mail), mail
            local = mail.split("@")[0]
            given_key, surname_key = vocabulary.email_key(given), vocabulary.email_key(surname)
            assert given_key[0] in local and (given_key in local or surname_key in local), mail
        if number is not None:
            assert phone.match(number), number
        if address2 is not None:
            assert re.match(r"^(Apt|Unit|Suite|#)", address2), address2


def test_order_values_are_in_their_domains(con: duckdb.DuckDBPyConnection) -> None:
    categories = {name for name, _, _ in vocabulary.PRODUCT_CATEGORIES}
    found = "SELECT DISTINCT product_category FROM unified_transactions"
    assert {row[0] for row in _rows(con, found)} == categories
    brands = {row[0] for row in _rows(con, "SELECT DISTINCT brand FROM unified_transactions")}
    assert brands == {name for name, _ in vocabulary.BRANDS}
    channels = "SELECT DISTINCT channel FROM unified_transactions"
    assert {row[0] for row in _rows(con, channels)} == {"online", "store"}
    mismatched = """
        SELECT count(*) FROM unified_transactions
        WHERE (store_id IS NULL) != (channel = 'online')
           OR NOT regexp_full_match(coalesce(store_id, 'S001'), 'S[0-9]{3}')
    """
    assert _one(con, mismatched) == 0
    ranges = """
        SELECT min(order_revenue), max(order_revenue), min(order_quantity), max(order_quantity),
            min(order_datetime), max(order_datetime)
        FROM unified_transactions
    """
    low, high, fewest, most, first, last = _rows(con, ranges)[0]
    assert low > 0 and high <= 800
    assert (fewest, most) == (1, 6)
    assert first >= datetime.datetime(TODAY.year - 3, TODAY.month, TODAY.day)
    assert last < datetime.datetime.combine(TODAY, datetime.time())  # never in the future


def test_orders_per_customer_are_skewed_between_0_and_40(con: duckdb.DuckDBPyConnection) -> None:
    per_customer = """
        SELECT min(n), max(n), avg(n), avg(CAST(n = 0 AS INTEGER)) FROM (
            SELECT count(t.order_id) AS n FROM customer_360 c
            LEFT JOIN unified_transactions t USING (amperity_id) GROUP BY c.amperity_id
        )
    """
    fewest, most, mean, none = _rows(con, per_customer)[0]
    assert fewest == 0 and most <= 40
    assert 4.0 <= mean <= 6.0
    assert 0.10 <= none <= 0.20


def test_orders_come_after_sign_up(con: duckdb.DuckDBPyConnection) -> None:
    early = """
        SELECT count(*) FROM unified_transactions t JOIN customer_360 c USING (amperity_id)
        WHERE t.order_datetime < c.created_at
    """
    assert _one(con, early) == 0


@pytest.mark.parametrize(
    ("expression", "low", "high"),
    [
        ("avg(CAST(loyalty_tier = 'none' AS INTEGER))", 0.50, 0.60),
        ("avg(CAST(loyalty_tier = 'silver' AS INTEGER))", 0.21, 0.29),
        ("avg(CAST(loyalty_tier = 'gold' AS INTEGER))", 0.12, 0.18),
        ("avg(CAST(loyalty_tier = 'platinum' AS INTEGER))", 0.03, 0.07),
        ("avg(CAST(coalesce(email_opt_out, false) AS INTEGER))", 0.09, 0.15),
        ("avg(CAST(email_opt_out IS NULL AS INTEGER))", 0.005, 0.04),
        ("avg(CAST(coalesce(sms_opt_out, false) AS INTEGER))", 0.26, 0.34),
        ("avg(CAST(sms_opt_out IS NULL AS INTEGER))", 0.005, 0.04),
        ("avg(CAST(address2 IS NOT NULL AS INTEGER))", 0.12, 0.18),
        ("avg(CAST(email IS NULL AS INTEGER))", 0.01, 0.08),
        ("avg(CAST(phone IS NULL AS INTEGER))", 0.02, 0.10),
    ],
)
def test_profile_shares_are_roughly_as_specified(
    con: duckdb.DuckDBPyConnection, expression: str, low: float, high: float
) -> None:
    assert low <= _one(con, f"SELECT {expression} FROM customer_360") <= high


@pytest.mark.parametrize(
    ("expression", "low", "high"),
    [
        ("avg(CAST(channel = 'online' AS INTEGER))", 0.56, 0.64),
        ("avg(CAST(is_return AS INTEGER))", 0.035, 0.065),
        ("avg(CAST(is_cancellation AS INTEGER))", 0.01, 0.03),
    ],
)
def test_order_shares_are_roughly_as_specified(
    con: duckdb.DuckDBPyConnection, expression: str, low: float, high: float
) -> None:
    assert low <= _one(con, f"SELECT {expression} FROM unified_transactions") <= high


# --- names and arguments -----------------------------------------------------------------------


def test_table_and_id_names_are_quoted_identifiers() -> None:
    tables = SampleTables(
        profile="Profile 360", source='src "x"', events="events; DROP TABLE y", id="Customer ID"
    )
    connection = duckdb.connect()
    generate(connection, profiles=20, seed=1, today=TODAY, tables=tables)
    names = {row[0] for row in _rows(connection, "SELECT table_name FROM duckdb_tables()")}
    assert names == {"Profile 360", 'src "x"', "events; DROP TABLE y"}
    for table in names:
        assert _columns(connection, table)[0] == ("Customer ID", "VARCHAR")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"profiles": -1}, ValueError),
        ({"profiles": 1.5}, TypeError),
        ({"profiles": True}, TypeError),
        ({"seed": "1"}, TypeError),
        ({"seed": 2**63}, ValueError),
        ({"today": datetime.datetime(2025, 1, 1, 12)}, TypeError),
        ({"today": "2025-01-01"}, TypeError),
        ({"tables": SampleTables(source="customer_360")}, ValueError),
        ({"tables": SampleTables(id="")}, ValueError),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    arguments: dict[str, Any], error: type[Exception]
) -> None:
    connection = duckdb.connect()
    call: dict[str, Any] = {"profiles": 10, "seed": 1, "today": TODAY, **arguments}
    with pytest.raises(error):
        generate(connection, **call)
    assert not _rows(connection, "SELECT table_name FROM duckdb_tables()")
