"""What every page shares: the templates (Jinja2, autoescaped), who is signed in, their CSRF
token, and the answer for someone who is not signed in (the sign-in page, then back)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from audience import __version__
from audience.definitions.loader import LoadedDocument, load_text
from audience.errors import (
    AudienceError,
    DefinitionError,
    InvalidInput,
    NotSignedIn,
    StateError,
)
from audience.server.app import ServedDep
from audience.server.auth import SESSION_COOKIE, csrf_token, request_user, require
from audience.server.errors import status_of
from audience.server.ui.assets import missing_packages
from audience.store.accounts import User

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["version"] = __version__


def _when(moment: datetime | None) -> str:
    """A moment as pages show it: to the minute, in UTC (what the CLI's --now takes)."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


templates.env.filters["when"] = _when

NAVIGATION = (
    ("Activations", "/ui/"),
    ("Segments", "/ui/segments"),
    ("Runs", "/ui/runs"),
    ("Destinations", "/ui/destinations"),
)


class SignInFirst(AudienceError):
    """A page asked for without a session: answered with the sign-in page (see `install`)."""

    def __init__(self, next_page: str) -> None:
        super().__init__("sign in first")
        self.next_page = next_page


async def page_user(request: Request, serving: ServedDep) -> User:
    """The signed-in user of a page; SignInFirst (a redirect to the sign-in page) otherwise.
    Forms must carry the session's CSRF token, as for the API."""
    try:
        return await request_user(request, serving.workspace.store.accounts, serving.clock)
    except NotSignedIn:
        if request.method != "GET":
            raise  # a form from an ended session: the API's 401
        query = f"?{request.url.query}" if request.url.query else ""
        raise SignInFirst(request.url.path + query) from None


PageUser = Annotated[User, Depends(page_user)]


async def posted_form(request: Request) -> dict[str, str]:
    """A posted form's text fields. Read here, on the event loop, so that the routes that take
    it are plain functions FastAPI runs on its threads: their queries never hold up the server."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


Posted = Annotated[dict[str, str], Depends(posted_form)]


def render(
    request: Request,
    template: str,
    user: User | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or, for htmx, a fragment) with what every template may use."""
    session = request.cookies.get(SESSION_COOKIE)
    answer = templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf": csrf_token(session) if session else "",
            "navigation": NAVIGATION,
            "missing": missing_packages(),
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
    # Pages hold customers' data: not kept by the browser, so Back after signing out shows
    # nothing.
    answer.headers["Cache-Control"] = "no-store"
    return answer


async def page_editor(user: Annotated[User, Depends(page_user)]) -> User:
    """The signed-in user of an editor's page (a builder); NotAllowed (a 403 page) for a
    viewer: its live parts count and preview what only editors may."""
    return require(user, "editor")


PageEditor = Annotated[User, Depends(page_editor)]


PLAIN_WORDS = (
    (
        re.compile(r"List should have at least 1 item after validation, not 0"),
        "choose at least one",
    ),
    (re.compile(r"String should have at least 1 character"), "cannot be empty"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"at most \1"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"at least \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"more than \1"),
    (re.compile(r"Extra inputs are not permitted"), "is not one of the settings this takes"),
    (re.compile(r"Field required"), "is needed"),
)
"""The validation library's phrases, as a marketer's page says them."""


def said_of(error: AudienceError) -> str:
    """What a page says of an error: a definition's or an input's message without the field it
    names (the page shows that beside the field), or the whole message; on one line, in plain
    words."""
    message = error.message if isinstance(error, DefinitionError | InvalidInput) else str(error)
    for phrase, plain in PLAIN_WORDS:
        message = phrase.sub(plain, message)
    return " ".join(message.split())


def error_page(request: Request, error: AudienceError, user: User | None = None) -> HTMLResponse:
    """A page saying what went wrong (a thing that is not there, a role that is missing)."""
    status = status_of(error)
    return render(
        request,
        "missing.html",
        user,
        status_code=status,
        title={403: "Not allowed", 404: "Not found"}.get(status, "That did not work"),
        message=" ".join(str(error).split()),
    )


def still_as_opened(kind: str, name: str, opened: str, stored: int) -> None:
    """StateError when the definition was saved again (another tab, another editor) since the
    form was opened at version `opened`: the later save would undo that one unseen."""
    if opened and opened != str(stored):
        raise StateError(
            f"{kind} {name!r} was saved again (version {stored}) since you opened version "
            f"{opened}; open it again to see that change"
        )


def one_document(text: str, kind: str, name: str | None = None) -> list[LoadedDocument]:
    """The YAML a page's editor posted: one document, of `kind` (and named `name`, when an
    existing definition is edited), as `apply` takes it; InvalidInput on the field otherwise."""
    documents = load_text(text, origin="the form")
    if len(documents) != 1 or documents[0].definition.kind != kind:
        raise InvalidInput(f"write one document, of kind {kind}", field="document")
    if name is not None and documents[0].definition.name != name:
        raise InvalidInput(
            f"the name is {name!r}; to make another {kind}, write a new one", field="document"
        )
    return documents


def named(name: str) -> str:
    """A definition's name as part of a page's address: names may hold `?`, `#` or `%`."""
    return quote(name, safe="")


def sign_in_redirect(error: SignInFirst) -> RedirectResponse:
    """Where a page sends someone not signed in: the sign-in page, then back."""
    return RedirectResponse(f"/ui/login?next={quote(error.next_page, safe='/')}", status_code=303)


templates.env.filters["named"] = named
