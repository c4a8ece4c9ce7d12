"""The `kind: destination` document: where files go, in which shape, with which attributes.

```yaml
kind: destination
name: marketing-s3
type: s3                                  # s3 | filesystem | sftp | webhook
settings: {bucket: acme-marketing, prefix: audiences/, region: us-west-2,
           endpoint_url: ${S3_ENDPOINT_URL}, credentials: default}
file: {format: csv, compression: gzip, header: true, success_file: true,
       filename: "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"}
default_attributes: [amperity_id, email, {source: given_name, as: first_name}]
```

Strings may hold `${VAR}` references. They are kept here exactly as written — a reference may
name a secret, whose value must never be stored or exported — and are expanded from the
environment only when the destination is opened for a delivery. Secret fields
(`secret_access_key`, `session_token`) accept nothing but a reference.
"""

from __future__ import annotations

import codecs
import os
import posixpath
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from audience.definitions.templates import DEFAULT_TEMPLATE, validate_template

FileFormat = Literal["csv", "tsv", "psv", "parquet", "json", "ndjson"]
Compression = Literal["none", "gzip", "zip", "tar", "tgz"]
QuoteMode = Literal["all", "non_null", "minimal", "non_numeric", "none"]
DELIMITED_FORMATS = frozenset({"csv", "tsv", "psv"})
FORMAT_DELIMITERS = {"csv": ",", "tsv": "\t", "psv": "|"}

# Pass `context={"expanded": True}` to validate settings whose `${VAR}` were already expanded.
EXPANDED = "expanded"
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ONLY_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:[\w-]+:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

StrictPositiveInt = Annotated[int, Field(strict=True, gt=0)]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def size_in_bytes(size: int | str) -> int:
    """A size as bytes: an integer, or text such as `250MB` (powers of 1000) or `1GiB` (1024)."""
    if isinstance(size, int):
        return size
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"{size!r} is not a size; write e.g. 250MB, 1.5GB, 512KiB or bytes")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "b").lower()])


def references(text: str) -> list[str]:
    """Names of the environment variables that `text` refers to as `${VAR}`."""
    return REFERENCE.findall(text)


def _expanded(info: ValidationInfo) -> bool:
    """Whether these settings are being validated with their references already expanded."""
    return bool(info.context and info.context.get(EXPANDED))


def _literal(value: str, info: ValidationInfo) -> bool:
    """Whether `value` can be checked now: written without references, or already expanded."""
    return _expanded(info) or not references(value)


def _reference_only(value: str | None, info: ValidationInfo) -> str | None:
    """A secret field's value: a `${VAR}` reference (or, once expanded, the secret)."""
    if value is not None and not _expanded(info) and not _ONLY_REFERENCE.match(value):
        raise ValueError("a secret is given as a ${VARIABLE} that holds it, never as plain text")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessKeyCredentials(_Model):
    """Static access keys; the secret parts must be `${VAR}` references."""

    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    session_token: str | None = None

    @field_validator("secret_access_key", "session_token")
    @classmethod
    def _secret_from_environment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _expanded(info) and not _ONLY_REFERENCE.match(value):
            raise ValueError(
                "credentials never sit in definitions as plain text: write a reference to an "
                "environment variable, e.g. ${AWS_SECRET_ACCESS_KEY}"
            )
        return value


class AssumeRoleCredentials(_Model):
    """Credentials obtained by assuming an IAM role with an external id (AWS STS)."""

    role_arn: str
    external_id: str = Field(min_length=2, max_length=1224)
    session_name: str = "audience"

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str, info: ValidationInfo) -> str:
        if _literal(value, info) and not _ROLE_ARN.match(value):
            raise ValueError("expected an IAM role ARN, e.g. arn:aws:iam::123456789012:role/name")
        return value

    @field_validator("session_name")
    @classmethod
    def _session_name(cls, value: str, info: ValidationInfo) -> str:
        if _literal(value, info) and not _SESSION_NAME.match(value):
            raise ValueError("2 to 64 letters, digits or any of + = , . @ _ -")
        return value


S3Credentials = Literal["default"] | AccessKeyCredentials | AssumeRoleCredentials


