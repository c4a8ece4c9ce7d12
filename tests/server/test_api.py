"""The REST API over a real DuckDB workspace: every route refuses callers without credentials
and those whose role does not allow it; bad input is a 422 naming the field, a missing thing a
404, a conflict a 409; sessions need their CSRF token; secrets go in and never come out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML
from sqlglot import exp

from audience.server.app import create_app
from audience.server.auth import CSRF_HEADER, MAX_FAILURES
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from realservices import fixed_clock

PASSWORD = "correct horse battery staple"
SEGMENT = {
    "kind": "segment",
    "name": "Gold",
    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
}
OUT = {
    "kind": "destination",
    "name": "out",
    "type": "filesystem",
    "settings": {"path": "out"},
    "file": {"format": "csv", "compression": "none"},
    "default_attributes": ["amperity_id", "email"],
}
GOLD_OFFER = {
    "kind": "campaign",
    "name": "Gold offer",
    "audience": {"include": ["Gold"]},
    "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
    "control": 10,
}
CAMPAIGN = [SEGMENT, OUT, GOLD_OFFER]
"""A segment, a folder and a campaign sending the segment to it."""
PUBLIC = {"/health", "/auth/login", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@pytest.fixture
def directory(tmp_path: Path, sample_database: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from audience.store.secrets import new_key

    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    shutil.copy(sample_database, tmp_path / "customer360.duckdb")
    monkeypatch.setenv("AUDIENCE__SECRETS__KEY", new_key())
    with Workspace.open(tmp_path, fixed_clock) as ws:
        accounts = ws.store.accounts
        for name, role in (("vera", "viewer"), ("ed", "editor"), ("ada", "admin")):
            accounts.add_user(name, role, PASSWORD, actor="test", now=fixed_clock())
    return tmp_path


@pytest.fixture
def client(directory: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(directory, clock=fixed_clock, worker=False), base_url="https://testserver"
    ) as client:
        yield client


def bearer(client: TestClient, user: str) -> dict[str, str]:
    """Headers with a new API token of `user`'s (made through the API, signed in)."""
    session = client.post("/auth/login", json={"name": user, "password": PASSWORD})
    assert session.status_code == 200, session.text
    made = client.post(
        "/tokens", json={"label": "t"}, headers={CSRF_HEADER: session.json()["csrf_token"]}
    )
    assert made.status_code == 201, made.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {made.json()['token']}"}


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_but_health_needs_credentials(client: TestClient) -> None:
    assert client.get("/health").json() == {"ok": True}
    checked = 0
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path in PUBLIC:
            continue
        for method in operations:
            answer = client.request(method.upper(), _path(path), json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 20
    wrong = client.get("/status", headers={"Authorization": "Bearer aud_0000_nothing"})
    assert wrong.status_code == 401


def test_each_role_reaches_its_routes_only(client: TestClient) -> None:
    vera, ed, ada = (bearer(client, u) for u in ("vera", "ed", "ada"))
    assert client.get("/status", headers=vera).status_code == 200
    assert client.post("/definitions", json=[SEGMENT], headers=vera).status_code == 403
    applied = client.post("/definitions", json=[SEGMENT], headers=ed)
    assert applied.status_code == 200, applied.text
    assert applied.json() == [{"kind": "segment", "name": "Gold", "version": 1, "changed": True}]
    destination = {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": "out"},
    }
    refused = client.post("/definitions", json=[destination], headers=ed)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert client.post("/definitions", json=[destination], headers=ada).status_code == 200
    for admin_only in ("/users", "/secrets", "/audit"):
        assert client.get(admin_only, headers=ed).status_code == 403
        assert client.get(admin_only, headers=ada).status_code == 200


def test_a_campaign_is_planned_scheduled_and_followed(client: TestClient, directory: Path) -> None:
    ada = bearer(client, "ada")
    applied = client.post("/definitions", json=CAMPAIGN, headers=ada)
    assert applied.status_code == 200, applied.text
    plan = client.get("/campaigns/Gold offer/plan", headers=ada).json()
    with Workspace.open(directory, fixed_clock) as ws:
        assert plan == ws.campaign_plan("Gold offer").to_json()  # the CLI's --json shape
    scheduled = client.post("/campaigns/Gold offer/schedule", headers=ada)
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"
    again = client.post("/campaigns/Gold offer/schedule", headers=ada)
    assert again.status_code == 409 and "scheduled already" in again.json()["detail"]
    (row,) = client.get("/status", headers=ada).json()["items"]
    assert (row["kind"], row["name"], row["status"]) == ("campaign", "Gold offer", "scheduled")
    assert client.get("/campaigns/Nothing/plan", headers=ada).status_code == 404
    assert client.get("/runs", headers=ada).json() == {
        "items": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }
    insights = client.get("/segments/Gold/insights", headers=ada)
    assert insights.status_code == 200 and insights.json()["customers"] > 0
    entries = [
        (e["actor"], e["action"], e["target"]) for e in client.get("/audit", headers=ada).json()
    ]
    assert ("ada", "schedule", "campaign/Gold offer") in entries
    assert ("ada", "apply", "campaign/Gold offer") in entries


def test_definitions_are_exported_as_the_documents_apply_takes(
    client: TestClient, directory: Path
) -> None:
    ada = bearer(client, "ada")
    assert client.post("/definitions", json=CAMPAIGN, headers=ada).status_code == 200
    exported = client.get("/definitions", headers=ada)
    assert exported.status_code == 200, exported.text
    names = [(d["kind"], d["name"]) for d in exported.json()]
    assert sorted(names) == sorted((d["kind"], d["name"]) for d in CAMPAIGN)
    assert names[-1] == ("campaign", "Gold offer")  # after what it uses
    with Workspace.open(directory, fixed_clock) as ws:
        assert exported.json() == list(YAML(typ="safe").load_all(ws.export()))  # `export`
    again = client.post("/definitions", json=exported.json(), headers=ada).json()
    assert [change["changed"] for change in again] == [False, False, False]  # unchanged
    only = client.get("/definitions?kind=destination", headers=ada).json()
    assert [d["name"] for d in only] == ["out"] and only[0]["settings"]["path"] == "out"
    assert client.get("/definitions?kind=rocket", headers=ada).status_code == 422


def test_a_plan_is_started_then_polled_until_it_answers(client: TestClient) -> None:
    ada, vera = bearer(client, "ada"), bearer(client, "vera")
    assert client.post("/definitions", json=CAMPAIGN, headers=ada).status_code == 200
    started = client.post("/campaigns/Gold offer/plan", headers=ada)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["campaign"] == "Gold offer" and job["status"] in ("queued", "running", "succeeded")
    assert started.headers["location"] == f"/plans/{job['job_id']}"
    deadline = time.monotonic() + 60
    while (job := client.get(started.headers["location"], headers=ada).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, job
        threading.Event().wait(0.02)
    assert job["status"] == "succeeded" and job["error"] is None and job["ended_at"]
    assert job["plan"] == client.get("/campaigns/Gold offer/plan", headers=ada).json()
    assert client.post("/campaigns/Nothing/plan", headers=ada).status_code == 404
    assert client.post("/campaigns/Gold offer/plan", headers=vera).status_code == 403
    assert client.get("/plans/nothing", headers=ada).status_code == 404


def test_plans_under_way_are_bounded() -> None:
    from audience.errors import StateError
    from audience.server.jobs import OUTSTANDING, PlanJobs

    jobs, release = PlanJobs(fixed_clock), threading.Event()

    def slow() -> Any:
        release.wait(30)
        raise StateError("released")

    started = [jobs.start("Gold offer", slow) for _ in range(OUTSTANDING)]
    with pytest.raises(StateError, match="being worked out already"):
        jobs.start("Gold offer", slow)
    release.set()
    jobs.close()  # waits for the one under way; the queued ones are dropped with the server
    assert jobs.get(started[0].job_id).status == "failed"
    jobs = PlanJobs(fixed_clock)
    assert jobs.start("Gold offer", slow).status == "queued"  # room again
    jobs.close()


def test_a_plan_that_fails_says_how_as_the_route_would_have() -> None:
    from audience.errors import NotFound
    from audience.server.jobs import PlanJobs

    jobs = PlanJobs(fixed_clock)

    def gone() -> Any:
        raise NotFound("segment 'Gold' does not exist")

    job = jobs.start("Gold offer", gone)
    jobs.close()  # lets the job end first
    deadline = time.monotonic() + 10
    while (ended := jobs.get(job.job_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    assert (ended.status, ended.error_status) == ("failed", 404)
    assert ended.error == "segment 'Gold' does not exist" and ended.plan is None


@pytest.mark.parametrize(
    ("documents", "location"),
    [
        (
            [
                {
                    "kind": "segment",
                    "name": "X",
                    "where": {"attribute": "nope", "op": "=", "value": 1},
                }
            ],
            None,
        ),
        (
            [
                {
                    "kind": "segment",
                    "name": "X",
                    "where": {"attribute": "state", "op": "~", "value": 1},
                }
            ],
            None,
        ),
        ([{"kind": "rocket", "name": "X"}], ["body", "0", "kind"]),
        ([SEGMENT, {"kind": "campaign", "name": "C"}], None),
    ],
)
def test_bad_definitions_are_422_naming_the_field(
    client: TestClient, documents: list[dict[str, Any]], location: list[str] | None
) -> None:
    answer = client.post("/definitions", json=documents, headers=bearer(client, "ed"))
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["msg"] and problem["type"]
    assert problem["loc"][0] == "body" and problem["loc"][1].isdigit()
    if location is not None:
        assert problem["loc"] == location
    assert client.get("/segments", headers=bearer(client, "ed")).json()["total"] == 0


def _journey(first: dict[str, Any]) -> dict[str, Any]:
    then = {"name": "Send", "type": "activate", "destinations": ["out"]}
    return {"kind": "journey", "name": "J", "include": ["Gold"], "nodes": [first, then]}


def _campaign(recurring: dict[str, Any]) -> dict[str, Any]:
    return {**GOLD_OFFER, "schedule": {"recurring": recurring}}


@pytest.mark.parametrize(
    ("document", "field", "fragment"),
    [
        (
            _journey({"name": "Wait", "type": "delay", "value": 1_000_000, "unit": unit}),
            "2.nodes.0.value",
            f"give at most {most} {unit}",
        )
        for unit, most in (("days", "3,660"), ("weeks", "522"), ("months", "120"))
    ]
    + [
        (
            _journey({"name": "Wait", "type": "delay", "value": 10**12, "unit": "hours"}),
            "2.nodes.0.value",
            "more than ten years; give at most 87,840 hours",
        ),
        (
            _journey(
                {
                    "name": "Wait",
                    "type": "delay",
                    "until": "Gold",
                    "at_most": {"value": 10**12, "unit": "days"},
                    "matched": "Send",
                    "timed_out": "Send",
                }
            ),
            "2.nodes.0.at_most.value",
            "give at most 3,660 days",
        ),
        (
            _campaign({"every": "day", "at": "23:30", "start": "9999-12-01T00:00:00Z"}),
            "2.schedule.recurring.start",
            "from 1900-01-01 to 8999-12-31",
        ),
        (
            _campaign({"every": "day", "at": "23:30", "start": "9999-12-30"}),
            "2.schedule.recurring.start",
            "out of range",
        ),
        (
            _campaign({"every": "month", "on": 31, "start": "9999-12-30"}),
            "2.schedule.recurring.start",
            "out of range",
        ),
        (
            _campaign({"every": "day", "end": {"on": "9999-12-31"}}),
            "2.schedule.recurring.end.on",
            "out of range",
        ),
        (
            {**GOLD_OFFER, "schedule": {"once": "9999-12-31T23:59:00-12:00"}},
            "2.schedule.once",
            "out of range",
        ),
        (
            {
                "kind": "orchestration",
                "name": "Extract",
                "query": "select amperity_id, email from customer_360",
                "destination": "out",
                "schedule": {
                    "recurring": {
                        "cron": "59 23 31 12 *",
                        "timezone": "Pacific/Kiritimati",
                        "start": "9999-12-30",
                    }
                },
            },
            "2.schedule.recurring.start",
            "out of range",
        ),
    ],
)
def test_times_past_the_calendar_are_422s_naming_the_field(
    client: TestClient, document: dict[str, Any], field: str, fragment: str
) -> None:
    answer = client.post(
        "/definitions", json=[SEGMENT, OUT, document], headers=bearer(client, "ada")
    )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", *field.split(".")]
    assert fragment in problem["msg"]


def test_a_session_needs_its_csrf_token_to_change_anything(client: TestClient) -> None:
    signed = client.post("/auth/login", json={"name": "ada", "password": PASSWORD})
    assert signed.status_code == 200
    csrf = signed.json()["csrf_token"]
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/me").json() == {"name": "ada", "role": "admin"}
    refused = client.post("/definitions", json=[SEGMENT])
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert (
        client.post("/definitions", json=[SEGMENT], headers={CSRF_HEADER: "0" * 64}).status_code
        == 403
    )
    assert (
        client.post("/definitions", json=[SEGMENT], headers={CSRF_HEADER: csrf}).status_code == 200
    )
    assert client.post("/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 200
    stolen = signed.cookies.get("audience_session")
    assert client.get("/me", cookies={"audience_session": stolen}).status_code == 401


def test_sign_ins_are_limited_after_repeated_failures(client: TestClient) -> None:
    for _ in range(MAX_FAILURES):
        wrong = client.post("/auth/login", json={"name": "ada", "password": "not the password"})
        assert wrong.status_code == 401
    blocked = client.post("/auth/login", json={"name": "ada", "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    refused = [
        e
        for e in client.get("/audit", headers=_admin_token(client)).json()
        if e["action"] == "sign_in.refused"
    ]
    assert len(refused) == MAX_FAILURES


def _admin_token(client: TestClient) -> dict[str, str]:
    # Straight from the store: the API's sign-in is blocked in this test.
    ws = client.app.state.served.workspace  # type: ignore[attr-defined]
    issued = ws.store.accounts.create_token(
        "ada", "t", expires_at=None, actor="test", now=fixed_clock()
    )
    return {"Authorization": f"Bearer {issued.secret}"}


def test_a_revoked_token_stops_working_at_once(client: TestClient) -> None:
    ada = bearer(client, "ada")
    (token,) = [
        t
        for t in client.get("/tokens", headers=ada).json()["items"]
        if t["user"] == "ada" and t["label"] == "t"
    ]
    other = bearer(client, "vera")
    assert client.delete(f"/tokens/{token['id']}", headers=other).status_code == 403
    for_ada = client.post("/tokens", json={"label": "x", "user": "ada"}, headers=other)
    assert for_ada.status_code == 403 and "only an admin" in for_ada.json()["detail"]
    assert all(t["user"] == "vera" for t in client.get("/tokens", headers=other).json()["items"])
    assert client.delete(f"/tokens/{token['id']}", headers=ada).status_code == 200
    assert client.get("/status", headers=ada).status_code == 401


def test_secrets_go_in_and_never_come_out(client: TestClient) -> None:
    ada = bearer(client, "ada")
    value = "pa55-w0rd-never-shown"
    stored = client.put("/secrets/sftp.password", json={"value": value}, headers=ada)
    assert stored.status_code == 200 and stored.json() == {"name": "sftp.password", "created": True}
    bad = client.put("/secrets/1bad", json={"value": value}, headers=ada)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "name"]
    answers = [
        client.get(path, headers=ada).text
        for path in ("/secrets", "/audit", "/users", "/tokens", "/status", "/openapi.json")
    ]
    assert all(value not in answer for answer in answers)
    assert json.loads(answers[0])[0]["name"] == "sftp.password"
    assert client.delete("/secrets/sftp.password", headers=ada).status_code == 200
    assert client.delete("/secrets/sftp.password", headers=ada).status_code == 404


def test_users_are_managed_by_admins(client: TestClient) -> None:
    ada = bearer(client, "ada")
    added = client.post(
        "/users", json={"name": "new", "role": "editor", "password": PASSWORD}, headers=ada
    )
    assert added.status_code == 201 and added.json()["role"] == "editor"
    assert client.post("/users", json={"name": "new"}, headers=ada).status_code == 409
    bad = client.post("/users", json={"name": "x", "role": "boss"}, headers=ada)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "role"]
    assert client.delete("/users/new", headers=ada).status_code == 200
    assert client.delete("/users/new", headers=ada).status_code == 404


def test_roles_and_passwords_change_and_the_only_admin_stays_one(client: TestClient) -> None:
    ada, ed = bearer(client, "ada"), bearer(client, "ed")
    assert client.patch("/users/vera", json={"role": "editor"}, headers=ed).status_code == 403
    last = client.patch("/users/ada", json={"role": "viewer"}, headers=ada)
    assert last.status_code == 409 and "only admin" in last.json()["detail"]
    promoted = client.patch("/users/vera", json={"role": "admin"}, headers=ada)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    bad = client.patch("/users/vera", json={"role": "boss", "password": "x" * 20}, headers=ada)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "role"]
    vera_signs_in = client.post("/auth/login", json={"name": "vera", "password": PASSWORD})
    assert vera_signs_in.status_code == 200  # the refused change changed nothing
    client.cookies.clear()
    assert client.patch("/users/nobody", json={"role": "viewer"}, headers=ada).status_code == 404
    # Ed changes his own password from a browser session: that session ends with it.
    signed_in = client.post("/auth/login", json={"name": "ed", "password": PASSWORD})
    csrf = {CSRF_HEADER: signed_in.json()["csrf_token"]}
    new = "a different long password"
    wrong = client.put(
        "/me/password", json={"current_password": "nope", "new_password": new}, headers=csrf
    )
    assert wrong.status_code == 401
    changed = client.put(
        "/me/password", json={"current_password": PASSWORD, "new_password": new}, headers=csrf
    )
    assert changed.status_code == 200, changed.text
    assert client.get("/me").status_code == 401  # the session's token was revoked
    assert client.get("/me", headers=ed).json()["name"] == "ed"  # his API token still works
    client.cookies.clear()
    assert client.post("/auth/login", json={"name": "ed", "password": PASSWORD}).status_code == 401
    assert client.post("/auth/login", json={"name": "ed", "password": new}).status_code == 200
    client.cookies.clear()
    short = client.patch("/users/ed", json={"password": "short"}, headers=ada)
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "password"]


def test_a_422_says_where_the_field_is_and_viewers_read_definitions(client: TestClient) -> None:
    ada, vera = bearer(client, "ada"), bearer(client, "vera")
    assert client.post("/definitions", json=CAMPAIGN, headers=ada).status_code == 200

    def where(answer: Any) -> list[str]:
        assert answer.status_code == 422, answer.text
        return list(answer.json()["detail"][0]["loc"])

    results = client.get("/campaigns/Gold offer/results?window=0d", headers=ada)
    assert where(results) == ["query", "window"]
    assert where(client.get("/segments/overlap?name=Gold", headers=ada)) == ["query", "name"]
    assert where(client.get("/segments/Gold/insights?by=nope", headers=ada)) == ["query", "by"]
    secret = client.put("/secrets/bad name", json={"value": "x"}, headers=ada)
    assert where(secret) == ["path", "name"]
    past = client.post("/tokens", json={"expires_at": "2001-01-01T00:00:00Z"}, headers=ada)
    assert where(past) == ["body", "expires_at"]
    assert where(client.patch("/users/vera", json={}, headers=ada)) == ["body"]
    assert client.patch("/users/vera", json={"rol": "admin"}, headers=ada).status_code == 422
    long = client.post("/users", json={"name": "x", "password": "p" * 1025}, headers=ada)
    assert where(long) == ["body", "password"]
    signed_in = client.post("/auth/login", json={"name": "ed", "password": PASSWORD})
    short = client.put(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers={CSRF_HEADER: signed_in.json()["csrf_token"]},
    )
    assert where(short) == ["body", "new_password"]
    client.cookies.clear()
    assert client.get("/definitions", headers=vera).status_code == 200  # a viewer reads
    assert client.get("/definitions/segment/Gold", headers=vera).status_code == 200
    spark = client.get("/segments/Gold/sql?dialect=spark", headers=vera).json()["sql"]
    assert "`loyalty_tier`" in spark  # Spark's quoting, not the workspace's DuckDB
    assert "`" not in client.get("/segments/Gold/sql", headers=vera).json()["sql"]
    assert client.get("/segments/Gold/sql?dialect=oracle", headers=vera).status_code == 422


def test_the_openapi_description_names_every_route(client: TestClient) -> None:
    described = client.get("/openapi.json").json()["paths"]
    assert {"/status", "/definitions", "/segments/{name}/insights", "/runs/{run_id}"} <= set(
        described
    )


FREE_FORM = {
    "Rows[]": "a preview's rows: which columns, of which types, is up to the query",
    "DefinitionShape.body": "a document as written; its shape is its kind's (SPEC Appendix A)",
    "GET /definitions[]": "documents as apply takes them; each one's shape is its kind's",
    "RunShape.counts": "what a run counted depends on its kind and on the version that ran it",
    "CanceledRunShape.counts": "the same counts, of a canceled run",
    "CampaignPlan.shrink": "customers lost per destination: keyed by the destination's name",
    "JourneyCounts.exited": "customers who left per exit segment: keyed by the segment's name",
    "JourneyCounts.paths": "customers who took each split path: keyed by the path's name",
    "AuditShape.detail": "what each action records about itself",
}
"""Where an answer holds an object whose keys are not known in advance, and why that is right."""


def _untyped_objects(spec: dict[str, Any]) -> set[str]:
    """Every place a 2xx JSON answer holds an object described by no properties (a bare
    `object`, or `additionalProperties` alone), named `Model.field`, with `[]` for an array's
    items and `{}` for a map's values."""
    components = spec["components"]["schemas"]
    found: set[str] = set()

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(components[name], name, seen | {name})
            return
        is_object = schema.get("type") == "object" or "additionalProperties" in schema
        if is_object and not schema.get("properties"):
            found.add(where)
        for name, field in schema.get("properties", {}).items():
            walk(field, f"{where}.{name}", seen)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], f"{where}[]", seen)
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"], f"{where}{{}}", seen)
        for option in (
            *schema.get("anyOf", ()),
            *schema.get("oneOf", ()),
            *schema.get("allOf", ()),
        ):
            walk(option, where, seen)

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None:
                    walk(schema, f"{method.upper()} {path}", frozenset())
    return found


