"""Rules every definition name follows: names appear in files, URLs and logs."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MAX_NAME_LENGTH = 200


def check_name(name: str) -> str:
    """Return `name` stripped, or raise ValueError if it is empty, too long or has control chars."""
    name = name.strip()
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name is longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ValueError("name must not contain control characters")
    return name


Name = Annotated[str, AfterValidator(check_name)]
"""A definition's name (or a treatment's, a sub-audience's): checked by `check_name`."""


def check_unique(names: list[str]) -> list[str]:
    """Return `names`, or raise ValueError naming those listed twice (a destination listed
    twice would be sent the same customers twice)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"each destination once; listed twice: {', '.join(repeated)}")
    return names


DestinationNames = Annotated[list[str], AfterValidator(check_unique)]
"""The destinations a treatment or an activate node sends to, each once."""
