"""Settings of a `webhook` destination: the endpoint, batches, limits, retries, signing."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationInfo, field_validator

from audience.definitions.base import DestinationSettings
from audience.definitions.references import (
    checkable,
    expanded,
    is_credential_reference,
    reference_only,
)
from audience.errors import InvalidValue


class WebhookSettings(DestinationSettings):
    """An HTTP endpoint that takes records as JSON, in batches of `batch_size` per request:
    `{"run_id", "file", "batch", "records": [...]}` with an `Idempotency-Key` header (the same
    for a batch sent again) and, when `secret` is set, `X-Audience-Signature: sha256=<HMAC of
    the body>`. Requests failing with 429, 5xx or a lost connection are tried again
    (`max_attempts` in all, honouring Retry-After)."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"secret", "headers.*"})

    TAKES_RECORDS: ClassVar[bool] = True

    url: str = Field(min_length=1)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    max_requests_per_second: float | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = None
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        # a password in the URL would show wherever the URL does (errors, the run log), so it
        # is refused even as a reference
        if ":" in urlsplit(value).netloc.rpartition("@")[0]:
            raise ValueError(
                "a webhook URL holds no password (user:password@); send credentials in a "
                "header, e.g. headers: {Authorization: 'Basic ${secret:NAME}'}"
            )
        if not checkable(value, info):
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("a webhook URL starts with http:// or https:// and names a host")
        return value

    @field_validator("headers")
    @classmethod
    def _credentials_by_reference(
        cls, value: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        for name, text in value.items():
            if carries_credentials(name) and not (expanded(info) or is_credential_reference(text)):
                raise InvalidValue(
                    f"the header {name} carries a credential, so its value is given as "
                    "${secret:NAME} (stored with `audience secret set`) or a ${VARIABLE} that "
                    "holds it, after at most a word such as Bearer; never as plain text",
                    field=name,
                )
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return reference_only(value, info)

    def place(self) -> str:
        """Where records go: one endpoint."""
        return f"webhook|{self.url}"


CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
CREDENTIAL_WORDS = ("key", "token", "secret", "auth", "password", "passwd", "signature")
"""Header names carrying credentials: these, and any name holding one of these words."""


def carries_credentials(header: str) -> bool:
    """Whether the header `header` (any case) carries a credential, by its name."""
    name = header.lower()
    return name in CREDENTIAL_HEADERS or any(word in name for word in CREDENTIAL_WORDS)


def without_userinfo(url: str) -> str:
    """`url` without a `user:password@` before its host: what may be shown of it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


SETTINGS = WebhookSettings
