"""An HTTP endpoint as a destination (httpx): records as JSON, in batches, one request each.

Each request's body is `{"run_id", "file", "batch", "records": [...]}` and carries an
`Idempotency-Key` made of the run, the delivery's name and the batch number, so a batch sent
again — by a retry of the request, or of the whole run — is recognised by a receiver that honours
the key and not counted twice. With a `secret`, `X-Audience-Signature: sha256=<hex>` is the
HMAC-SHA256 of the body, for the receiver to check. A request failing with 429, 408, 5xx, a
time-out or a lost connection is tried again after a back-off (the server's Retry-After when it
gives one), up to `max_attempts`; then the run fails as transient and the run's own retry policy
takes over. Other 4xx answers (a wrong URL, a refused token) are terminal at once.
"""

from __future__ import annotations

import decimal
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from audience.delivery.destinations.base import PublishedObject, check_name
from audience.delivery.destinations.webhook.settings import WebhookSettings, without_userinfo
from audience.errors import DeliveryError, TerminalDeliveryError, TransientDeliveryError

_RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
SIGNATURE_HEADER = "X-Audience-Signature"
_MAX_RETRY_AFTER = 300.0


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if header is None:
        return None
    try:
        return min(max(float(header), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None  # an HTTP date: rare from webhooks; the back-off decides


class WebhookClient:
    """Sends records to one URL."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._http = httpx.Client(timeout=settings.timeout_seconds, transport=transport)
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None

    # names

    def address(self, name: str) -> str:
        """The endpoint (without a user or password), with the delivery's name as the
        fragment."""
        return f"{without_userinfo(self.settings.url)}#{check_name(name)}"

    def location(self, name: str) -> str:
        """Where the records of delivery `name` went."""
        return self.address(name)

    def exists(self, name: str) -> bool:
        """An endpoint cannot be asked what it has received: never."""
        del name
        return False

    def discard(self, name: str) -> int:
        """Nothing is left half-written at an endpoint: each batch is whole or not sent."""
        del name
        return 0

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        """A webhook takes records, not files (manifests and success files are refused when
        the destination is applied)."""
        del chunks, run_id
        raise TerminalDeliveryError(f"{self.address(name)}: a webhook takes records, not files")

    # the protocol

    def check(self) -> None:
        """The endpoint answers an empty batch with success (no customer data is sent)."""
        body = json.dumps({"run_id": None, "file": None, "batch": 0, "records": []}).encode()
        self._post(body, f"check-{secrets.token_hex(8)}", what="check")

    def send_records(
        self, name: str, batches: Iterable[pa.RecordBatch], *, run_id: str
    ) -> PublishedObject:
        """POST every row, `batch_size` records a request (see the module)."""
        digest, sent = hashlib.sha256(), 0
        key = hashlib.sha256(f"{run_id}\0{check_name(name)}".encode()).hexdigest()[:32]
        for number, records in enumerate(self._chunked(batches), start=1):
            body = json.dumps(
                {"run_id": run_id, "file": name, "batch": number, "records": records},
                default=_json_value,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode("utf-8")
            self._post(body, f"{key}-{number}", what=f"batch {number} of {name}")
            digest.update(body)
            sent += len(body)
        return PublishedObject(self.location(name), sent, digest.hexdigest())

    def _chunked(self, batches: Iterable[pa.RecordBatch]) -> Iterator[list[dict[str, Any]]]:
        size = self.settings.batch_size
        waiting: list[dict[str, Any]] = []
        for batch in batches:
            waiting.extend(batch.to_pylist())
            while len(waiting) >= size:
                yield waiting[:size]
                waiting = waiting[size:]
        if waiting:
            yield waiting

    def _post(self, body: bytes, idempotency_key: str, *, what: str) -> None:
        settings = self.settings
        headers = {
            **settings.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        if settings.secret:
            signature = hmac.new(settings.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={signature}"
        failure: DeliveryError | None = None
        for attempt in range(1, settings.max_attempts + 1):
            self._pace()
            try:
                response = self._http.post(settings.url, content=body, headers=headers)
            except httpx.LocalProtocolError:
                # A request httpx will not send (a header value with a line break): its message
                # quotes the header, which may hold a secret. Retrying cannot help.
                raise TerminalDeliveryError(
                    f"{self._where(what)}: a header cannot be sent as it is (a line break or "
                    "other control character in its value)"
                ) from None
            except httpx.TransportError as error:
                failure = TransientDeliveryError(
                    f"{self._where(what)}: {error or type(error).__name__}"
                )
                wait = None
            else:
                if response.is_success:
                    return
                detail = (
                    f"{self._where(what)}: HTTP {response.status_code} {response.reason_phrase}"
                )
                if response.status_code not in _RETRIED:
                    raise TerminalDeliveryError(detail)
                wait = _retry_after(response)
                failure = TransientDeliveryError(detail, retry_after=wait)
            if attempt < settings.max_attempts:
                self._sleep(
                    wait if wait is not None else settings.backoff_seconds * 2 ** (attempt - 1)
                )
        assert failure is not None
        raise failure

    def _pace(self) -> None:
        """Keep to `max_requests_per_second`."""
        rate = self.settings.max_requests_per_second
        now = self._clock()
        if rate is not None and self._last_request is not None:
            wait = self._last_request + 1 / rate - now
            if wait > 0:
                self._sleep(wait)
                now += wait
        self._last_request = now

    def _where(self, what: str) -> str:
        # The URL without its query (tokens sometimes ride there) nor user and password.
        return f"{what} to {without_userinfo(self.settings.url).split('?', 1)[0]}"


def open_client(settings: WebhookSettings, root: Path | None) -> WebhookClient:
    """A client for the settings' endpoint (`root` has no say there)."""
    del root
    return WebhookClient(settings)
