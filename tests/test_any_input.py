"""Property test: whatever documents a user writes — odd types, huge numbers, unicode, missing or
stray keys, documents loosely shaped like segments, campaigns and destinations — applying them
either works or fails with an AudienceError. Never another exception (an "internal error").

Documents are drawn well-formed, so that many get past validation into the compiler and the
engine, and then about half of them have one value somewhere replaced by anything at all."""

from __future__ import annotations

import contextlib
import copy
import io
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from audience.definitions.conditions import LIST_OPS, NO_VALUE_OPS, PAIR_OPS, RELATIVE_OPS
from audience.definitions.loader import load_text, validate_data
from audience.errors import AudienceError
from audience.workspace import Workspace

COLUMNS = [
    "amperity_id",
    "postal",
    "state",
    "lifetime_revenue",
    "lifetime_order_count",
    "last_order_date",
    "created_at",
    "email_opt_out",
    "email",
    "product_category",
    "order_revenue",
    "no_such_column",
]
OPERATORS = [
    *sorted(NO_VALUE_OPS | PAIR_OPS | LIST_OPS | RELATIVE_OPS),
    *["=", "!=", ">", "<=", "contains", "starts_with", "before", "on_or_after", "like"],
]
SEGMENTS = ["A", "B", "ß ü 😀"]
DESTINATIONS = ["out", "s3"]
SQL = [
    "select amperity_id from customer_360",
    "select amperity_id from customer_360 where lifetime_revenue > 1e308 * 10",
    "select * from customer_360",
    "select 1; select 2",
    "drop table customer_360",
    "select amperity_id from nowhere",
    "selec",
]
TEMPLATES = [
    "{{ campaign_name }}_{{ group_name }}",
    "{{ now | format('%Y%m%d') }}",
    "{{ campaign_name | replace('', 'xxxxxxxxxx') | replace('', 'xxxxxxxxxx') }}",
    "{{ ''.__class__ }}",
    "{{ '%*d' | format(99999999, 1) }}",
    "{{ file_number | format('%05d') }}",
]

numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(),  # arbitrary size
    st.sampled_from([10**9, 10**30, -(10**30), 2**63, 0, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=20),
    st.sampled_from(SEGMENTS + COLUMNS + OPERATORS + ["2026-01-31", "9999-12-31"]),
    st.dates(),
    st.datetimes(),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def some_of(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def attribute_condition(draw: st.DrawFn) -> dict[str, Any]:
    """An attribute test whose value has the shape its operator wants (its type may not fit)."""
    op = draw(st.sampled_from(OPERATORS))
    condition: dict[str, Any] = {"attribute": draw(st.sampled_from(COLUMNS)), "op": op}
    present = scalars.filter(lambda v: v is not None)
    if op in PAIR_OPS:
        condition["value"] = draw(st.lists(present, min_size=2, max_size=2))
    elif op in LIST_OPS:
        condition["value"] = draw(st.lists(present, min_size=1, max_size=3))
    elif op in RELATIVE_OPS:
        condition["value"] = draw(st.integers(min_value=0))
        condition["unit"] = draw(st.sampled_from(["days", "weeks", "months", "years"]))
    elif op not in NO_VALUE_OPS:
        condition["value"] = draw(present)
    return condition


finite = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
comparison = st.one_of(
    some_of({"op": st.sampled_from(["=", ">=", "<"]), "value": finite}, {}),
    some_of(
        {"op": st.just("between"), "value": st.lists(finite, min_size=2, max_size=2).map(sorted)},
        {},
    ),
)


def _groups(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    window = some_of(
        {"value": st.integers(min_value=1)}, {"unit": st.sampled_from(["days", "years"])}
    )
    purchase = st.one_of(
        *(
            some_of(
                {},
                {
                    "where": inner,
                    measure: comparison,
                    "table": st.sampled_from(["unified_transactions", "customer_360", "x"]),
                    "within_last": window,
                },
            )
            for measure in ("orders", "revenue")
        )
    )
    return st.one_of(
        st.fixed_dictionaries({"all": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": inner}),
        st.fixed_dictionaries({"purchased": purchase}),
    )


conditions = st.recursive(
    st.one_of(
        attribute_condition(), st.fixed_dictionaries({"in_segment": st.sampled_from(SEGMENTS)})
    ),
    _groups,
    max_leaves=6,
)
segment = st.one_of(
    some_of(
        {"kind": st.just("segment"), "name": st.sampled_from(SEGMENTS), "where": conditions},
        {"exclude": conditions, "status": st.sampled_from(["draft", "active"])},
    ),
    some_of(
        {
            "kind": st.just("segment"),
            "name": st.sampled_from(SEGMENTS),
            "sql": st.sampled_from(SQL),
        },
        {},
    ),
)


@st.composite
def treatments(draw: st.DrawFn) -> dict[str, Any]:
    """Treatments and control, usually totalling 100."""
    percents, control = draw(
        st.sampled_from([([100], 0), ([50, 50], 0), ([45, 45], 10), ([90], 10), ([90], 0.5)])
    )
    return {
        "treatments": [
            {
                "name": f"T{i}",
                "percent": percent,
                "destinations": draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1)),
            }
            for i, percent in enumerate(percents)
        ],
        "control": control,
    }


sent_attribute = st.one_of(
    st.sampled_from(COLUMNS),
    some_of(
        {"source": st.sampled_from(COLUMNS)},
        {
            "as": st.text(min_size=1, max_size=8),
            "required": st.booleans(),
            "table": st.sampled_from(["customer_360", "unified_transactions", "nope"]),
        },
    ),
)
schedule = st.one_of(
    st.fixed_dictionaries(
        {"once": st.one_of(st.just("asap"), st.datetimes(timezones=st.just(UTC)))}
    ),
    st.fixed_dictionaries(
        {
            "recurring": some_of(
                {"cron": st.sampled_from(["0 6 * * 1", "99 * * * *"])},
                {"timezone": st.sampled_from(["UTC", "Europe/Paris"]), "start": st.dates()},
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "every": some_of(
                {"value": st.integers(min_value=0), "unit": st.sampled_from(["days", "hours"])},
                {},
            )
        }
    ),
)


@st.composite
def campaign(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": "campaign",
        "name": draw(st.sampled_from(["Spring", "Fall 😀"])),
        "audience": draw(
            some_of(
                {"include": st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=2)},
                {"exclude": st.lists(st.sampled_from(SEGMENTS), max_size=2)},
            )
        ),
    }
    if draw(st.booleans()):
        document.update(draw(treatments()))
    else:
        count = draw(st.integers(min_value=1, max_value=3))
        document["sub_audiences"] = [
            {
                "name": f"S{i}",
                **draw(treatments()),
                # only the last may go without criteria: it takes everyone left
                **draw(
                    some_of({}, {"where": conditions})
                    if i == count - 1
                    else st.fixed_dictionaries({"where": conditions})
                ),
            }
            for i in range(count)
        ]
    document.update(
        draw(
            some_of(
                {
                    "attributes": st.fixed_dictionaries(
                        {
                            name: st.lists(sent_attribute, min_size=1, max_size=3)
                            for name in DESTINATIONS
                        }
                    )
                },
                {
                    "schedule": schedule,
                    "launch_date": st.dates(),
                    "match": st.sampled_from(["first", "every"]),
                    "files": st.sampled_from(["per_treatment", "single"]),
                    "seed": st.text(max_size=10),
                },
            )
        )
    )
    return document


destination = some_of(
    {
        "kind": st.just("destination"),
        "name": st.sampled_from(DESTINATIONS),
        "type": st.just("filesystem"),
        # folders inside the workspace only: a successful apply must not write elsewhere
        "settings": st.fixed_dictionaries({"path": st.sampled_from(["out", "deliveries/x"])}),
    },
    {
        "file": st.one_of(
            some_of(
                {"format": st.just("csv")},
                {
                    "delimiter": st.sampled_from([",", ";", "||", '"', "\t"]),
                    "encoding": st.sampled_from(["utf-8", "latin-1", "klingon"]),
                    "filename": st.sampled_from(TEMPLATES),
                },
            ),
            some_of(
                {},
                {
                    "format": st.sampled_from(["parquet", "json"]),
                    "compression": st.sampled_from(["gzip", "zip", "none", "tgz"]),
                    "filename": st.sampled_from(TEMPLATES),
                    "split_rows": st.one_of(st.integers(min_value=1), numbers),
                    "split_size": st.one_of(
                        numbers, st.sampled_from(["1MB", "2.5 GiB", "big", "-3KB", "1e3"])
                    ),
                },
            ),
        ),
        "default_attributes": st.lists(
            st.one_of(
                st.sampled_from(COLUMNS),
                some_of({"source": st.sampled_from(COLUMNS)}, {"as": st.text(min_size=1)}),
            ),
            min_size=1,
            max_size=3,
        ),
    },
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a value sits (the root excluded)."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*path, index))
    return found


@st.composite
def odd(draw: st.DrawFn, strategy: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A document from `strategy`; one time in three with one value replaced by anything, or
    a stray key added."""
    document = copy.deepcopy(draw(strategy))
    if draw(st.sampled_from([True, False, False])):
        path = draw(st.sampled_from(_paths(document)))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.sampled_from([True, True, False])) or not isinstance(parent, dict):
            parent[path[-1]] = draw(junk)
        else:
            parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
    return document


well_formed = st.one_of(segment, campaign(), destination)
# every destination and segment a campaign may name, then campaigns using them
bundle = st.tuples(
    *(destination.map(lambda d, n=name: {**d, "name": n}) for name in DESTINATIONS),
    *(segment.map(lambda d, n=name: {**d, "name": n}) for name in SEGMENTS),
    st.lists(campaign(), min_size=1, max_size=2, unique_by=lambda c: c["name"]),
).map(lambda parts: [*parts[:-1], *parts[-1]])
documents = st.one_of(
    bundle,  # into the compiler and the engine
    st.lists(well_formed, min_size=1, max_size=4),
    st.lists(st.one_of(odd(segment), odd(campaign()), odd(destination)), min_size=1, max_size=3),
    st.lists(st.one_of(well_formed, junk), min_size=1, max_size=2),
)


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=documents)
def test_applying_any_documents_fails_only_with_audience_errors(
    fresh_workspace: Workspace, data: list[Any]
) -> None:
    with contextlib.suppress(AudienceError):
        fresh_workspace.apply_documents([validate_data(d) for d in data])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=documents)
def test_loading_any_yaml_of_them_fails_only_with_audience_errors(data: list[Any]) -> None:
    buffer = io.StringIO()
    YAML(typ="safe").dump_all(data, buffer)
    with contextlib.suppress(AudienceError):
        load_text(buffer.getvalue(), "fuzz.yaml")


# Pieces of YAML that ruamel reads in unusual ways: tags, anchors, merges, directives, dates.
FRAGMENTS = [
    "kind: segment\n",
    "kind: campaign\n",
    "name: x\n",
    "where: {attribute: postal, op: '=', value: ",
    "where:\n  ",
    "<<: ",
    "? ",
    ": ",
    "&a ",
    "*a",
    "!!int ",
    "!!float ",
    "!!timestamp ",
    "!!bool ",
    "!!binary ",
    "!!set ",
    "!custom ",
    "%YAML 1.1\n---\n",
    "---\n",
    "2001-02-30",
    "2026-01-31 25:00:00",
    "0x",
    "02130",
    "0o17",
    ".inf",
    "9" * 5000,
    "[",
    "]",
    "{",
    "}",
    ", ",
    "- ",
    "\n",
    "\t",
    "\ufeff",
]


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS)).map("".join)))
def test_loading_any_text_fails_only_with_audience_errors(text: str) -> None:
    with contextlib.suppress(AudienceError):
        load_text(text, "fuzz.yaml")
