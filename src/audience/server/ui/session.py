"""Signing in and out in the browser: the sign-in page, and the form that ends a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.errors import NotSignedIn, TooManySignIns
from audience.server.api.auth import open_session
from audience.server.app import ServedDep
from audience.server.auth import CSRF_COOKIE, SESSION_COOKIE
from audience.server.ui.pages import PageUser, render

router = APIRouter(prefix="/ui")


def _local(next_page: str | None) -> str:
    """Where to go after signing in: a page of the UI, never another site."""
    if next_page and next_page.startswith("/ui/") and not next_page.startswith("//"):
        return next_page
    return "/ui/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", None, next_page=_local(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    serving: ServedDep,
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    """Sign in and go on to the page asked for; the form again, saying why, otherwise."""
    redirect = RedirectResponse(_local(next), status_code=303)
    try:
        open_session(name, password, request, redirect, serving)
    except (NotSignedIn, TooManySignIns) as error:
        status = 429 if isinstance(error, TooManySignIns) else 401
        return render(
            request,
            "login.html",
            None,
            status_code=status,
            next_page=_local(next),
            name=name,
            error=str(error),
        )
    return redirect


@router.post("/logout")
def logout(request: Request, serving: ServedDep, user: PageUser) -> Response:
    """End this browser session and show the sign-in page."""
    session = request.cookies.get(SESSION_COOKIE)
    if session is not None:
        serving.workspace.store.accounts.end_session(session, actor=user.name, now=serving.clock())
    redirect = RedirectResponse("/ui/login", status_code=303)
    redirect.delete_cookie(SESSION_COOKIE)
    redirect.delete_cookie(CSRF_COOKIE)
    return redirect
