"""Users, API tokens, secrets and the audit log in the metadata store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import text

from audience.errors import InvalidInput, NotFound, NotSignedIn, SecretKeyError, StateError
from audience.store.metadata import MetadataStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def _everything_stored(store: MetadataStore) -> str:
    """Every row of every table of the store, as one text (to look for what must not be)."""
    with store.engine.connect() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text(
                    "select name from sqlite_master where type = 'table'"
                    if store.engine.dialect.name == "sqlite"
                    else "select tablename from pg_tables where schemaname = current_schema()"
                )
            )
        ]
        return "\n".join(
            repr(row)
            for table in tables
            for row in connection.execute(text(f'select * from "{table}"'))
        )


def test_a_user_signs_in_with_their_password_only(store: MetadataStore) -> None:
    accounts = store.accounts
    alice = accounts.add_user("alice", "editor", PASSWORD, actor="cli:root", now=T0)
    assert (alice.role, alice.has_password) == ("editor", True)
    assert accounts.sign_in("alice", PASSWORD, now=T0).name == "alice"
    for name, password in (("alice", "wrong password!!"), ("nobody", PASSWORD)):
        with pytest.raises(NotSignedIn, match="wrong user name or password"):
            accounts.sign_in(name, password, now=T0)
    assert PASSWORD not in _everything_stored(store)
    actions = [(e.action, e.target) for e in store.audit.entries()]
    assert actions == [
        ("sign_in.refused", "nobody"),
        ("sign_in.refused", "alice"),
        ("sign_in", "alice"),
        ("user.add", "alice"),
    ]


def test_roles_are_ordered() -> None:
    from audience.store.accounts import User

    editor = User("e", "editor", T0, True)
    assert editor.may("viewer") and editor.may("editor") and not editor.may("admin")


@pytest.mark.parametrize(
    ("name", "role", "password", "field"),
    [
        ("bob", "boss", PASSWORD, "role"),
        ("bob", "viewer", "short", "password"),
        ("", "viewer", PASSWORD, "name"),
        ("bo\nb", "viewer", PASSWORD, "name"),
    ],
)
def test_bad_users_are_refused_naming_the_field(
    store: MetadataStore, name: str, role: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.accounts.add_user(name, role, password, actor="t", now=T0)
    assert caught.value.field == field
    assert store.accounts.users() == []


def test_a_name_is_taken_once(store: MetadataStore) -> None:
    store.accounts.add_user("alice", "viewer", None, actor="t", now=T0)
    with pytest.raises(StateError, match="already exists"):
        store.accounts.add_user("alice", "admin", None, actor="t", now=T0)
    assert [(u.name, u.role) for u in store.accounts.users()] == [("alice", "viewer")]


def test_roles_change_but_the_only_admin_stays_one(store: MetadataStore) -> None:
    accounts = store.accounts
    accounts.add_user("alice", "admin", None, actor="t", now=T0)
    accounts.add_user("bob", "viewer", None, actor="t", now=T0)
    with pytest.raises(StateError, match="'alice' is the only admin"):
        accounts.set_role("alice", "editor", actor="t", now=T0)
    with pytest.raises(InvalidInput):
        accounts.set_role("bob", "owner", actor="t", now=T0)
    with pytest.raises(NotFound):
        accounts.set_role("carol", "viewer", actor="t", now=T0)
    assert accounts.set_role("bob", "admin", actor="alice", now=T0).role == "admin"
    assert accounts.set_role("alice", "viewer", actor="bob", now=T0).role == "viewer"
    assert {u.name: u.role for u in accounts.users()} == {"alice": "viewer", "bob": "admin"}
    changes = [(e.target, e.detail) for e in store.audit.entries() if e.action == "user.role"]
    assert changes == [
        ("alice", {"role": "viewer", "was": "admin"}),
        ("bob", {"role": "admin", "was": "viewer"}),
    ]


def test_a_new_password_ends_the_users_sessions_not_their_tokens(store: MetadataStore) -> None:
    from audience.store.accounts import SESSION_LABEL

    accounts = store.accounts
    accounts.add_user("alice", "editor", PASSWORD, actor="t", now=T0)
    session = accounts.create_token("alice", SESSION_LABEL, expires_at=None, actor="t", now=T0)
    token = accounts.create_token("alice", "ci", expires_at=None, actor="t", now=T0)
    with pytest.raises(InvalidInput):
        accounts.set_password("alice", "short", actor="t", now=T0)
    accounts.set_password("alice", "a much longer new password", actor="t", now=T0)
    with pytest.raises(NotSignedIn):
        accounts.sign_in("alice", PASSWORD, now=T0)
    assert accounts.sign_in("alice", "a much longer new password", now=T0).name == "alice"
    with pytest.raises(NotSignedIn, match="revoked"):
        accounts.user_for_token(session.secret, now=T0)
    assert accounts.user_for_token(token.secret, now=T0).name == "alice"
    assert "a much longer new password" not in _everything_stored(store)
    assert not accounts.set_password("alice", None, actor="t", now=T0).has_password


def test_tokens_work_until_revoked_expired_or_their_user_removed(store: MetadataStore) -> None:
    accounts = store.accounts
    accounts.add_user("alice", "admin", None, actor="t", now=T0)
    accounts.add_user("bob", "viewer", None, actor="t", now=T0)
    forever = accounts.create_token("alice", "ci", expires_at=None, actor="t", now=T0)
    brief = accounts.create_token(
        "alice", "x", expires_at=T0 + timedelta(hours=1), actor="t", now=T0
    )
    bobs = accounts.create_token("bob", "b", expires_at=None, actor="t", now=T0)
    assert forever.secret.startswith("aud_") and forever.secret != brief.secret
    assert forever.secret not in _everything_stored(store)
    assert accounts.user_for_token(forever.secret, now=T0).name == "alice"
    assert accounts.user_for_token(brief.secret, now=T0).role == "admin"
    later = T0 + timedelta(hours=2)
    with pytest.raises(NotSignedIn, match="expired"):
        accounts.user_for_token(brief.secret, now=later)
    accounts.revoke_token(forever.token.id, actor="t", now=later)
    with pytest.raises(NotSignedIn, match="revoked"):
        accounts.user_for_token(forever.secret, now=later)
    with pytest.raises(StateError, match="already revoked"):
        accounts.revoke_token(forever.token.id, actor="t", now=later)
    for wrong in ("aud_00000000_nothing", "Bearer x", ""):
        with pytest.raises(NotSignedIn):
            accounts.user_for_token(wrong, now=later)
    states = {t.label: t.state(later) for t in accounts.tokens("alice")}
    assert states == {"ci": "revoked", "x": "expired"}
    accounts.remove_user("bob", actor="t", now=later)
    with pytest.raises(NotSignedIn):
        accounts.user_for_token(bobs.secret, now=later)
    assert [t.user for t in accounts.tokens()] == ["alice", "alice"]
    with pytest.raises(NotFound):
        accounts.remove_user("bob", actor="t", now=later)
    with pytest.raises(NotFound):
        accounts.create_token("bob", "b", expires_at=None, actor="t", now=later)
    with pytest.raises(InvalidInput, match="future"):
        accounts.create_token("alice", "old", expires_at=T0, actor="t", now=later)


def test_a_tokens_last_use_is_written_at_most_once_a_minute(store: MetadataStore) -> None:
    accounts = store.accounts
    accounts.add_user("alice", "viewer", None, actor="t", now=T0)
    issued = accounts.create_token("alice", "ci", expires_at=None, actor="t", now=T0)
    for seconds in (0, 30, 59, 61):
        accounts.user_for_token(issued.secret, now=T0 + timedelta(seconds=seconds))
    (token,) = accounts.tokens()
    assert token.last_used_at == T0 + timedelta(seconds=61)


def _keys(*keys: bytes) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def test_secrets_are_encrypted_listed_by_name_and_rotated(store: MetadataStore) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    secrets = store.secrets(lambda: _keys(old))
    assert secrets.set("sftp.password", "pa55-word", actor="alice", now=T0)
    assert not secrets.set("sftp.password", "pa55-w0rd", actor="bob", now=T0 + timedelta(1))
    assert secrets.value("sftp.password") == "pa55-w0rd"
    assert secrets.value("missing") is None
    (listed,) = secrets.names()
    assert (listed.name, listed.updated_by) == ("sftp.password", "bob")
    assert "pa55" not in _everything_stored(store)
    # Rotation: the new key first, the old one still given, then the old one dropped.
    assert store.secrets(lambda: _keys(new, old)).rotate(actor="alice", now=T0) == 1
    assert store.secrets(lambda: _keys(new)).value("sftp.password") == "pa55-w0rd"
    with pytest.raises(SecretKeyError, match=r"'sftp\.password' cannot be opened"):
        store.secrets(lambda: _keys(old)).value("sftp.password")
    secrets.remove("sftp.password", actor="alice", now=T0)
    with pytest.raises(NotFound):
        secrets.remove("sftp.password", actor="alice", now=T0)
    assert [e.action for e in store.audit.entries()] == [
        "secret.remove",
        "secret.rotate",
        "secret.set",
        "secret.set",
    ]


def test_a_secret_is_not_set_with_a_key_that_cannot_open_the_others(
    store: MetadataStore,
) -> None:
    right, wrong = Fernet.generate_key(), Fernet.generate_key()
    store.secrets(lambda: _keys(right)).set("sftp.password", "pa55-word", actor="a", now=T0)
    with pytest.raises(SecretKeyError, match=r"'sftp\.password' cannot be opened"):
        store.secrets(lambda: _keys(wrong)).set("hook.secret", "s3cret", actor="a", now=T0)
    assert [s.name for s in store.secrets(lambda: _keys(right)).names()] == ["sftp.password"]
    assert store.secrets(lambda: _keys(right)).set("hook.secret", "s3cret", actor="a", now=T0)


@pytest.mark.parametrize(("name", "value"), [("1abc", "v"), ("a b", "v"), ("ok", "")])
def test_bad_secrets_are_refused(store: MetadataStore, name: str, value: str) -> None:
    with pytest.raises(InvalidInput):
        store.secrets(lambda: _keys(Fernet.generate_key())).set(name, value, actor="t", now=T0)


def test_keys_come_from_the_setting_or_a_file(tmp_path: object) -> None:
    from pathlib import Path

    from audience.store.secrets import new_key, read_keys

    first, second = new_key(), new_key()
    token = read_keys(f"{first},{second}", None).encrypt(b"x")
    rotated = read_keys(f"{second},{first}", None).rotate(token)
    assert Fernet(second.encode()).decrypt(rotated) == b"x"
    key_file = Path(str(tmp_path)) / "secret.key"
    key_file.write_text(f"{first}\n\n{second}\n")
    assert read_keys(None, key_file).decrypt(token) == b"x"
    for key, path, message in (
        (None, None, "no secret key is set"),
        ("not-a-key", None, "not a list of Fernet keys"),
        (None, key_file.with_name("missing"), "cannot read secrets.key_file"),
        (" , ", None, "is empty"),
    ):
        with pytest.raises(SecretKeyError, match=message):
            read_keys(key, path)
