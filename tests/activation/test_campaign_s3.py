"""SPEC Appendix A's campaign, exactly as written there, delivered to S3 (moto over HTTP)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from audience.definitions.loader import load_paths
from audience.workspace import Workspace

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def appendix_ws(
    fresh_workspace: Workspace, moto_endpoint: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    s3.create_bucket(
        Bucket="acme-marketing", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    fresh_workspace.apply_documents(
        load_paths([FIXTURES / "appendix_segments.yaml", FIXTURES / "appendix_campaign.yaml"])
    )
    yield fresh_workspace
    for key in objects(s3):  # the bucket name is the Appendix's, so each test leaves it gone
        s3.delete_object(Bucket="acme-marketing", Key=key)
    s3.delete_bucket(Bucket="acme-marketing")


def objects(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket="acme-marketing").get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket="acme-marketing", Key=o["Key"])["Body"].read()
        for o in listed
    }


def expected_audience(ws: Workspace) -> dict[str, str]:
    """customer → sub-audience, from the two segments' compiled SQL and the Loyal criteria."""
    from audience.compile.conditions import segment_ids

    ctx = ws.compile_context()
    members = {
        name: {r[ctx.tables.id] for r in ws.engine.rows(segment_ids(ws.segment(name)[0], ctx))}
        for name in ("High value, recently active", "Recent complainers")
    }
    tiers = {
        r["amperity_id"]: r["loyalty_tier"]
        for r in ws.engine.rows(exp.select("amperity_id", "loyalty_tier").from_("customer_360"))
    }
    audience = members["High value, recently active"] - members["Recent complainers"]
    return {c: "Loyal" if tiers[c] in ("gold", "platinum") else "Everyone else" for c in audience}


def test_appendix_campaign_lands_in_the_bucket(appendix_ws: Workspace, s3: Any) -> None:
    run = appendix_ws.campaign_run("Spring Churn Prevention")
    assert run.status == "succeeded", run.error
    stored = objects(s3)
    day = appendix_ws.clock().strftime("%Y%m%d")
    data = {k: v for k, v in stored.items() if k.endswith(".csv.gz")}
    assert set(data) == {
        f"audiences/Spring_Churn_Prevention_{group}_{day}.csv.gz"
        for group in ("Offer_A", "Offer_B", "Standard")
    }
    assert {k.removesuffix(".DONE") for k in stored if k.endswith(".DONE")} == {
        k.removesuffix(".csv.gz") for k in data
    }
    expected = expected_audience(appendix_ws)
    sent: dict[str, set[str]] = {}
    for key, body in data.items():
        rows = list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))
        if rows:
            assert list(rows[0]) == ["amperity_id", "email", "first_name", "lifetime_revenue"]
        sent[key] = {r["amperity_id"] for r in rows}
    everyone_sent = set().union(*sent.values())
    assert everyone_sent <= set(expected)
    standard = next(ids for key, ids in sent.items() if "Standard" in key)
    assert standard == {c for c, s in expected.items() if s == "Everyone else"}
    control = set(expected) - everyone_sent
    assert all(expected[c] == "Loyal" for c in control)  # only Loyal holds customers back
    assert run.counts["control"] == len(control)
    assert all(d.uri.startswith("s3://acme-marketing/audiences/") for d in run.deliveries)


def test_retried_run_writes_exactly_one_copy(appendix_ws: Workspace, s3: Any) -> None:
    first = appendix_ws.campaign_run("Spring Churn Prevention")
    assert first.status == "succeeded", first.error
    before = objects(s3)
    # The run is marked failed after its files landed (say the worker died before recording);
    # retrying it must not produce second copies.
    appendix_ws.store.runs.finish(first.id, status="failed", now=appendix_ws.clock(), error="x")
    retried = appendix_ws.campaign_run("Spring Churn Prevention")
    assert retried.id == first.id and retried.status == "succeeded", retried.error
    assert objects(s3) == before
