"""A fault-injecting HTTP proxy for tests: real HTTP on a loopback port, in front of a real
server (moto's S3), that delays, stalls or refuses chosen requests and passes the rest on.

```python
proxy = FaultProxy("http://127.0.0.1:5000")       # the `fault_proxy` fixture makes one
proxy.add(Fault("PUT", "Daily_Offer", action="stall"))   # the first PUT of that key hangs
held = proxy.add(Fault("PUT", ".DONE", action="hold"))   # waits until `held.release()`
proxy.add(Fault("PUT", "Daily_Offer", action="status", status=503, times=6,
                headers={"Retry-After": "1"}))
destination endpoint_url = proxy.url
proxy.stalled.wait(30)                            # a request is hanging now
```

A stalled request is never passed on: it hangs until the proxy closes, then its connection is
dropped, as a crashed client's request would be. A held one is passed on once released, as a
slow network would. Stdlib only (http.server, http.client).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-length",
    }
)


@dataclass
class Fault:
    """What to do with requests of `method` whose path (with its query) contains `contains`:
    `stall` (hang, never passed on), `hold` until `release()` then pass on, `delay` by
    `seconds` then pass on, or answer `status` with
    `headers` (an S3-style XML error body); for the first `times` matching requests (all when
    None). `before`, if given, is called (on the proxy's thread) whenever the fault applies."""

    method: str
    contains: str
    action: Literal["stall", "hold", "delay", "status"] = "stall"
    times: int | None = 1
    seconds: float = 0.0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    before: Callable[[], None] | None = None
    hits: int = 0
    """How many requests it has applied to."""
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Pass held requests on."""
        self.released.set()


@dataclass(frozen=True)
class Seen:
    """A request the proxy received, and what it did with it."""

    method: str
    path: str
    outcome: str
    """"passed", "delayed", "held", "stalled" or the status answered."""


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.stalled = threading.Event()
        """Set once a request is hanging in a stall."""
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        setattr(self._server, "proxy", self)  # noqa: B010 - the handler finds it there
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Where clients send their requests."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, fault: Fault) -> Fault:
        """Apply `fault` from now on (faults are tried in the order added)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, method: str, contains: str = "") -> list[Seen]:
        """The requests of `method` whose path contains `contains`, in order."""
        with self._lock:
            return [s for s in self.seen if s.method == method and contains in s.path]

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.contains in path:
                    if fault.times is not None and fault.hits >= fault.times:
                        continue
                    fault.hits += 1
                    return fault
            return None

    def _saw(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, outcome))

    def close(self) -> None:
        """Drop stalled requests and stop serving."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    @property
    def proxy(self) -> FaultProxy:
        proxy: FaultProxy = getattr(self.server, "proxy")  # noqa: B009 - set by FaultProxy
        return proxy

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.proxy
        body = self._body()
        fault = proxy._fault_for(self.command, self.path)
        if fault is None:
            proxy._saw(self.command, self.path, "passed")
            self._forward(body)
            return
        if fault.before is not None:
            fault.before()
        outcomes = {"stall": "stalled", "hold": "held", "delay": "delayed"}
        proxy._saw(self.command, self.path, outcomes.get(fault.action, str(fault.status)))
        if fault.action == "status":
            self._refuse(fault)
            return
        if fault.action in {"stall", "hold"}:
            proxy.stalled.set()
            while not (fault.action == "hold" and fault.released.wait(0.05)):
                if proxy._released.wait(0.05 if fault.action == "hold" else None):
                    self.close_connection = True  # dropped, never passed on
                    return
        time.sleep(fault.seconds)
        self._forward(body)

    def _refuse(self, fault: Fault) -> None:
        code = "SlowDown" if fault.status == 503 else "InternalError"
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message>"
            "<RequestId>fault</RequestId></Error>"
        ).encode()
        self.send_response(fault.status)
        for name, value in fault.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> None:
        proxy = self.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in {"PUT", "POST"}:
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                lower = name.lower()
                if lower in _HOP_BY_HOP and not (lower == "content-length" and self._is_head):
                    continue
                self.send_header(name, value)
            if not self._is_head:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not self._is_head:
                self.wfile.write(payload)
        finally:
            upstream.close()

    @property
    def _is_head(self) -> bool:
        return self.command == "HEAD"

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle
