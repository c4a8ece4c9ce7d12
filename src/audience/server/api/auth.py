"""Signing in and out of a browser session, and who the caller is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from audience.server.app import Served, ServedDep, signed_in
from audience.server.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LENGTH,
    csrf_token,
)
from audience.shapes import Shape
from audience.store.accounts import MAX_PASSWORD_LENGTH, SESSION_LABEL, User

router = APIRouter(tags=["auth"])


class Credentials(BaseModel):
    """A user name and password."""

    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class Me(Shape):
    """Who the credentials belong to, and their role."""

    name: str
    role: str


class SignedIn(Me):
    """A browser session begun: who, the CSRF token its requests send back, and when it ends."""

    csrf_token: str
    expires_at: datetime | None
    """In pydantic's ISO 8601 (`…Z` for UTC), as this answer has always given it."""


class SignedOut(Shape):
    """A browser session ended."""

    signed_out: bool


@router.post("/auth/login")
def login(
    credentials: Credentials, request: Request, response: Response, serving: ServedDep
) -> SignedIn:
    """Sign in: a session cookie (HttpOnly, SameSite=Strict) and its CSRF token, which every
    request that changes something must send back as `X-CSRF-Token`."""
    return open_session(credentials.name, credentials.password, request, response, serving)


def open_session(
    name: str, password: str, request: Request, response: Response, serving: Served
) -> SignedIn:
    """Check a sign-in (limited per name and address) and set the session's cookies on
    `response`: who signed in, the session's CSRF token and when the session ends. The API's
    sign-in and the web UI's share it."""
    now = serving.clock()
    address = request.client.host if request.client else "unknown"
    keys = [f"name:{name}", f"address:{address}"]
    serving.limiter.attempt(keys, now)
    accounts = serving.workspace.store.accounts
    user = accounts.sign_in(name, password, now=now)
    serving.limiter.succeeded(keys, now)
    session = accounts.create_token(
        user.name, SESSION_LABEL, expires_at=now + SESSION_LENGTH, actor=user.name, now=now
    )
    # Secure (sent over HTTPS only) except to a browser on this machine over plain HTTP.
    secure = request.url.scheme == "https" or address not in {"127.0.0.1", "::1", "localhost"}
    lifetime = int(SESSION_LENGTH.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        session.secret,
        max_age=lifetime,
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    csrf = csrf_token(session.secret)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=lifetime, secure=secure, samesite="strict")
    return SignedIn(
        name=user.name, role=user.role, csrf_token=csrf, expires_at=session.token.expires_at
    )


@router.post("/auth/logout")
def logout(
    request: Request,
    response: Response,
    serving: ServedDep,
    user: Annotated[User, Depends(signed_in)],
) -> SignedOut:
    """End this browser session (its token is revoked at once)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session is not None:
        serving.workspace.store.accounts.end_session(session, actor=user.name, now=serving.clock())
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return SignedOut(signed_out=True)


@router.get("/me")
def me(user: Annotated[User, Depends(signed_in)]) -> Me:
    """Who the credentials belong to, and their role."""
    return Me(name=user.name, role=user.role)
