"""A webhook as a destination, against a real HTTP server on loopback that fails on purpose:
records in JSON batches, idempotency keys, HMAC signatures, retries on 429/5xx honouring
Retry-After, terminal 4xx, pacing."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from audience.definitions.loader import validate_data
from audience.delivery.destinations.webhook.client import SIGNATURE_HEADER, WebhookClient
from audience.delivery.destinations.webhook.settings import WebhookSettings
from audience.errors import DefinitionError, TerminalDeliveryError, TransientDeliveryError
from audience.scheduling.worker import Worker
from audience.settings import SecretsSettings
from audience.store.secrets import new_key
from audience.workspace import Workspace
from realservices import NOW


@dataclass
class Receiver:
    """What the server saw, and the answers it gives first (then 200)."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Every record accepted, by idempotency key (a well-behaved receiver's view)."""
        accepted: dict[str, list[dict[str, Any]]] = {}
        for request in self.requests:
            if request["status"] == 200:
                accepted[request["headers"]["idempotency-key"]] = request["body"]["records"]
        return accepted


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                status, headers = state.answers.pop(0) if state.answers else (200, {})
                state.requests.append(
                    {
                        "status": status,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "raw": body,
                        "body": json.loads(body),
                    }
                )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/audience?token=t0p"
    server.shutdown()
    server.server_close()


def client(url: str, waits: list[float], **settings: Any) -> WebhookClient:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    return WebhookClient(
        WebhookSettings.model_validate({"url": url, **settings}, context={"expanded": True}),
        sleep=sleep,
        clock=lambda: clock[0],
    )


def rows(n: int) -> list[pa.RecordBatch]:
    return pa.table({"amperity_id": [f"id-{i}" for i in range(n)], "n": list(range(n))}).to_batches(
        max_chunksize=40
    )


