""" "Empty" means one thing on every engine: NULL, '' and whitespace-only text. The is_empty and
is_not_empty operators, required sent attributes and "reachable" in insights all agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from audience.compile.sql import BLANK
from audience.definitions.loader import validate_data
from audience.workspace import Workspace
from realservices import ENGINES, make_workspace, new_postgres_schema

# Each customer's email (in customer_360 and merged_customers alike); "x" customers opted out.
EMAILS: dict[str, str | None] = {
    "c1": "ann@example.com",
    "c2": "",
    "c3": " ",
    "c4": "\t\n",
    "c5": "\u00a0\u3000",  # no-break and ideographic spaces: blank too
    "c6": None,
    "c7": "  bob@example.com ",
    "x8": "opted.out@example.com",
}
NOT_EMPTY = {c for c, e in EMAILS.items() if e is not None and e.strip()}


def _tables() -> dict[str, pa.Table]:
    ids = list(EMAILS)
    emails = list(EMAILS.values())
    return {
        "customer_360": pa.table(
            {
                "amperity_id": ids,
                "email": emails,
                "email_opt_out": [c.startswith("x") for c in ids],
                "lifetime_order_count": [1] * len(ids),
            }
        ),
        "merged_customers": pa.table({"amperity_id": ids, "email": emails}),
        "unified_transactions": pa.table(
            {
                "amperity_id": pa.array([], pa.string()),
                "order_id": pa.array([], pa.string()),
                "order_datetime": pa.array([], pa.timestamp("us")),
                "order_revenue": pa.array([], pa.float64()),
            }
        ),
    }


@pytest.fixture(params=ENGINES)
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A tiny customer 360 of blank and non-blank emails, on each engine."""
    with new_postgres_schema() as schema, make_workspace(tmp_path, request.param, schema) as ws:
        for name, data in _tables().items():
            ws.engine.replace_table(name, data.schema, data.to_batches())
        yield ws


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def members(ws: Workspace, name: str) -> set[str]:
    preview = ws.segment_preview(name, limit=100)
    return set(preview.column("amperity_id").to_pylist()) if preview.num_columns else set()


def test_blank_is_every_whitespace_python_knows() -> None:
    assert set(BLANK) == {c for c in map(chr, range(0x110000)) if c.isspace()}


def test_is_empty_and_is_not_empty(workspace: Workspace) -> None:
    apply(
        workspace,
        {"kind": "segment", "name": "empty", "where": {"attribute": "email", "op": "is_empty"}},
        {"kind": "segment", "name": "full", "where": {"attribute": "email", "op": "is_not_empty"}},
    )
    assert members(workspace, "full") == NOT_EMPTY
    assert members(workspace, "empty") == set(EMAILS) - NOT_EMPTY


def test_reachable_counts_only_non_empty_emails(workspace: Workspace) -> None:
    apply(
        workspace,
        {
            "kind": "segment",
            "name": "everyone",
            "where": {"attribute": "lifetime_order_count", "op": ">=", "value": 1},
        },
    )
    insights = workspace.segment_insights("everyone", now=datetime(2026, 11, 23))
    assert insights.customers == len(EMAILS)
    assert insights.reachable_email == len(NOT_EMPTY - {"x8"})


def test_required_attribute_drops_empty_values(workspace: Workspace, tmp_path: Path) -> None:
    apply(
        workspace,
        {
            "kind": "segment",
            "name": "everyone",
            "where": {"attribute": "lifetime_order_count", "op": ">=", "value": 1},
        },
        {
            "kind": "destination",
            "name": "local",
            "type": "filesystem",
            "settings": {"path": str(tmp_path / "out")},
            "default_attributes": ["amperity_id"],
        },
        {
            "kind": "campaign",
            "name": "Emails",
            "audience": {"include": ["everyone"]},
            "treatments": [{"name": "All", "percent": 100, "destinations": ["local"]}],
            "control": 0,
            "attributes": {"local": ["amperity_id", {"source": "email", "required": True}]},
        },
    )
    plan = workspace.campaign_plan("Emails")
    assert plan.audience == len(EMAILS)
    assert plan.shrink == {"local": len(EMAILS) - len(NOT_EMPTY)}
