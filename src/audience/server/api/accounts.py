"""Users, API tokens, secrets and the audit log: an admin's, except each user's own tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from audience.server.api.paging import Limit, Offset, page
from audience.server.app import Admin, ServedDep, Viewer
from audience.server.errors import fields_of
from audience.shapes import Page, Shape
from audience.store.accounts import (
    MAX_PASSWORD_LENGTH,
    IssuedTokenShape,
    TokenShape,
    UserShape,
    check_password,
    check_role,
)
from audience.store.audit import AuditShape
from audience.store.secrets import SecretShape

router = APIRouter(tags=["accounts"])


class NewUser(BaseModel):
    """A user to add: no password means one who signs in with tokens only."""

    name: str
    role: str = "viewer"
    password: str | None = None


class NewToken(BaseModel):
    """A token to make, for oneself (or, by an admin, for `user`)."""

    label: str = Field(default="api", min_length=1, max_length=200)
    user: str | None = None
    expires_at: datetime | None = None


class SecretValue(BaseModel):
    """A secret's value: written, never read back."""

    value: str


class SecretSet(Shape):
    """A secret stored: its name, and whether it is new (false: its value was replaced)."""

    name: str
    created: bool


class Removed(Shape):
    """A user or a secret removed."""

    removed: bool


@router.get("/users")
def list_users(
    serving: ServedDep, user: Admin, limit: Limit = 100, offset: Offset = 0
) -> Page[UserShape]:
    """Every user and their role (`user list --json`)."""
    return page([u.shape() for u in serving.workspace.store.accounts.users()], limit, offset)


class UserChange(BaseModel):
    """What to change of a user: their role, their password, or both (at least one)."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = None
    password: str | None = Field(default=None, description="A new password (12+ characters).")

    @model_validator(mode="after")
    def _something(self) -> UserChange:
        if self.role is None and self.password is None:
            raise ValueError("give a role, a password, or both")
        return self


@router.patch("/users/{name:path}")
def change_user(name: str, change: UserChange, serving: ServedDep, user: Admin) -> UserShape:
    """Give a user another role (409 for the only admin) or a new password (their browser
    sessions end; their API tokens stay)."""
    accounts, now = serving.workspace.store.accounts, serving.clock()
    changed = accounts.user(name)
    # Both are checked before either is made, and the role (which the only admin may be
    # refused) first: a refused change changes nothing.
    if change.role is not None:
        check_role(change.role)
    if change.password is not None:
        check_password(change.password)
    if change.role is not None:
        changed = accounts.set_role(name, change.role, actor=user.name, now=now)
    if change.password is not None:
        changed = accounts.set_password(name, change.password, actor=user.name, now=now)
    return changed.shape()


class PasswordChange(BaseModel):
    """One's own password, and the new one."""

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


@router.put("/me/password")
def change_own_password(
    change: PasswordChange, request: Request, serving: ServedDep, user: Viewer
) -> UserShape:
    """Change one's own password (401 if the current one is wrong, limited like sign-in);
    every browser session of one's own ends, this one included."""
    now = serving.clock()
    address = request.client.host if request.client else "unknown"
    keys = [f"name:{user.name}", f"address:{address}"]
    with fields_of("body", password="new_password"):
        check_password(change.new_password)  # first: a refused new password is no sign-in
    serving.limiter.attempt(keys, now)
    accounts = serving.workspace.store.accounts
    accounts.sign_in(user.name, change.current_password, now=now)
    serving.limiter.succeeded(keys, now)
    return accounts.set_password(user.name, change.new_password, actor=user.name, now=now).shape()


@router.post("/users", status_code=status.HTTP_201_CREATED)
def add_user(new: NewUser, serving: ServedDep, user: Admin) -> UserShape:
    """Add a user (409 if the name is taken, 422 for a bad role or a short password)."""
    added = serving.workspace.store.accounts.add_user(
        new.name, new.role, new.password, actor=user.name, now=serving.clock()
    )
    return added.shape()


@router.delete("/users/{name:path}")
def remove_user(name: str, serving: ServedDep, user: Admin) -> Removed:
    """Remove a user; their tokens and sessions stop working at once."""
    serving.workspace.store.accounts.remove_user(name, actor=user.name, now=serving.clock())
    return Removed(removed=True)


@router.get("/tokens")
def list_tokens(
    serving: ServedDep, user: Viewer, limit: Limit = 100, offset: Offset = 0
) -> Page[TokenShape]:
    """Tokens (an admin sees everyone's, others their own); never the tokens themselves."""
    now = serving.clock()
    found = serving.workspace.store.accounts.tokens_seen_by(user)
    return page([t.shape(now) for t in found], limit, offset)


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(new: NewToken, serving: ServedDep, user: Viewer) -> IssuedTokenShape:
    """A new token, shown in this answer only (`token` key)."""
    now = serving.clock()
    with fields_of("body", expires="expires_at"):
        issued = serving.workspace.store.accounts.create_token(
            new.user or user.name,
            new.label,
            expires_at=new.expires_at,
            actor=user.name,
            now=now,
            by=user,
        )
    return issued.shape(now)


@router.delete("/tokens/{identifier}")
def revoke_token(identifier: str, serving: ServedDep, user: Viewer) -> TokenShape:
    """Revoke a token (one's own, or anyone's for an admin): it stops working at once."""
    now = serving.clock()
    revoked = serving.workspace.store.accounts.revoke_token(
        identifier, actor=user.name, now=now, by=user
    )
    return revoked.shape(now)


@router.get("/secrets")
def list_secrets(serving: ServedDep, user: Admin) -> list[SecretShape]:
    """The secrets' names and who set them when; never a value."""
    del user  # an admin: secrets are in the metadata store, no turn on the customer database
    return [s.shape() for s in serving.workspace.secrets.names()]


@router.put("/secrets/{name:path}")
def set_secret(name: str, secret: SecretValue, serving: ServedDep, user: Admin) -> SecretSet:
    """Store a secret under `name` (use it as `${secret:NAME}`); the value is not echoed."""
    secrets = serving.workspace.secrets
    with fields_of("path", "name"):
        created = secrets.set(name, secret.value, actor=user.name, now=serving.clock())
    return SecretSet(name=name, created=created)


@router.delete("/secrets/{name:path}")
def remove_secret(name: str, serving: ServedDep, user: Admin) -> Removed:
    """Delete a secret; destinations that refer to it fail until it is set again."""
    serving.workspace.secrets.remove(name, actor=user.name, now=serving.clock())
    return Removed(removed=True)


@router.get("/audit")
def audit(
    serving: ServedDep,
    user: Admin,
    limit: Limit = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Entries older than this id.")
    ] = None,
) -> list[AuditShape]:
    """Who did what, when; newest first (`audience audit --json`)."""
    entries = serving.workspace.store.audit.entries(limit=limit, before=before)
    return [e.shape() for e in entries]