class S3Settings(_Model):
    """An Amazon S3 bucket, or any S3-compatible store reached through `endpoint_url`."""

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
        if _literal(value, info) and (not _BUCKET.match(value) or ".." in value):
            raise ValueError(
                "not a valid bucket name: 3 to 63 lowercase letters, digits, dots or hyphens"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str, info: ValidationInfo) -> str:
        if not _literal(value, info):
            return value
        segments = value.removesuffix("/").split("/") if value else []
        if (
            value.startswith("/")
            or "\\" in value
            or _CONTROL.search(value)
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
        if value == "" and _expanded(info):
            return None  # a variable set to nothing: let the AWS chain pick the region
        if value is not None and _literal(value, info) and not _REGION.match(value):
            raise ValueError("not a region name, e.g. us-west-2")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "" and _expanded(info):
            return None  # `${S3_ENDPOINT_URL}` set to nothing means AWS itself
        if value is None or not _literal(value, info):
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


class FilesystemSettings(_Model):
    """A folder on this machine (or a mounted share); relative paths are from the workspace."""

    path: str = Field(min_length=1)

    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
        return f"filesystem|{posixpath.normpath(self.path.replace(os.sep, '/'))}"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("a folder path cannot contain control characters")
        return value


class Attribute(_Model):
    """One attribute to send: a source column, optionally renamed, optionally from another table."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(min_length=1)
    as_: str | None = Field(default=None, alias="as", min_length=1)
    table: str | None = Field(default=None, min_length=1)

    @property
    def column(self) -> str:
        """The column name the destination receives."""
        return self.as_ or self.source


class PgpOptions(_Model):
    """Encrypt each data file to a recipient's PGP public key: `public_key` (the armored key
    block, or a `${VAR}` holding it) or `public_key_file`; `armor` writes ASCII (`.asc`)
    instead of binary (`.pgp`)."""

    public_key: str | None = None
    public_key_file: str | None = None
    armor: bool = False

    @model_validator(mode="after")
    def _one_key(self) -> PgpOptions:
        if (self.public_key is None) == (self.public_key_file is None):
            raise ValueError("give exactly one of public_key or public_key_file")
        return self

    @property
    def suffix(self) -> str:
        """What encryption adds to a file's name."""
        return ".asc" if self.armor else ".pgp"


