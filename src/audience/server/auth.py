"""Who is asking: an API token (`Authorization: Bearer aud_…`) or a signed-in session (a cookie
holding a short-lived token of the same kind), and whether their role allows the route.

Sessions are cookie-authenticated, so every request that changes something must also carry the
session's CSRF token (`X-CSRF-Token` header or a `csrf_token` form field): a page of another
site can make the browser send the cookie, but cannot read the token. Failed sign-ins are
counted per user name and per client address; after `MAX_FAILURES` within `WINDOW` further
attempts are refused (429) until the window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import Request

from audience.errors import NotAllowed, NotSignedIn, TooManySignIns

if TYPE_CHECKING:
    from audience.store.accounts import Accounts, User

SESSION_COOKIE = "audience_session"
CSRF_COOKIE = "audience_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LENGTH = timedelta(hours=12)
MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session: str) -> str:
    """The CSRF token that goes with a session (derived from it, so nothing more is stored)."""
    return hmac.new(session.encode("utf-8"), b"audience-csrf", hashlib.sha256).hexdigest()


@dataclass
class SignInLimiter:
    """Failed sign-ins per user name and per client address, in memory (one server process)."""

    failures: dict[str, deque[datetime]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, keys: list[str], now: datetime) -> None:
        """Count a sign-in attempt against each of `keys` before its password is checked (so
        attempts sent together cannot all pass the limit); TooManySignIns if any of them has
        failed too often lately. `succeeded` takes the count back."""
        with self.lock:
            for key in keys:
                recent = self._recent(key, now)
                if len(recent) >= MAX_FAILURES:
                    wait = (recent[0] + WINDOW - now).total_seconds()
                    raise TooManySignIns(
                        "too many failed sign-ins; try again later", retry_after=wait
                    )
            for key in keys:
                self.failures.setdefault(key, deque()).append(now)

    def succeeded(self, keys: list[str], now: datetime) -> None:
        """The attempt counted at `now` signed in: it is no failure."""
        with self.lock:
            for key in keys:
                recent = self.failures.get(key)
                if recent is not None and now in recent:
                    recent.remove(now)
                if not recent:
                    self.failures.pop(key, None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        recent = self.failures.get(key, deque())
        while recent and recent[0] + WINDOW <= now:
            recent.popleft()
        if not recent:
            self.failures.pop(key, None)  # names tried once are not kept for ever
        return recent


async def _form_csrf(request: Request) -> str | None:
    if not request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return None
    value = (await request.form()).get("csrf_token")
    return value if isinstance(value, str) else None


async def request_user(request: Request, accounts: Accounts, now: Callable[[], datetime]) -> User:
    """The user a request comes from; NotSignedIn without valid credentials, and for a
    session's unsafe request without its CSRF token, NotAllowed."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise NotSignedIn("send an API token as `Authorization: Bearer <token>`")
        return accounts.user_for_token(secret.strip(), now=now())
    session = request.cookies.get(SESSION_COOKIE)
    if session is None:
        raise NotSignedIn("sign in, or send an API token as `Authorization: Bearer <token>`")
    user = accounts.user_for_token(session, now=now())
    if request.method not in _SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER) or await _form_csrf(request)
        expected = csrf_token(session).encode()
        if given is None or not hmac.compare_digest(given.encode(), expected):
            # Signed in, but the request may come from another site's page: forbidden (403),
            # not "sign in again".
            raise NotAllowed(f"this request needs the session's CSRF token ({CSRF_HEADER})")
    return user


def require(user: User, role: str) -> User:
    """`user` if their role includes `role`; NotAllowed otherwise."""
    if not user.may(role):
        article = "an" if user.role[:1] in "aeiou" else "a"
        raise NotAllowed(f"this needs the {role} role; {user.name!r} is {article} {user.role}")
    return user