def test_every_answer_is_described_field_by_field(client: TestClient) -> None:
    """Each answer is a model, so OpenAPI says what it holds; free-form objects are only where
    FREE_FORM says why."""
    untyped = _untyped_objects(client.get("/openapi.json").json())
    assert untyped - set(FREE_FORM) == set()
    assert set(FREE_FORM) - untyped == set(), "no longer free-form: take it off the list"


def test_a_run_is_accepted_then_polled_until_the_servers_worker_has_sent_it(
    directory: Path,
) -> None:
    errors: list[BaseException] = []
    app = create_app(directory, clock=fixed_clock, worker=True, on_worker_error=errors.append)
    with TestClient(app, base_url="https://testserver") as client:
        ada = bearer(client, "ada")
        assert client.post("/definitions", json=CAMPAIGN, headers=ada).status_code == 200
        accepted = client.post("/campaigns/Gold offer/run", headers=ada)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["status"] == "queued"
        location = accepted.headers["location"]
        assert location == f"/runs/{accepted.json()['run_id']}"
        twice = client.post("/campaigns/Gold offer/run", headers=ada)
        assert twice.status_code == 409  # the same second's run exists
        deadline = time.monotonic() + 60
        while (run := client.get(location, headers=ada).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, run
            threading.Event().wait(0.05)
        assert run["status"] == "succeeded", run
        assert run["trigger"] == "manual" and errors == []
        stored = app.state.served.workspace.store.runs.find(run["run_id"])
        assert run == stored.to_json()  # the CLI's `runs --json` item, key for key
        assert run["campaign"] == "Gold offer" and "journey" not in run
        (delivery,) = [d for d in run["deliveries"] if d["role"] == "data"]
        sent = Path(delivery["uri"].removeprefix("file://")).read_text().splitlines()
        assert sent[0] == "amperity_id,email" and len(sent) - 1 == delivery["rows"] == run["sent"]
        again = client.post("/campaigns/Gold offer/run", headers=ada)  # the first one has ended
        assert again.status_code == 202, again.text
        first, second = (datetime.fromisoformat(r["scheduled_for"]) for r in (run, again.json()))
        assert second - first == timedelta(seconds=1)  # the same second's run is taken: the next
        assert client.post("/campaigns/Nothing/run", headers=ada).status_code == 404


def _wait_for(client: TestClient, location: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (run := client.get(location, headers=headers).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        threading.Event().wait(0.05)
    return run


def test_a_failed_run_is_retried_and_results_previews_and_overlap_answer(directory: Path) -> None:
    with TestClient(
        create_app(directory, clock=fixed_clock, worker=True), base_url="https://testserver"
    ) as client:
        ada = bearer(client, "ada")
        (directory / "blocked").write_text("a file where the folder should be")
        documents = [
            SEGMENT,
            {**SEGMENT, "name": "Silver", "where": {**SEGMENT["where"], "value": "silver"}},  # type: ignore[dict-item]
            {
                "kind": "destination",
                "name": "drop",
                "type": "filesystem",
                "settings": {"path": "blocked/out"},
                "default_attributes": ["amperity_id", "email"],
            },
            {
                "kind": "orchestration",
                "name": "Extract",
                "query": "select amperity_id, email from customer_360 where loyalty_tier = 'gold'",
                "destination": "drop",
            },
        ]
        assert client.post("/definitions", json=documents, headers=ada).status_code == 200
        preview = client.get("/orchestrations/Extract/preview?rows=3", headers=ada).json()
        assert len(preview["rows"]) == 3 and preview["columns"] == ["amperity_id", "email"]
        assert client.get("/destinations/drop/test", headers=ada).status_code == 502
        accepted = client.post("/orchestrations/Extract/run", headers=ada)
        failed = _wait_for(client, accepted.headers["location"], ada)
        assert failed["status"] == "failed" and failed["error_kind"] == "terminal", failed
        (directory / "blocked").unlink()
        retried = client.post(f"/runs/{failed['run_id']}/retry", headers=ada)
        assert retried.status_code == 202 and retried.json()["status"] == "queued", retried.text
        done = _wait_for(client, retried.headers["location"], ada)
        assert done["status"] == "succeeded" and done["attempt"] == 2, done
        sent = Path(done["deliveries"][0]["uri"].removeprefix("file://")).read_text().splitlines()
        assert done["sent"] == len(sent) - 1 == preview["total"] > 3
        again = client.post(f"/runs/{failed['run_id']}/retry", headers=ada)
        assert again.status_code == 409 and "succeeded" in again.json()["detail"]
        overlap = client.get("/segments/overlap?name=Gold&name=Silver", headers=ada)
        assert overlap.status_code == 200, overlap.text
        bad_window = client.get("/campaigns/Nothing/results?window=forever", headers=ada)
        assert bad_window.status_code == 422
        assert bad_window.json()["detail"][0]["loc"] == ["query", "window"]


def test_the_duckdb_database_is_let_go_when_requests_pause(
    client: TestClient, directory: Path
) -> None:
    """Another process (the CLI, a worker) gets the customer database once requests pause."""
    ada = bearer(client, "ada")
    assert client.post("/definitions", json=[SEGMENT], headers=ada).status_code == 200
    assert client.get("/segments/Gold/insights", headers=ada).status_code == 200
    probe = f"import duckdb, sys; duckdb.connect({str(directory / 'customer360.duckdb')!r}).close()"
    deadline = time.monotonic() + 20
    while subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the server kept the database"
    assert client.get("/segments/Gold/insights", headers=ada).status_code == 200  # opened again


def test_an_editor_test_sends_a_sample_and_journeys_answer_for_their_state(
    client: TestClient, directory: Path
) -> None:
    ada, ed = bearer(client, "ada"), bearer(client, "ed")
    assert client.post("/definitions", json=CAMPAIGN, headers=ada).status_code == 200
    sent = client.post("/campaigns/Gold offer/test?records=3", headers=ed)
    assert sent.status_code == 200, sent.text
    run = sent.json()
    assert run["test"] is True and run["status"] == "succeeded"
    (delivery,) = [d for d in run["deliveries"] if d["role"] == "data"]
    path = Path(delivery["uri"].removeprefix("file://"))
    assert path.name.startswith("TEST_") and len(path.read_text().splitlines()) == 1 + 3
    assert client.post("/campaigns/Gold offer/test?records=0", headers=ed).status_code == 422
    assert client.post("/campaigns/Gold offer/run", headers=ed).status_code == 403
    assert client.post("/journeys/Nope/activate", headers=ada).status_code == 404
    assert client.post("/journeys/Nope/end", headers=ada).status_code == 404


def test_a_customers_travel_log_is_asked_for_by_query_so_no_journey_name_is_ambiguous(
    client: TestClient, directory: Path
) -> None:
    """A journey named `Gold/customers`: its status and a customer's log are told apart."""
    ada = bearer(client, "ada")
    journey = {
        "kind": "journey",
        "name": "Gold/customers",
        "include": ["Gold"],
        "schedule": {"every": {"value": 1, "unit": "days"}},
        "nodes": [{"name": "Hello", "type": "activate", "destinations": ["out"]}],
    }
    assert client.post("/definitions", json=[SEGMENT, OUT, journey], headers=ada).status_code == 200
    with Workspace.open(directory, fixed_clock) as ws:
        ws.journey_tick("Gold/customers")
        first = ws.engine.rows(
            exp.maybe_parse(
                "select min(case when loyalty_tier = 'gold' then amperity_id end) as gold, "
                "min(case when loyalty_tier <> 'gold' then amperity_id end) as other "
                "from customer_360"
            )
        )[0]
        gold, other = first["gold"], first["other"]
        steps = [s.model_dump(mode="json") for s in ws.journey_path("Gold/customers", gold)]
        counts = ws.journey_counts("Gold/customers").model_dump(mode="json")
    logged = client.get(f"/journeys/Gold/customers/path?customer={gold}", headers=ada)
    assert logged.status_code == 200 and logged.json() == steps  # `journey path --json`
    assert [(s["node"], s["event"]) for s in steps] == [("Hello", "entered"), ("Hello", "finished")]
    status = client.get("/journeys/Gold/customers/status", headers=ada)
    assert status.status_code == 200 and status.json()["name"] == "Gold/customers"
    assert client.get("/journeys/Gold/customers/counts", headers=ada).json() == counts
    not_entered = client.get(f"/journeys/Gold/customers/path?customer={other}", headers=ada)
    assert not_entered.status_code == 200 and not_entered.json() == []
    for unknown in (
        "/journeys/Gold/customers/path?customer=nobody",
        "/journeys/No/path?customer=x",
    ):
        answer = client.get(unknown, headers=ada)
        assert answer.status_code == 404 and answer.json()["error"] == "NotFound", answer.text
    assert client.get("/journeys/Gold/customers/path", headers=ada).status_code == 422


def test_a_refused_request_never_echoes_what_was_sent(client: TestClient) -> None:
    leaked = "MyRealPassw0rd-LEAK"
    wrong_shape = client.post("/auth/login", json={"name": 1, "password": leaked, "x": [1]})
    assert wrong_shape.status_code in (401, 422) and leaked not in wrong_shape.text
    missing = client.post("/auth/login", json={"password": leaked})
    assert missing.status_code == 422 and leaked not in missing.text
    ada = bearer(client, "ada")
    typo = client.put("/secrets/s1", json={"valu": leaked}, headers=ada)
    assert typo.status_code == 422 and leaked not in typo.text
    assert typo.json()["detail"][0]["loc"] == ["body", "value"]
    only = client.delete("/users/ada", headers=ada)
    assert only.status_code == 409 and "only admin" in only.json()["detail"]


def test_names_with_slashes_and_spaces_reach_their_routes(client: TestClient) -> None:
    ada = bearer(client, "ada")
    segment = {**SEGMENT, "name": "Black Friday / Cyber Monday"}
    assert client.post("/definitions", json=[segment], headers=ada).status_code == 200
    quoted = "Black%20Friday%20%2F%20Cyber%20Monday"
    insights = client.get(f"/segments/{quoted}/insights", headers=ada)
    assert insights.status_code == 200, insights.text
    assert insights.json()["segment"] == segment["name"]
    stored = client.get(f"/definitions/segment/{quoted}", headers=ada)
    assert stored.status_code == 200 and stored.json()["name"] == segment["name"]
    assert client.get("/segments/Black%20Friday/insights", headers=ada).status_code == 404


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (".", "only dots"),
        ("..", "only dots"),
        ("...", "only dots"),
        ("  Gold", "starts or ends with white space"),
        ("Gold ", "write 'Gold'"),
        ("Gold\u00a0", "white space"),
    ],
)
def test_a_name_no_url_could_reach_or_easily_type_again_is_refused(
    client: TestClient, name: str, fragment: str
) -> None:
    ed = bearer(client, "ed")
    answer = client.post("/definitions", json=[{**SEGMENT, "name": name}], headers=ed)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "0", "name"] and fragment in problem["msg"]
    assert client.get("/segments", headers=ed).json()["total"] == 0