class FileOptions(_Model):
    """How the files are written: format, compression, CSV dialect, parts, name, extras."""

    format: FileFormat = "csv"
    delimiter: str | None = None
    compression: Compression = "none"
    header: bool = True
    line_ending: Literal["lf", "crlf"] = "lf"
    quote: QuoteMode = "minimal"
    escape: str | None = None
    encoding: str = "utf-8"
    row_number: str | None = Field(default=None, min_length=1)
    split_rows: StrictPositiveInt | None = None
    split_size: StrictInt | str | None = None
    success_file: bool = False
    manifest: bool = False
    csv_injection_guard: bool = False
    empty: Literal["header", "none"] = "header"
    filename: str = DEFAULT_TEMPLATE
    pgp: PgpOptions | None = None

    @field_validator("delimiter", "escape")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in '"\r\n'):
            raise ValueError("one character, other than a double quote or a line break")
        return value

    @field_validator("delimiter", "header", "line_ending", "quote", "escape")
    @classmethod
    def _delimited_only(cls, value: Any, info: ValidationInfo) -> Any:
        file_format = info.data.get("format", "csv")
        default = cls.model_fields[info.field_name or ""].default
        if file_format not in DELIMITED_FORMATS and value != default:
            raise ValueError(f"applies only to csv, tsv and psv files, not {file_format}")
        if info.field_name == "delimiter" and value is not None and file_format != "csv":
            raise ValueError(f"goes with format csv; {file_format} has its own delimiter")
        if info.field_name == "escape" and value is not None:
            delimiter = info.data.get("delimiter") or FORMAT_DELIMITERS.get(file_format)
            if value == delimiter:
                raise ValueError("the escape character must differ from the delimiter")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str, info: ValidationInfo) -> str:
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; e.g. utf-8, utf-8-sig, latin-1"
            ) from None
        file_format = info.data.get("format", "csv")
        if file_format not in DELIMITED_FORMATS and name != "utf-8":
            raise ValueError(f"{file_format} files are always utf-8")
        return value

    @field_validator("split_size")
    @classmethod
    def _split_size(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        if value is None:
            return None
        if size_in_bytes(value) < 1:
            raise ValueError("a part must be allowed at least one byte")
        if info.data.get("format") == "parquet":
            # A Parquet file's size is known only as its row groups are written.
            raise ValueError("parquet files are split by rows: use split_rows")
        return value

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        validate_template(value)
        return value

    @property
    def split_bytes(self) -> int | None:
        """The size a part may reach, in bytes, when parts are split by size."""
        return None if self.split_size is None else size_in_bytes(self.split_size)

    @property
    def split(self) -> bool:
        """Whether the data is cut into numbered parts (by rows, by size or both)."""
        return self.split_rows is not None or self.split_size is not None

    @property
    def bundled(self) -> bool:
        """Whether the numbered parts travel together as members of one tar archive."""
        return self.split and self.compression in {"tar", "tgz"}

    @property
    def column_delimiter(self) -> str:
        """The field separator of a delimited file (`,` for csv unless `delimiter` says)."""
        return self.delimiter or FORMAT_DELIMITERS.get(self.format, ",")

    @property
    def eol(self) -> str:
        """The line ending as text."""
        return "\r\n" if self.line_ending == "crlf" else "\n"


class SftpSettings(_Model):
    """A folder on an SFTP server. The server's host key is checked: `host_key` (its public
    key line, `ssh-ed25519 AAAA…`), else the `known_hosts` file (default ~/.ssh/known_hosts).
    Log in with `private_key_file` (a key file on this machine), `private_key` (the key's text,
    a `${VAR}`) or `password` (a `${VAR}`)."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    folder: str = "."
    password: str | None = None
    private_key: str | None = None
    private_key_file: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @field_validator("password", "private_key")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _reference_only(value, info)

    @field_validator("host", "user", "folder")
    @classmethod
    def _visible(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("cannot contain control characters")
        return value

    @model_validator(mode="after")
    def _one_login(self) -> SftpSettings:
        given = [f for f in ("password", "private_key", "private_key_file") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("give exactly one of password, private_key or private_key_file")
        return self

    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
        return f"sftp|{self.host}|{self.port}|{posixpath.normpath(self.folder)}"


class WebhookSettings(_Model):
    """An HTTP endpoint that takes records as JSON, in batches of `batch_size` per request:
    `{"run_id", "file", "batch", "records": [...]}` with an `Idempotency-Key` header (the same
    for a batch sent again) and, when `secret` is set, `X-Audience-Signature: sha256=<HMAC of
    the body>`. Requests failing with 429, 5xx or a lost connection are tried again
    (`max_attempts` in all, honouring Retry-After)."""

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
        if not _literal(value, info):
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("a webhook URL starts with http:// or https:// and names a host")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _reference_only(value, info)

    def place(self) -> str:
        """Where records go: one endpoint."""
        return f"webhook|{self.url}"


DestinationSettings = S3Settings | FilesystemSettings | SftpSettings | WebhookSettings
SETTINGS_BY_TYPE: dict[str, type[DestinationSettings]] = {
    "s3": S3Settings,
    "filesystem": FilesystemSettings,
    "sftp": SftpSettings,
    "webhook": WebhookSettings,
}
"""Each destination type's settings model; `delivery.destinations` opens each type."""


class Destination(_Model):
    """A named, typed place to deliver files, with its file options and default attributes."""

    kind: Literal["destination"] = "destination"
    name: str = Field(min_length=1, max_length=200)
    type: Literal["s3", "filesystem", "sftp", "webhook"]
    settings: DestinationSettings
    file: FileOptions = Field(default_factory=FileOptions)
    default_attributes: list[str | Attribute] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or _CONTROL.search(value):
            raise ValueError("a name needs visible characters and no control characters")
        return value

    @field_validator("settings", mode="wrap")
    @classmethod
    def _settings(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The settings model follows `type`; validating against that one model keeps errors
        # about its fields instead of a list of every alternative's complaints.
        model = SETTINGS_BY_TYPE.get(info.data.get("type", ""))
        if model is None:
            # `type` is itself invalid and already reported; its settings cannot be judged.
            return value
        if isinstance(value, model):
            return handler(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True)
        return model.model_validate(value, context=info.context)

    @model_validator(mode="after")
    def _records_are_not_files(self) -> Destination:
        # A webhook takes records, not files: packaging options would silently mean nothing.
        if self.type == "webhook":
            options = self.file
            for option, unset in (
                ("split_rows", None),
                ("split_size", None),
                ("manifest", False),
                ("success_file", False),
                ("compression", "none"),
                ("pgp", None),
            ):
                if getattr(options, option) != unset:
                    raise ValueError(f"file.{option}: a webhook takes records, not files")
        return self

    @field_validator("default_attributes")
    @classmethod
    def _unique_columns(cls, value: list[str | Attribute]) -> list[str | Attribute]:
        seen: set[str] = set()
        for item in value:
            column = item if isinstance(item, str) else item.column
            if not column.strip():
                raise ValueError("an attribute name is empty")
            if column in seen:
                raise ValueError(f"{column!r} is sent twice; rename one with `as`")
            seen.add(column)
        return value
