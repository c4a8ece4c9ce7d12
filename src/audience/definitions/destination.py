"""The `kind: destination` document: where files go, in which shape, with which attributes.

```yaml
kind: destination
name: marketing-s3
type: s3                                  # one of delivery.destinations.TYPES
settings: {bucket: acme-marketing, prefix: audiences/, region: us-west-2,
           endpoint_url: ${S3_ENDPOINT_URL}, credentials: default}
file: {format: csv, compression: gzip, header: true, success_file: true,
       filename: "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"}
default_attributes: [amperity_id, email, {source: given_name, as: first_name}]
```

`settings:` is validated by the model of the destination's type, which lives with that type's
client in `delivery/destinations/<type>/settings.py`. Its strings may hold `${VAR}` references,
kept exactly as written and expanded only for a delivery (`definitions.references`).
"""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from audience.definitions.base import DefinitionModel, DestinationSettings
from audience.definitions.references import CONTROL_CHARACTERS
from audience.definitions.templates import DEFAULT_TEMPLATE, validate_template
from audience.delivery.destinations import TYPES, settings_model

FileFormat = Literal["csv", "tsv", "psv", "parquet", "json", "ndjson"]
Compression = Literal["none", "gzip", "zip", "tar", "tgz"]
QuoteMode = Literal["all", "non_null", "minimal", "non_numeric", "none"]
DELIMITED_FORMATS = frozenset({"csv", "tsv", "psv"})
FORMAT_DELIMITERS = {"csv": ",", "tsv": "\t", "psv": "|"}

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


class Attribute(DefinitionModel):
    """One attribute to send: a source column, optionally renamed, optionally from another table."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(min_length=1)
    as_: str | None = Field(default=None, alias="as", min_length=1)
    table: str | None = Field(default=None, min_length=1)

    @property
    def column(self) -> str:
        """The column name the destination receives."""
        return self.as_ or self.source


class PgpOptions(DefinitionModel):
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


class FileOptions(DefinitionModel):
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


class Destination(DefinitionModel):
    """A named, typed place to deliver files, with its file options and default attributes."""

    kind: Literal["destination"] = "destination"
    name: str = Field(min_length=1, max_length=200)
    type: str
    settings: SerializeAsAny[DestinationSettings]
    file: FileOptions = Field(default_factory=FileOptions)
    default_attributes: list[str | Attribute] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or CONTROL_CHARACTERS.search(value):
            raise ValueError("a name needs visible characters and no control characters")
        return value

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in TYPES:
            known = "; ".join(f"{name} ({what})" for name, what in TYPES.items())
            raise ValueError(f"unknown destination type {value!r}; the types are {known}")
        return value

    @field_validator("settings", mode="wrap")
    @classmethod
    def _settings(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The settings model follows `type`; validating against that one model keeps errors
        # about its fields instead of a list of every alternative's complaints.
        if "type" not in info.data:
            # `type` is itself invalid and already reported; its settings cannot be judged.
            return value
        model = settings_model(info.data["type"])
        if isinstance(value, model):
            return handler(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True)
        return model.model_validate(value, context=info.context)

    @model_validator(mode="after")
    def _records_are_not_files(self) -> Destination:
        return self.taking_records_not_files()

    def taking_records_not_files(self) -> Destination:
        """This destination, if it takes files, or takes records (a webhook) with no file
        packaging options, which would silently mean nothing; ValueError naming the option
        otherwise (also checked when an orchestration lays its own `file:` over it)."""
        if self.settings.TAKES_RECORDS:
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
                    raise ValueError(f"file.{option}: a {self.type} takes records, not files")
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
