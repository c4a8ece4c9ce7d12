"""File names from a destination's template (`definitions/templates.py`), made safe everywhere.

Rendered when a file is sent (`data_file_name`, `set_file_name`). Whatever a user typed, a
rendered name is one path segment: no `/`, `\\`, `..`,
control or non-printable characters; whitespace and punctuation become `_`; at most
`MAX_STEM_BYTES` bytes before the extension; and the activation's name is always in it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audience.definitions.templates import (
    render,
    uses_variable,
)

# Room is left after the stem for a part suffix, the longest extension (".manifest.json") and
# the filesystem destination's temporary-name decorations, all within 255-byte name limits.
MAX_STEM_BYTES = 200
# One value may take at most this much of the stem, so the activation name always fits.
MAX_VALUE_BYTES = 120

_FORMAT_EXTENSIONS: Mapping[str, str] = {
    "csv": ".csv",
    "tsv": ".tsv",
    "psv": ".psv",
    "parquet": ".parquet",
    "json": ".json",
    "ndjson": ".ndjson",
}
# Letters and digits of any script, `_`, `.` and `-` survive; every other run of characters
# (whitespace, separators, control characters, emoji, shell and URL punctuation) becomes `_`.
_UNSAFE_RUN = re.compile(r"[^\w.\-]+")
_DOTS = re.compile(r"\.{2,}")


@dataclass(frozen=True)
class NameValues:
    """What a file name may say about the activation that sends it."""

    activation_name: str
    now: datetime
    group_name: str = ""
    sub_audience_name: str = ""

    def __post_init__(self) -> None:
        if not self.activation_name.strip():
            raise ValueError("a file name needs the activation's name, and it is empty")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _truncate_bytes(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _shorten(text: str, limit: int) -> str:
    """Keep `text` within `limit` bytes; a cut name ends with a hash of the whole, so that two
    long names differing only at the end stay different."""
    if len(text.encode("utf-8")) <= limit:
        return text
    return f"{_truncate_bytes(text, limit - 9).rstrip('._-')}-{_short_hash(text)}"


def safe_component(value: str, *, limit: int = MAX_VALUE_BYTES) -> str:
    """Make one value safe to put in a file name (see the module docstring)."""
    text = unicodedata.normalize("NFC", value)
    text = _UNSAFE_RUN.sub("_", text)
    text = _DOTS.sub(".", text)
    # A leading dot hides a file and a leading dash reads as an option to command-line tools.
    text = text.strip("._-")
    if not text:
        # Nothing printable was left (e.g. a name made of emoji): a stable stand-in keeps two
        # such names apart.
        return f"x{_short_hash(value)}" if value else ""
    return _shorten(text, limit)


def _variables(
    values: NameValues, *, destination_name: str, run_id: str, file_number: int
) -> dict[str, Any]:
    activation = safe_component(values.activation_name)
    return {
        "activation_name": activation,
        "campaign_name": activation,
        "group_name": safe_component(values.group_name),
        "sub_audience_name": safe_component(values.sub_audience_name),
        "destination_name": safe_component(destination_name),
        "run_id": safe_component(run_id),
        "file_number": file_number,
        "now": values.now,
    }


def _stem(template: str, variables: dict[str, Any]) -> str:
    activation: str = variables["activation_name"]
    stem = safe_component(render(template, variables), limit=MAX_STEM_BYTES)
    if activation not in stem:
        stem = safe_component(f"{activation}_{stem}", limit=MAX_STEM_BYTES)
    return stem


def extension(file_format: str, compression: str) -> str:
    """The extension of a delivered file: `.csv`, `.csv.gz`, `.parquet`, `.zip`, `.tar.gz`…"""
    base = _FORMAT_EXTENSIONS[file_format]
    return {
        "none": base,
        "gzip": f"{base}.gz",
        "zip": ".zip",
        "tar": ".tar",
        "tgz": ".tar.gz",
    }[compression]


def data_file_name(
    template: str,
    values: NameValues,
    *,
    destination_name: str,
    run_id: str,
    file_number: int,
    numbered: bool,
    suffix: str,
) -> str:
    """The name of data file `file_number` (from 1), ending in `suffix` (an `extension`).

    When the data is split into numbered parts (`numbered`) and the template does not place
    `{{ file_number }}` itself, `_<n>` is appended to the stem so parts never collide.
    """
    variables = _variables(
        values, destination_name=destination_name, run_id=run_id, file_number=file_number
    )
    stem = _stem(template, variables)
    if numbered and not uses_variable(template, "file_number"):
        stem = f"{stem}_{file_number}"
    return f"{stem}{suffix}"


def set_file_name(
    template: str, values: NameValues, *, destination_name: str, run_id: str, suffix: str
) -> str:
    """The name of a file about the whole set of data files: the manifest or the success file.

    It is the template rendered as for the data files; a template that places
    `{{ file_number }}` gets 0 there (file 0 stands for the whole set).
    """
    variables = _variables(values, destination_name=destination_name, run_id=run_id, file_number=0)
    return f"{_stem(template, variables)}{suffix}"


def member_name(file_name: str, file_format: str, compression: str) -> str:
    """The name of the data file inside a zip or tar archive called `file_name`."""
    archive = extension(file_format, compression)
    stem = file_name.removesuffix(archive)
    return f"{stem}{_FORMAT_EXTENSIONS[file_format]}"
