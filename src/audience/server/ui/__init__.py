"""The web UI: server-rendered pages (Jinja2, autoescaped) with htmx for their live parts, at
`/ui/`, over the same `Workspace` façade and the same sign-in as the API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from audience.errors import AudienceError
from audience.server.errors import answer
from audience.server.ui import (
    activations,
    campaigns,
    destinations,
    journeys,
    orchestrations,
    results,
    runs,
    segments,
    session,
)
from audience.server.ui.assets import MEDIA_TYPES, asset_path
from audience.server.ui.pages import SignInFirst, error_page, sign_in_redirect


def install(app: FastAPI) -> None:
    """Add the pages, their files and the way in (`/` → the Activations page)."""
    for router in (
        session.router,
        activations.router,
        results.router,  # before the builder's /campaigns/{name}/… routes
        campaigns.router,
        orchestrations.router,
        destinations.router,
        journeys.router,
        segments.router,
        runs.router,
    ):
        app.include_router(router, include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @app.get("/ui/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        path = asset_path(name)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            path,
            media_type=MEDIA_TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def sign_in_first(request: Request, error: Exception) -> Response:
        del request
        assert isinstance(error, SignInFirst)
        return sign_in_redirect(error)

    async def refused(request: Request, error: Exception) -> Response:
        # A page answers with a page (a missing role, a thing that is not there); the API's
        # routes keep their JSON.
        assert isinstance(error, AudienceError)
        if not request.url.path.startswith("/ui/") or request.method != "GET":
            return await answer(request, error)
        return error_page(request, error)

    app.add_exception_handler(SignInFirst, sign_in_first)
    app.add_exception_handler(AudienceError, refused)