def test_a_name_spelled_with_a_combining_accent_is_the_same_name(client: TestClient) -> None:
    ada = bearer(client, "ada")
    composed, decomposed = "\u00e9lise", "e\u0301lise"  # "élise" both ways
    first = client.post("/definitions", json=[{**SEGMENT, "name": composed}], headers=ada)
    assert first.json() == [{"kind": "segment", "name": composed, "version": 1, "changed": True}]
    again = client.post("/definitions", json=[{**SEGMENT, "name": decomposed}], headers=ada)
    assert again.json() == [{"kind": "segment", "name": composed, "version": 1, "changed": False}]
    assert [s["name"] for s in client.get("/segments", headers=ada).json()["items"]] == [composed]
    for spelled in (composed, decomposed):
        found = client.get(f"/segments/{quote(spelled)}/insights", headers=ada)
        assert found.status_code == 200, found.text
    # a campaign naming it the other way uses it
    campaign = {**GOLD_OFFER, "name": composed, "audience": {"include": [decomposed]}}
    applied = client.post("/definitions", json=[OUT, campaign], headers=ada)
    assert applied.status_code == 200, applied.text
    plan = client.get(f"/campaigns/{quote(decomposed)}/plan", headers=ada)
    assert plan.status_code == 200, plan.text


def test_sign_ins_sent_together_cannot_pass_the_limit(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def wrong(_: int) -> int:
        answer = client.post("/auth/login", json={"name": "ada", "password": "not it at all"})
        return answer.status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(wrong, range(30)))
    assert statuses.count(401) <= MAX_FAILURES and statuses.count(429) >= 30 - MAX_FAILURES
    assert set(statuses) <= {401, 429}


def test_odd_sign_ins_and_expiries_are_422s_or_work(client: TestClient) -> None:
    long = client.post("/auth/login", json={"name": "n" * 5000, "password": "x"})
    assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["body", "name"]
    ada = bearer(client, "ada")
    naive = client.post(
        "/tokens", json={"label": "later", "expires_at": "2030-01-01T00:00:00"}, headers=ada
    )
    assert naive.status_code == 201, naive.text
    assert naive.json()["expires_at"] == "2030-01-01T00:00:00+00:00"
