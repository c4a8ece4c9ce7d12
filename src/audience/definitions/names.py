"""Rules every definition name follows: names appear in files, URLs and logs.

A name is kept in Unicode NFC, so that "é" typed as one character and as "e" with a combining
accent (as some keyboards and macOS file names send it) is one name, not two that look alike;
front ends bring the names they are given to NFC too (`nfc`) before looking one up."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MAX_NAME_LENGTH = 200


def nfc(text: str) -> str:
    """`text` in Unicode normal form C: how names are stored and looked up."""
    return unicodedata.normalize("NFC", text)


def check_name(name: str) -> str:
    """Return `name` in NFC, or raise ValueError if it is empty, too long, has control
    characters, starts or ends with white space, or is only dots (`.` and `..` mean the folder
    and its parent in a URL's path, so the name could never be reached over HTTP)."""
    if not name.strip():
        raise ValueError("name must not be empty")
    if name != name.strip():
        raise ValueError(
            f"name {name!r} starts or ends with white space, which is easy to miss and not "
            f"to type again; write {name.strip()!r}"
        )
    name = nfc(name)
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name is longer than {MAX_NAME_LENGTH} characters")
    # Printable text has no control characters (category C); only text with other unprintable
    # characters (non-ASCII spaces, which names may hold) is looked at character by character.
    if not name.isprintable() and any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ValueError("name must not contain control characters")
    if not name.strip("."):
        raise ValueError(f"name {name!r} is only dots, which a URL cannot reach; add a letter")
    return name


Name = Annotated[str, AfterValidator(check_name)]
"""A definition's name (or a treatment's, a sub-audience's): checked by `check_name`."""

Reference = Annotated[str, AfterValidator(nfc)]
"""A name that refers to another definition (a segment, a destination, an activation, a
journey's node): in NFC, as the names it refers to are."""


def check_unique(names: list[str]) -> list[str]:
    """Return `names`, or raise ValueError naming those listed twice (a destination listed
    twice would be sent the same customers twice)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"each destination once; listed twice: {', '.join(repeated)}")
    return names


DestinationNames = Annotated[list[Reference], AfterValidator(check_unique)]
"""The destinations a treatment or an activate node sends to, each once."""
