"""Settings of an `s3` destination: a bucket and prefix, the endpoint, and how to sign in."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from audience.definitions.base import DefinitionModel, DestinationSettings
from audience.definitions.references import (
    CONTROL_CHARACTERS,
    checkable,
    expanded,
    reference_only,
)

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:[\w-]+:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


class AccessKeyCredentials(DefinitionModel):
    """Static access keys; the secret parts must be references (`${secret:NAME}` or `${VAR}`)."""

    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    session_token: str | None = None

    @field_validator("secret_access_key", "session_token")
    @classmethod
    def _secret_from_environment(cls, value: str | None, info: ValidationInfo) -> str | None:
        return reference_only(value, info)


class AssumeRoleCredentials(DefinitionModel):
    """Credentials obtained by assuming an IAM role with an external id (AWS STS)."""

    role_arn: str
    external_id: str = Field(min_length=2, max_length=1224)
    session_name: str = "audience"

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str, info: ValidationInfo) -> str:
        if checkable(value, info) and not _ROLE_ARN.match(value):
            raise ValueError("expected an IAM role ARN, e.g. arn:aws:iam::123456789012:role/name")
        return value

    @field_validator("session_name")
    @classmethod
    def _session_name(cls, value: str, info: ValidationInfo) -> str:
        if checkable(value, info) and not _SESSION_NAME.match(value):
            raise ValueError("2 to 64 letters, digits or any of + = , . @ _ -")
        return value


S3Credentials = Literal["default"] | AccessKeyCredentials | AssumeRoleCredentials


class S3Settings(DestinationSettings):
    """An Amazon S3 bucket, or any S3-compatible store reached through `endpoint_url`."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "credentials.access_key_id",
            "credentials.secret_access_key",
            "credentials.session_token",
            "credentials.external_id",
        }
    )

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    credentials: S3Credentials = "default"
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str, info: ValidationInfo) -> str:
        if checkable(value, info) and (not _BUCKET.match(value) or ".." in value):
            raise ValueError(
                "not a valid bucket name: 3 to 63 lowercase letters, digits, dots or hyphens"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str, info: ValidationInfo) -> str:
        if not checkable(value, info):
            return value
        segments = value.removesuffix("/").split("/") if value else []
        if (
            value.startswith("/")
            or "\\" in value
            or CONTROL_CHARACTERS.search(value)
            or any(segment in {"", ".", ".."} for segment in segments)
        ):
            raise ValueError(
                "a prefix is a relative folder path like audiences/ or exports/acme/: no leading "
                "'/', no empty, '.' or '..' segments, no backslashes or control characters"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "" and expanded(info):
            return None  # a variable set to nothing: let the AWS chain pick the region
        if value is not None and checkable(value, info) and not _REGION.match(value):
            raise ValueError("not a region name, e.g. us-west-2")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "" and expanded(info):
            return None  # `${S3_ENDPOINT_URL}` set to nothing means AWS itself
        if value is None or not checkable(value, info):
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL, e.g. https://s3.example.com")
        return value

    @field_validator("credentials", mode="wrap")
    @classmethod
    def _credentials(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # Pick the credentials model from the keys present, so that errors name the fields of
        # the one the user meant rather than those of every alternative.
        if isinstance(value, dict):
            model = AssumeRoleCredentials if "role_arn" in value else AccessKeyCredentials
            return model.model_validate(value, context=info.context)
        if value == "default" or isinstance(value, AccessKeyCredentials | AssumeRoleCredentials):
            return handler(value)
        raise ValueError(
            "credentials are 'default' (the standard AWS chain), "
            "{access_key_id, secret_access_key[, session_token]} or {role_arn, external_id}"
        )

    @model_validator(mode="after")
    def _kms_key(self) -> S3Settings:
        if self.kms_key_id is not None and self.server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption: aws:kms")
        return self

    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
        return f"s3|{self.endpoint_url or ''}|{self.bucket}|{self.prefix.strip('/')}"


SETTINGS = S3Settings
