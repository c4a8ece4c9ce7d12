"""Users, their roles, and their API tokens.

Passwords are hashed with argon2id (argon2-cffi); a token is shown once when it is made and kept
only as its SHA-256 (a token is 256 random bits, so a fast hash is enough, and lets a request be
checked by one indexed lookup). Roles are ordered: a viewer reads, an editor also changes
definitions, plans and test-sends, an admin also launches activations and manages destinations,
secrets and users.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audience.definitions.names import check_name
from audience.errors import InvalidInput, NotAllowed, NotFound, NotSignedIn, StateError
from audience.shapes import Moment, Shape
from audience.store.audit import AuditLog
from audience.store.models import TokenRecord, UserRecord, aware

ROLES = ("viewer", "editor", "admin")
"""From least to most allowed; each role may do what the ones before it may."""
APPLIED_BY_ADMINS = frozenset({"destination"})
"""Kinds only an admin may apply: a destination says where customer data goes."""
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
"""Longer is refused when set, as sign-in refuses it: argon2 takes any length, a request not."""
TOKEN_PREFIX = "aud_"
MAX_LABEL_LENGTH = 200
SESSION_LABEL = "session"
"""The label of the tokens that hold browser sessions (sign-in makes one, sign-out revokes it;
a change of password revokes them all)."""
LAST_USED_EVERY = timedelta(minutes=1)
"""A token's last use is written at most this often, so reading status costs no write."""


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _unknown_user_hash() -> str:
    # Checked against when the user does not exist, so both answers take as long.
    return _hasher().hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    """Someone who may sign in."""

    name: str
    role: str
    created_at: datetime
    has_password: bool

    def may(self, role: str) -> bool:
        """Whether this user's role includes `role`'s rights."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def shape(self) -> UserShape:
        """The user as `user list --json` and the API show them."""
        return UserShape(
            name=self.name,
            role=self.role,
            created_at=self.created_at,
            has_password=self.has_password,
        )

    def to_json(self) -> dict[str, object]:
        """`shape()` as JSON data."""
        return self.shape().model_dump(mode="json")


@dataclass(frozen=True)
class Token:
    """An API token as listed: never the token itself."""

    id: str
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def shape(self, now: datetime) -> TokenShape:
        """The token as `token list --json` and the API show it: never the token itself."""
        return TokenShape(
            id=self.id,
            user=self.user,
            label=self.label,
            state=self.state(now),
            created_at=self.created_at,
            expires_at=self.expires_at,
            last_used_at=self.last_used_at,
        )

    def to_json(self, now: datetime) -> dict[str, object]:
        """`shape(now)` as JSON data."""
        return self.shape(now).model_dump(mode="json")


class UserShape(Shape):
    """A user, as listed."""

    name: str
    role: str
    created_at: Moment
    has_password: bool


class TokenShape(Shape):
    """An API token, as listed: never the token itself."""

    id: str
    user: str
    label: str
    state: str
    """active, expired or revoked."""
    created_at: Moment
    expires_at: Moment | None
    last_used_at: Moment | None


class IssuedTokenShape(TokenShape):
    """A token just made, with the token itself: shown this once."""

    token: str


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: `secret` is what the client sends, shown this once."""

    token: Token
    secret: str

    def shape(self, now: datetime) -> IssuedTokenShape:
        """The new token as `token create --json` and `POST /tokens` show it, token included."""
        return IssuedTokenShape(**self.token.shape(now).model_dump(), token=self.secret)


def _user(record: UserRecord) -> User:
    return User(
        record.name, record.role, aware(record.created_at), record.password_hash is not None
    )


