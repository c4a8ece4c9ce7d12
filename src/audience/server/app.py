"""The application: `create_app(directory)` serves one workspace.

The workspace is opened once, when the server starts. Requests that use the customer database
take turns (a lock): one DuckDB connection serves one thread at a time, and on DuckDB the database
is let go as soon as requests pause, so a worker or the CLI in another process can use it in
between (the runtime's rule for the embedded default). Credentials, status, runs, accounts and
secrets read only the metadata store and do not wait for that turn.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from audience import __version__
from audience.definitions.names import nfc
from audience.server import errors
from audience.server.auth import SignInLimiter, request_user, require
from audience.server.jobs import PlanJobs
from audience.server.worker import BackgroundWorker
from audience.shapes import Shape
from audience.store.accounts import User
from audience.store.runs import Run, RunShape
from audience.workspace import Workspace, utc_now

IDLE_RELEASE_SECONDS = 1.0
"""How long a DuckDB workspace's database stays open after a request, for the next one."""


@dataclass
class Served:
    """The workspace a server serves, and what its requests share."""

    workspace: Workspace
    clock: Callable[[], datetime]
    worker: BackgroundWorker | None = None
    """The worker in this process, if it runs one (woken when a request queues a run)."""
    limiter: SignInLimiter = field(default_factory=SignInLimiter)
    plans: PlanJobs = field(init=False)
    """Plans started by one request and answered by polling."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    _release: threading.Timer | None = None

    def __post_init__(self) -> None:
        self.plans = PlanJobs(self.clock)

    @contextmanager
    def use(self, user: User) -> Iterator[Workspace]:
        """The workspace, for one request of `user` at a time (the audit log names them).

        On DuckDB the customer database is let go once no request has used it for
        `IDLE_RELEASE_SECONDS`: a burst of requests (an editor refreshing insights as the user
        types) keeps DuckDB's cache warm, and a CLI command or worker waiting for the file gets
        it in the first pause."""
        with self.lock:
            if self._release is not None:
                self._release.cancel()
            ws = self.workspace
            ws.actor = user.name
            try:
                yield ws
            finally:
                if ws.settings.engine.type == "duckdb":
                    self._release = threading.Timer(IDLE_RELEASE_SECONDS, self._let_go)
                    self._release.daemon = True
                    self._release.start()

    def accepted(self, queued: Run, response: Response) -> RunShape:
        """A run just queued, as a 202's body: the worker is woken, and `Location` says where
        to poll it."""
        if self.worker is not None:
            self.worker.wake()
        response.headers["Location"] = f"/runs/{queued.id}"
        return queued.shape()

    def _let_go(self) -> None:
        with self.lock:
            self.workspace.release_engine()

    def close(self) -> None:
        """Stop the worker and the idle timer (the workspace is closed by its opener)."""
        with self.lock:
            if self._release is not None:
                self._release.cancel()
        if self.worker is not None:
            self.worker.stop()
        self.plans.close()


def served(request: Request) -> Served:
    """What the application serves."""
    found: Served = request.app.state.served
    return found


ServedDep = Annotated[Served, Depends(served)]


async def signed_in(request: Request, serving: ServedDep) -> User:
    """The user making the request (any role)."""
    return await request_user(request, serving.workspace.store.accounts, serving.clock)


async def viewer(user: Annotated[User, Depends(signed_in)]) -> User:
    """Someone who may read."""
    return require(user, "viewer")


async def editor(user: Annotated[User, Depends(signed_in)]) -> User:
    """Someone who may change definitions, plan and test-send."""
    return require(user, "editor")


async def admin(user: Annotated[User, Depends(signed_in)]) -> User:
    """Someone who may launch activations and manage destinations, secrets and users."""
    return require(user, "admin")


Viewer = Annotated[User, Depends(viewer)]
Editor = Annotated[User, Depends(editor)]
Admin = Annotated[User, Depends(admin)]


class Health(Shape):
    """The server answers."""

    ok: bool


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No credentials, or wrong ones"},
    403: {"description": "The role does not allow this"},
    404: {"description": "No such thing"},
    409: {"description": "The current state does not allow this"},
    422: {"description": "Bad input; `detail[].loc` names the field"},
    429: {"description": "Too many failed sign-ins; see Retry-After"},
    502: {"description": "The customer database or a destination failed"},
    503: {"description": "The workspace is misconfigured (its settings or secret key)"},
}
"""What any route may answer besides success, for the OpenAPI description."""


class NamesInNfc:
    """Brings each request's path to Unicode NFC, as names are kept (`definitions.names`), so
    that a name in a URL finds its definition however the client spelled "é"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, its path in NFC."""
        if scope["type"] == "http":
            scope = {**scope, "path": nfc(scope["path"])}
        await self.app(scope, receive, send)


def create_app(
    directory: Path,
    *,
    clock: Callable[[], datetime] = utc_now,
    worker: bool | None = None,
    on_worker_error: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The API serving the workspace in `directory` (on `clock`: tests pass their own), with a
    worker in the process when `worker` says (by default on DuckDB, the embedded default)."""
    from audience.server.api import (
        accounts,
        activations,
        auth,
        definitions,
        plans,
        runs,
        segments,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Workspace.open(directory, clock) as ws:
            ws.store.accounts  # noqa: B018 — opened before requests race to open it
            runs_here = ws.settings.engine.type == "duckdb" if worker is None else worker
            background = BackgroundWorker(directory, clock, on_worker_error) if runs_here else None
            serving = app.state.served = Served(ws, clock, background)
            if background is not None:
                background.start()
            try:
                yield
            finally:
                serving.close()

    app = FastAPI(
        title="Audience",
        version=__version__,
        description="Segments, campaigns, journeys and orchestrations over HTTP: the same "
        "operations and JSON shapes as the `audience` CLI.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(NamesInNfc)

    @app.get("/health", tags=["server"])
    def health() -> Health:
        """Whether the server answers (needs no credentials)."""
        return Health(ok=True)

    from audience.server.ui import install as install_ui

    install_ui(app)
    for router in (
        auth.router,
        segments.router,
        definitions.router,
        plans.router,  # before activations' POST /campaigns/{name}/{verb}, which would take it
        activations.router,
        runs.router,
        accounts.router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    return app
