"""Settings of a `webhook` destination: the endpoint, batches, limits, retries, signing."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from audience.definitions.base import DestinationSettings
from audience.definitions.references import checkable, reference_only


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
        if not checkable(value, info):
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("a webhook URL starts with http:// or https:// and names a host")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return reference_only(value, info)

    def place(self) -> str:
        """Where records go: one endpoint."""
        return f"webhook|{self.url}"


SETTINGS = WebhookSettings