def _token(record: TokenRecord) -> Token:
    def when(moment: datetime | None) -> datetime | None:
        return None if moment is None else aware(moment)

    return Token(
        record.id,
        record.user_name,
        record.label,
        aware(record.created_at),
        when(record.expires_at),
        when(record.revoked_at),
        when(record.last_used_at),
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def role_to_apply(kind: str) -> str:
    """The role a user needs to apply a definition of `kind`."""
    return "admin" if kind in APPLIED_BY_ADMINS else "editor"


def check_role(role: str) -> str:
    """`role` if it is one of ROLES, else InvalidInput naming them."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; the roles are {', '.join(ROLES)}", field="role")
    return role


def check_password(password: str) -> str:
    """`password` if it is long enough (and more than spaces) and not longer than sign-in
    takes, else InvalidInput."""
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise InvalidInput(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password has at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )
    return password


class Accounts:
    """The `audience_users` and `audience_tokens` tables."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add_user(
        self, name: str, role: str, password: str | None, *, actor: str, now: datetime
    ) -> User:
        """A new user; StateError if the name is taken."""
        try:
            name = check_name(name)
        except ValueError as error:
            raise InvalidInput(str(error), field="name") from None
        record = UserRecord(
            name=name,
            role=check_role(role),
            password_hash=None if password is None else _hasher().hash(check_password(password)),
            created_at=now,
        )
        try:
            with self._sessions() as session, session.begin():
                session.add(record)
                session.flush()
                AuditLog.add(
                    session,
                    at=now,
                    actor=actor,
                    action="user.add",
                    target=name,
                    detail={"role": role},
                )
        except IntegrityError:
            raise StateError(f"user {name!r} already exists") from None
        return _user(record)

    def users(self) -> list[User]:
        """Every user, by name."""
        with self._sessions() as session:
            return [_user(r) for r in session.scalars(select(UserRecord).order_by(UserRecord.name))]

    def user(self, name: str) -> User:
        """One user; NotFound if there is none of that name."""
        with self._sessions() as session:
            record = session.get(UserRecord, name)
            if record is None:
                raise NotFound(f"user {name!r} does not exist")
            return _user(record)

    def remove_user(self, name: str, *, actor: str, now: datetime) -> None:
        """Remove a user and every token of theirs."""
        with self._sessions() as session, session.begin():
            record = session.get(UserRecord, name)
            if record is None:
                raise NotFound(f"user {name!r} does not exist")
            _refuse_losing_the_last_admin(session, record, "removing them")
            session.execute(delete(TokenRecord).where(TokenRecord.user_name == name))
            session.execute(delete(UserRecord).where(UserRecord.name == name))
            AuditLog.add(session, at=now, actor=actor, action="user.remove", target=name)

    def set_role(self, name: str, role: str, *, actor: str, now: datetime) -> User:
        """Give a user another role (from their next request on: roles are read per request);
        the only admin keeps theirs."""
        role = check_role(role)
        with self._sessions() as session, session.begin():
            record = session.get(UserRecord, name, with_for_update=True)
            if record is None:
                raise NotFound(f"user {name!r} does not exist")
            if role != "admin":
                _refuse_losing_the_last_admin(session, record, f"making them {role}")
            AuditLog.add(
                session,
                at=now,
                actor=actor,
                action="user.role",
                target=name,
                detail={"role": role, "was": record.role},
            )
            record.role = role
            session.flush()
            return _user(record)

    def set_password(self, name: str, password: str | None, *, actor: str, now: datetime) -> User:
        """Set (or, with None, remove) a user's password; their browser sessions end, so a
        stolen session does not outlive the change (their API tokens stay)."""
        digest = None if password is None else _hasher().hash(check_password(password))
        with self._sessions() as session, session.begin():
            record = session.get(UserRecord, name, with_for_update=True)
            if record is None:
                raise NotFound(f"user {name!r} does not exist")
            record.password_hash = digest
            session.execute(
                update(TokenRecord)
                .where(
                    TokenRecord.user_name == name,
                    TokenRecord.label == SESSION_LABEL,
                    TokenRecord.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            AuditLog.add(session, at=now, actor=actor, action="user.password", target=name)
            session.flush()
            return _user(record)

    def sign_in(self, name: str, password: str, *, now: datetime) -> User:
        """The user whose password this is; NotSignedIn (saying nothing more) otherwise."""
        with self._sessions() as session, session.begin():
            record = session.get(UserRecord, name)
            stored = record.password_hash if record is not None else None
            try:
                _hasher().verify(stored or _unknown_user_hash(), password)
                matched = stored is not None
            except (VerificationError, InvalidHashError):
                matched = False
            AuditLog.add(
                session,
                at=now,
                actor=name,
                action="sign_in" if matched else "sign_in.refused",
                target=name,
            )
        # Raised once the refusal is on record (raising inside would roll it back).
        if not matched or record is None:
            raise NotSignedIn("wrong user name or password")
        return _user(record)

    def create_token(
        self,
        user: str,
        label: str,
        *,
        expires_at: datetime | None,
        actor: str,
        now: datetime,
        by: User | None = None,
    ) -> IssuedToken:
        """A new token for `user`, valid until `expires_at` (None: until revoked); asked for
        `by` a signed-in user (the API), only an admin makes one for someone else."""
        if by is not None and by.name != user and not by.may("admin"):
            raise NotAllowed("only an admin makes tokens for someone else")
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)  # a time without an offset is UTC
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("an expiry must be in the future", field="expires")
        if not label.strip() or len(label) > MAX_LABEL_LENGTH:
            raise InvalidInput(
                f"a label says what the token is for, in 1 to {MAX_LABEL_LENGTH} characters",
                field="label",
            )
        identifier = secrets.token_hex(4)
        secret = f"{TOKEN_PREFIX}{identifier}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=identifier,
            user_name=user,
            label=label,
            sha256=_digest(secret),
            created_at=now,
            expires_at=expires_at,
        )
        with self._sessions() as session, session.begin():
            if session.get(UserRecord, user) is None:
                raise NotFound(f"user {user!r} does not exist")
            session.add(record)
            AuditLog.add(
                session,
                at=now,
                actor=actor,
                action="token.create",
                target=f"{user}/{identifier}",
                detail={"label": label},
            )
        return IssuedToken(_token(record), secret)

    def tokens_seen_by(self, user: User) -> list[Token]:
        """The tokens `user` may see: everyone's for an admin, else their own."""
        return self.tokens(None if user.may("admin") else user.name)

    def tokens(self, user: str | None = None) -> list[Token]:
        """Tokens (of one user, or everyone's), newest first."""
        query = select(TokenRecord).order_by(TokenRecord.created_at.desc(), TokenRecord.id)
        if user is not None:
            query = query.where(TokenRecord.user_name == user)
        with self._sessions() as session:
            return [_token(r) for r in session.scalars(query)]

    def revoke_token(
        self, identifier: str, *, actor: str, now: datetime, by: User | None = None
    ) -> Token:
        """Revoke a token at once; StateError if it already was. Asked for `by` a signed-in
        user (the API), only an admin revokes someone else's."""
        with self._sessions() as session, session.begin():
            record = session.get(TokenRecord, identifier)
            if record is None:
                raise NotFound(f"token {identifier!r} does not exist")
            if by is not None and record.user_name != by.name and not by.may("admin"):
                raise NotAllowed("only an admin revokes someone else's token")
            if record.revoked_at is not None:
                raise StateError(f"token {identifier!r} is already revoked")
            record.revoked_at = now
            AuditLog.add(
                session,
                at=now,
                actor=actor,
                action="token.revoke",
                target=f"{record.user_name}/{identifier}",
            )
            return _token(record)

    def end_session(self, secret: str, *, actor: str, now: datetime) -> None:
        """Revoke the token `secret` (a signed-in session's), if it is still active."""
        with self._sessions() as session, session.begin():
            record = session.scalars(
                select(TokenRecord).where(TokenRecord.sha256 == _digest(secret))
            ).first()
            if record is not None and record.revoked_at is None:
                record.revoked_at = now
                AuditLog.add(
                    session,
                    at=now,
                    actor=actor,
                    action="sign_out",
                    target=f"{record.user_name}/{record.id}",
                )

    def user_for_token(self, secret: str, *, now: datetime) -> User:
        """Who `secret` belongs to; NotSignedIn if it is unknown, revoked or expired."""
        if not secret.startswith(TOKEN_PREFIX):
            raise NotSignedIn("not an Audience API token")
        with self._sessions() as session:
            found = session.execute(
                select(TokenRecord, UserRecord)
                .join(UserRecord, UserRecord.name == TokenRecord.user_name)
                .where(TokenRecord.sha256 == _digest(secret))
            ).first()
            if found is None:
                raise NotSignedIn("unknown API token")
            token, user = found
            if _token(token).state(now) != "active":
                raise NotSignedIn(f"this API token is {_token(token).state(now)}")
            last = token.last_used_at
            if last is None or aware(last) + LAST_USED_EVERY <= now:
                session.execute(
                    update(TokenRecord).where(TokenRecord.id == token.id).values(last_used_at=now)
                )
                session.commit()
            return _user(user)


def _refuse_losing_the_last_admin(session: Session, record: UserRecord, doing: str) -> None:
    """StateError when `record` is the only admin: a workspace keeps someone who can launch,
    manage users and read the audit log."""
    if record.role != "admin":
        return
    # The other admins' rows are locked: two admins demoting each other at once cannot both
    # see the other still there.
    others = (
        select(UserRecord.name)
        .where(UserRecord.role == "admin", UserRecord.name != record.name)
        .with_for_update()
    )
    if session.scalars(others).first() is None:
        raise StateError(f"{record.name!r} is the only admin; add another admin before {doing}")