def test_records_arrive_in_signed_batches_with_idempotency_keys(
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    waits: list[float] = []
    sent = client(url, waits, batch_size=100, secret="s3cret").send_records(
        "Loyalty_all.json", rows(250), run_id="r1"
    )
    assert [len(r["body"]["records"]) for r in state.requests] == [100, 100, 50]
    assert [r["body"]["batch"] for r in state.requests] == [1, 2, 3]
    keys = [r["headers"]["idempotency-key"] for r in state.requests]
    assert len(set(keys)) == 3
    for request in state.requests:
        expected = hmac.new(b"s3cret", request["raw"], hashlib.sha256).hexdigest()
        assert request["headers"][SIGNATURE_HEADER.lower()] == f"sha256={expected}"
    everyone = [r for request in state.requests for r in request["body"]["records"]]
    assert everyone == [{"amperity_id": f"id-{i}", "n": i} for i in range(250)]
    assert sent.bytes == sum(len(r["raw"]) for r in state.requests) and waits == []
    # The same delivery again (a retried run) uses the same keys: a receiver counts it once.
    client(url, waits, batch_size=100).send_records("Loyalty_all.json", rows(250), run_id="r1")
    assert [r["headers"]["idempotency-key"] for r in state.requests[3:]] == keys
    assert sum(len(v) for v in state.records().values()) == 250


def test_429_and_503_are_retried_after_their_retry_after(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.answers = [(503, {}), (429, {"Retry-After": "7"}), (502, {})]
    waits: list[float] = []
    client(url, waits, batch_size=1000, backoff_seconds=0.5).send_records(
        "x.json", rows(10), run_id="r"
    )
    assert [r["status"] for r in state.requests] == [503, 429, 502, 200]
    assert waits == [0.5, 7.0, 2.0]  # back-off doubles; the server's hint wins when given
    assert len({r["headers"]["idempotency-key"] for r in state.requests}) == 1


def test_a_server_that_keeps_failing_fails_the_run_as_transient(
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    state.answers = [(503, {"Retry-After": "30"})] * 3
    with pytest.raises(TransientDeliveryError, match=r"HTTP 503") as failed:
        client(url, [], max_attempts=3).send_records("x.json", rows(10), run_id="r")
    assert failed.value.retry_after == 30 and len(state.requests) == 3
    assert "t0p" not in str(failed.value)  # the query string (a token) is not repeated


def test_a_refusal_is_terminal_at_once(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.answers = [(401, {})]
    with pytest.raises(TerminalDeliveryError, match="HTTP 401"):
        client(url, []).send_records("x.json", rows(10), run_id="r")
    assert len(state.requests) == 1


def test_requests_keep_to_the_rate_limit(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    waits: list[float] = []
    client(url, waits, batch_size=10, max_requests_per_second=4).send_records(
        "x.json", rows(40), run_id="r"
    )
    assert len(state.requests) == 4 and waits == [0.25, 0.25, 0.25]


def test_an_unreachable_webhook_is_transient_and_a_bad_url_is_refused() -> None:
    with pytest.raises(TransientDeliveryError, match=r"check to http://127\.0\.0\.1:9/"):
        client("http://127.0.0.1:9/", [], max_attempts=2).check()
    for url in ("ftp://example.com/x", "example.com/hook", "http:///nohost"):
        with pytest.raises(DefinitionError, match="http:// or https://"):
            validate_data(
                {"kind": "destination", "name": "w", "type": "webhook", "settings": {"url": url}}
            )
    with pytest.raises(DefinitionError, match=r"file\.manifest: a webhook takes records"):
        validate_data(
            {
                "kind": "destination",
                "name": "w",
                "type": "webhook",
                "settings": {"url": "https://example.com/h"},
                "file": {"manifest": True},
            }
        )


def webhook(**settings: Any) -> dict[str, Any]:
    return {"kind": "destination", "name": "w", "type": "webhook", "settings": settings}


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Authorization", "Bearer PLAINHEADER-77"),
        ("authorization", "PLAINHEADER-77"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("Cookie", "session=PLAIN"),
        ("X-Api-Key", "PLAIN-KEY"),
        ("X-Auth", "PLAIN"),
        ("X-Access-Token", "PLAIN"),
        ("X-Client-Secret", "PLAIN"),
        ("X-Password", "PLAIN${secret:half}"),
        ("X-Hub-Signature", "sha256=PLAIN"),
    ],
)
def test_a_header_carrying_a_credential_in_plain_text_is_refused(header: str, value: str) -> None:
    with pytest.raises(DefinitionError, match="carries a credential") as refused:
        validate_data(webhook(url="https://example.com/h", headers={header: value}))
    assert refused.value.field == f"settings.headers.{header}"
    assert "PLAIN" not in str(refused.value)


def test_credential_headers_by_reference_and_other_headers_are_accepted() -> None:
    headers = {
        "Authorization": "Bearer ${secret:token}",
        "X-Api-Key": "${API_KEY}",
        "Cookie": "session=${secret:session}",
        "Proxy-Authorization": "${secret:proxy}",
        "Content-Language": "en",
        "X-Campaign": "spring",
    }
    loaded = validate_data(webhook(url="https://example.com/h", headers=headers))
    assert loaded.definition.settings.headers == headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "http://user:URLPASS-55@example.com/hook",
        "https://user:${PASS}@example.com/hook",
        "https://:URLPASS-55@example.com/hook",
    ],
)
def test_a_url_with_a_password_is_refused(url: str) -> None:
    with pytest.raises(DefinitionError, match="holds no password") as refused:
        validate_data(webhook(url=url))
    assert refused.value.field == "settings.url"
    assert "URLPASS" not in str(refused.value)
    with pytest.raises(ValueError, match="holds no password"):  # nor once expanded
        WebhookSettings.model_validate({"url": url}, context={"expanded": True})


def test_errors_show_the_url_without_user_nor_query() -> None:
    with pytest.raises(TransientDeliveryError, match=r"check to http://127\.0\.0\.1:9/h") as failed:
        client("http://someone@127.0.0.1:9/h?token=t0p", [], max_attempts=1).check()
    assert "someone" not in str(failed.value) and "t0p" not in str(failed.value)
    unsent = client("http://someone@127.0.0.1:9/h", [])
    with pytest.raises(TerminalDeliveryError) as refused:
        unsent.publish("x.csv", [], run_id="r")
    assert "someone" not in str(refused.value)


def test_a_campaign_run_retried_after_503s_sends_each_batch_once(
    fresh_workspace: Workspace, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    state, url = receiver
    ws = fresh_workspace
    documents = [
        {
            "kind": "destination",
            "name": "esp",
            "type": "webhook",
            "settings": {"url": url, "batch_size": 50, "max_attempts": 2, "backoff_seconds": 0},
            "file": {"format": "json"},
            "default_attributes": ["amperity_id", "email"],
        },
        {
            "kind": "segment",
            "name": "Gold",
            "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
        },
        {
            "kind": "campaign",
            "name": "Gold offer",
            "audience": {"include": ["Gold"]},
            "treatments": [{"name": "Offer", "percent": 90, "destinations": ["esp"]}],
            "control": 10,
        },
    ]
    ws.apply_documents([validate_data(d) for d in documents])
    ws.activations.schedule("campaign", "Gold offer")
    # Batches 1 and 2 go through; batch 3 meets two 503s: the attempt fails, transient.
    state.answers = [(200, {}), (200, {}), (503, {}), (503, {"Retry-After": "0"})]
    worker = Worker(ws, name="w")
    (first,) = worker.tick()
    assert first.status == "queued" and first.error_kind == "transient", first.error
    assert first.not_before is not None
    ws.clock = lambda: first.not_before or NOW
    (run,) = worker.tick()
    assert run.status == "succeeded" and run.attempt == 2, run.error
    (delivery,) = run.deliveries
    assert delivery.rows == run.counts["sent"] > 100
    accepted = state.records()
    assert sum(len(batch) for batch in accepted.values()) == run.counts["sent"]
    ids = [r["amperity_id"] for batch in accepted.values() for r in batch]
    assert len(ids) == len(set(ids))  # nobody counted twice by a receiver honouring the keys


def test_stored_secrets_sign_and_authorise_requests_and_never_show(
    fresh_workspace: Workspace, receiver: tuple[Receiver, str]
) -> None:
    """`${secret:NAME}` in a destination: the stored value signs and authorises each request,
    and appears in no export, run or error; a secret removed fails the run, naming it."""
    state, url = receiver
    ws = fresh_workspace
    ws.settings.secrets = SecretsSettings(key=new_key())
    ws.secrets.set("hook.key", "k3y-value-1", actor="test", now=NOW)
    ws.secrets.set("hook_token", "t0ken-value-2", actor="test", now=NOW)
    documents = [
        {
            "kind": "destination",
            "name": "partner",
            "type": "webhook",
            "settings": {
                "url": url,
                "secret": "${secret:hook.key}",
                "headers": {"Authorization": "Bearer ${secret:hook_token}"},
                "max_attempts": 1,
            },
            "file": {"format": "json"},
        },
        {
            "kind": "orchestration",
            "name": "Partner feed",
            "query": "select amperity_id, email from customer_360 order by amperity_id limit 7",
            "destination": "partner",
        },
    ]
    ws.apply_documents([validate_data(d) for d in documents])
    run = ws.run_now("orchestration", "Partner feed")
    assert run.status == "succeeded", run.error
    check, request = state.requests  # the connection check before the first byte, then data
    assert check["body"]["records"] == [] and len(request["body"]["records"]) == 7
    for sent in (check, request):
        expected = hmac.new(b"k3y-value-1", sent["raw"], hashlib.sha256).hexdigest()
        assert sent["headers"][SIGNATURE_HEADER.lower()] == f"sha256={expected}"
        assert sent["headers"]["authorization"] == "Bearer t0ken-value-2"
    ws.secrets.remove("hook_token", actor="test", now=NOW)
    failed = ws.run_now("orchestration", "Partner feed", now=NOW + timedelta(minutes=1))
    assert failed.status == "failed" and failed.error_kind == "terminal"
    assert "${secret:hook_token}" in (failed.error or "")
    assert "audience secret set hook_token" in (failed.error or "")
    shown = json.dumps([ws.export(), failed.error, [r.error for r in ws.store.runs.history()]])
    assert "k3y-value-1" not in shown and "t0ken-value-2" not in shown
    assert len(state.requests) == 2  # nothing sent without the secret


def test_a_header_that_cannot_be_sent_fails_the_run_without_showing_it(
    fresh_workspace: Workspace, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    ws = fresh_workspace
    ws.settings.secrets = SecretsSettings(key=new_key())
    ws.secrets.set("token", "Bearer t0ken-value\n", actor="test", now=NOW)
    documents = [
        {
            "kind": "destination",
            "name": "partner",
            "type": "webhook",
            "settings": {"url": url, "headers": {"Authorization": "${secret:token}"}},
            "file": {"format": "json"},
        },
        {
            "kind": "orchestration",
            "name": "Feed",
            "query": "select amperity_id from customer_360 limit 3",
            "destination": "partner",
        },
    ]
    ws.apply_documents([validate_data(d) for d in documents])
    run = ws.run_now("orchestration", "Feed")
    assert run.status == "failed" and run.error_kind == "terminal"
    assert "control character" in (run.error or "") and "t0ken-value" not in (run.error or "")
    assert state.requests == []
