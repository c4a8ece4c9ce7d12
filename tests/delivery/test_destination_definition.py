"""The `kind: destination` document of SPEC Appendix A: what it accepts and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from audience.definitions.destination import Attribute, Destination
from audience.delivery.destinations.filesystem.settings import FilesystemSettings
from audience.delivery.destinations.s3.settings import S3Settings

APPENDIX_A = {
    "kind": "destination",
    "name": "marketing-s3",
    "type": "s3",
    "settings": {
        "bucket": "acme-marketing",
        "prefix": "audiences/",
        "region": "us-west-2",
        "endpoint_url": "${S3_ENDPOINT_URL}",
        "credentials": "default",
    },
    "file": {
        "format": "csv",
        "compression": "gzip",
        "header": True,
        "filename": "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}",
        "success_file": True,
    },
    "default_attributes": [
        "amperity_id",
        "email",
        "given_name",
        "surname",
        "address",
        "address2",
        "state",
        "city",
        "postal",
        "country",
    ],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """Appendix A's destination with one field (dotted path) replaced."""
    document: dict[str, Any] = {
        **APPENDIX_A,
        "settings": dict(APPENDIX_A["settings"]),  # type: ignore[call-overload]
        "file": dict(APPENDIX_A["file"]),  # type: ignore[call-overload]
    }
    *parents, leaf = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    target[leaf] = value
    return document


def _error(document: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        Destination.model_validate(document)
    first = caught.value.errors()[0]
    return first["loc"], first["msg"]


def test_appendix_a_destination() -> None:
    destination = Destination.model_validate(APPENDIX_A)
    assert isinstance(destination.settings, S3Settings)
    assert destination.settings.endpoint_url == "${S3_ENDPOINT_URL}"  # kept as written
    assert destination.file.compression == "gzip" and destination.file.quote == "minimal"
    assert destination.file.empty == "header" and not destination.file.csv_injection_guard
    assert destination.model_dump(exclude_defaults=True)["settings"]["endpoint_url"] == (
        "${S3_ENDPOINT_URL}"
    )


def test_defaults() -> None:
    destination = Destination.model_validate(
        {"name": "local", "type": "filesystem", "settings": {"path": "out"}}
    )
    assert isinstance(destination.settings, FilesystemSettings)
    options = destination.file
    assert (options.format, options.compression, options.header) == ("csv", "none", True)
    assert (options.line_ending, options.quote, options.encoding) == ("lf", "minimal", "utf-8")
    assert options.filename == "{{ activation_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"
    assert destination.default_attributes == []


def test_attributes_with_renames_and_tables() -> None:
    attributes = ["amperity_id", {"source": "given_name", "as": "first_name", "table": "c360"}]
    destination = Destination.model_validate(_with("default_attributes", attributes))
    renamed = destination.default_attributes[1]
    assert isinstance(renamed, Attribute) and renamed.column == "first_name"
    assert destination.model_dump(by_alias=True)["default_attributes"][1]["as"] == "first_name"


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        ("type", "ftp", ("type",), "unknown destination type 'ftp'; the types are s3 ("),
        ("kind", "segment", ("kind",), "'destination'"),
        ("name", "", ("name",), "at least 1"),
        ("settings.path", "x", ("settings", "path"), "Extra inputs"),
        ("file.format", "xlsx", ("file", "format"), "'csv'"),
        ("file.compression", "bz2", ("file", "compression"), "'none'"),
        ("file.quote", "sometimes", ("file", "quote"), "'all'"),
        ("file.line_ending", "cr", ("file", "line_ending"), "'lf'"),
        ("file.delimiter", ";;", ("file", "delimiter"), "one character"),
        ("file.delimiter", '"', ("file", "delimiter"), "one character"),
        ("file.escape", ",", ("file", "escape"), "differ from the delimiter"),
        ("file.encoding", "klingon", ("file", "encoding"), "unknown encoding"),
        ("file.split_rows", 0, ("file", "split_rows"), "greater than 0"),
        ("file.split_rows", "10", ("file", "split_rows"), "valid integer"),
        ("file.empty", "error", ("file", "empty"), "'header' or 'none'"),
        ("file.filename", "{{ ''.__class__ }}", ("file", "filename"), "attribute access"),
        ("file.filename", "{{ customer }}", ("file", "filename"), "unknown variable"),
        ("file.filename", "a/{{ group_name }}", ("file", "filename"), "path separators"),
        ("file.colour", "blue", ("file", "colour"), "Extra inputs"),
        ("default_attributes", ["email", "email"], ("default_attributes",), "sent twice"),
        (
            "default_attributes",
            [{"source": "given_name", "as": "email"}, "email"],
            ("default_attributes",),
            "sent twice",
        ),
    ],
)
def test_bad_values_name_their_field(
    path: str, value: Any, where: tuple[str, ...], message: str
) -> None:
    loc, msg = _error(_with(path, value))
    assert loc == where
    assert message in msg


@pytest.mark.parametrize("field", ["header", "line_ending", "quote", "escape", "delimiter"])
def test_csv_options_do_not_apply_to_other_formats(field: str) -> None:
    value = {"header": False, "line_ending": "crlf", "quote": "all", "escape": "\\"}.get(field, ";")
    document = _with("file", {"format": "parquet", field: value})
    loc, msg = _error(document)
    assert loc == ("file", field)
    assert "csv, tsv and psv" in msg or "format csv" in msg


def test_json_is_always_utf8() -> None:
    loc, msg = _error(_with("file", {"format": "json", "encoding": "latin-1"}))
    assert loc == ("file", "encoding") and "utf-8" in msg
