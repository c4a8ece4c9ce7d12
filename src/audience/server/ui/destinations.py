"""Destinations in the browser: where files go, with their file options and default attributes;
an admin tests a connection, edits a destination as the YAML `apply -f` takes (credentials as
`${secret:NAME}` references, never values) and sets the secrets they refer to (write-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.definitions.loader import dump_documents
from audience.errors import AudienceError, StateError
from audience.server.app import Served, ServedDep
from audience.server.auth import require
from audience.server.errors import status_of
from audience.server.ui.pages import PageUser, Posted, named, one_document, render, said_of
from audience.store.accounts import User

router = APIRouter(prefix="/ui")


@router.get("/destinations", response_class=HTMLResponse)
def destinations_page(
    request: Request, serving: ServedDep, user: PageUser, said: str | None = None
) -> HTMLResponse:
    """Every destination, and (for an admin) the secrets their credentials refer to."""
    return _list(request, serving, user, said=said)


NEW_DESTINATION = """kind: destination
name: partner-drop
type: filesystem              # s3 | filesystem | sftp | webhook (see the README)
settings:
  path: exports/partner       # under the workspace
file:
  format: csv
  compression: gzip
  filename: "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"
  success_file: true
default_attributes: [amperity_id, email, given_name, surname]
"""
"""Where a new destination starts: a folder, written as `apply -f` takes it."""


@router.get("/new/destination", response_class=HTMLResponse)
def new_destination(request: Request, user: PageUser) -> HTMLResponse:
    """A destination to write (an admin's): its settings, file options, default attributes."""
    require(user, "admin")
    return render(request, "destination_new.html", user, document=NEW_DESTINATION)


@router.post("/new/destination", response_class=HTMLResponse)
def create_destination(
    request: Request, serving: ServedDep, user: PageUser, posted: Posted
) -> Response:
    """Apply the new destination (an admin's); the form again with the error otherwise."""
    text = posted.get("document", "")
    try:
        require(user, "admin")
        documents = one_document(text, "destination")
        name = documents[0].definition.name
        with serving.use(user) as ws:
            if name in ws.destinations():
                raise StateError(f"destination {name!r} exists already: edit it on its page")
            ws.apply_documents(documents)
    except AudienceError as error:
        return render(
            request,
            "destination_new.html",
            user,
            status_code=status_of(error),
            document=text,
            error=said_of(error),
        )
    return RedirectResponse(f"/ui/destinations/{named(name)}?said=saved", status_code=303)


@router.get("/destinations/{name:path}", response_class=HTMLResponse)
def destination_page(
    request: Request, name: str, serving: ServedDep, user: PageUser, said: str | None = None
) -> HTMLResponse:
    """One destination: its settings, file options and default attributes."""
    return _destination(request, serving, user, name, said=said)


@router.post("/destinations/{name:path}/test", response_class=HTMLResponse)
def test_connection(request: Request, name: str, serving: ServedDep, user: PageUser) -> Response:
    """Connect, sign in and check that files can be written there (an admin's); nothing sent."""
    try:
        require(user, "admin")
        with serving.use(user) as ws:
            address = ws.destination_test(name)
    except AudienceError as error:
        return _destination(request, serving, user, name, error=error)
    return _destination(request, serving, user, name, connected=address)


@router.post("/destinations/{name:path}/save", response_class=HTMLResponse)
def save(
    request: Request, name: str, serving: ServedDep, user: PageUser, posted: Posted
) -> Response:
    """Apply the destination as edited (an admin's); the form again with the error otherwise."""
    text = posted.get("document", "")
    try:
        require(user, "admin")
        documents = one_document(text, "destination", name)
        with serving.use(user) as ws:
            ws.apply_documents(documents)
    except AudienceError as error:
        return _destination(request, serving, user, name, error=error, document=text)
    return RedirectResponse(f"/ui/destinations/{named(name)}?said=saved", status_code=303)


@router.post("/secrets", response_class=HTMLResponse)
def set_secret(request: Request, serving: ServedDep, user: PageUser, posted: Posted) -> Response:
    """Set a secret (an admin's): written, never shown again."""
    form = posted
    try:
        require(user, "admin")
        name, value = form.get("name", "").strip(), form.get("value", "")
        serving.workspace.secrets.set(name, value, actor=user.name, now=serving.clock())
    except AudienceError as error:
        return _list(request, serving, user, error=error)
    return RedirectResponse("/ui/destinations?said=secret", status_code=303)


@router.post("/secrets/{name:path}/remove", response_class=HTMLResponse)
def remove_secret(request: Request, name: str, serving: ServedDep, user: PageUser) -> Response:
    """Remove a secret (an admin's)."""
    try:
        require(user, "admin")
        serving.workspace.secrets.remove(name, actor=user.name, now=serving.clock())
    except AudienceError as error:
        return _list(request, serving, user, error=error)
    return RedirectResponse("/ui/destinations?said=removed", status_code=303)


SAID = {
    "saved": "Saved",
    "secret": "Secret saved; it is never shown again",
    "removed": "Secret removed",
}


def _message(error: AudienceError) -> str:
    return said_of(error)


def _list(
    request: Request,
    serving: Served,
    user: User,
    *,
    said: str | None = None,
    error: AudienceError | None = None,
) -> HTMLResponse:
    with serving.use(user) as ws:
        found = ws.destinations()
    secrets = serving.workspace.secrets.names() if user.may("admin") else []
    return render(
        request,
        "destinations.html",
        user,
        status_code=200 if error is None else status_of(error),
        destinations=[found[name] for name in sorted(found)],
        secrets=secrets,
        said=SAID.get(said or ""),
        error=None if error is None else _message(error),
    )


def _destination(
    request: Request,
    serving: Served,
    user: User,
    name: str,
    *,
    said: str | None = None,
    error: AudienceError | None = None,
    document: str | None = None,
    connected: str | None = None,
) -> HTMLResponse:
    with serving.use(user) as ws:
        found = ws.destinations().get(name)
    if found is None:
        return render(
            request,
            "missing.html",
            user,
            status_code=404,
            message=f"destination {name!r} does not exist",
        )
    settings: dict[str, Any] = found.settings.model_dump(mode="json", exclude_defaults=True)
    return render(
        request,
        "destination.html",
        user,
        status_code=200 if error is None else status_of(error),
        destination=found,
        settings=settings,
        file=found.file.model_dump(mode="json", exclude_defaults=True),
        document=document if document is not None else dump_documents([found]),
        said=f"Connected: {connected} is writable" if connected else SAID.get(said or ""),
        error=None if error is None else _message(error),
    )
