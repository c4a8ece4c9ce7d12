"""`${VAR}` references in definitions: where they may stand, and when they are checked.

Strings in a destination's settings may hold `${VAR}` references to environment variables, and
`${secret:NAME}` references to secrets stored (encrypted) in the workspace. They are kept exactly as
written — a reference may name a secret, whose value must never be stored or exported — and are
expanded only when the destination is opened for a delivery; then the settings are validated
again with `context={EXPANDED: True}`, so checks that could not judge a reference judge its value.
"""

from __future__ import annotations

import re

from pydantic import ValidationInfo

# Pass `context={"expanded": True}` to validate settings whose `${VAR}` were already expanded.
EXPANDED = "expanded"
SECRET_PREFIX = "secret:"
_SECRET_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,199}"
SECRET_NAME = re.compile(f"^{_SECRET_NAME}$")
"""What a stored secret may be called, so that `${secret:NAME}` can name it."""
_ONE_REFERENCE = rf"{SECRET_PREFIX}{_SECRET_NAME}|[A-Za-z_][A-Za-z0-9_]*"
REFERENCE = re.compile(rf"\$\{{({_ONE_REFERENCE})\}}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_ONLY_REFERENCE = re.compile(rf"^\$\{{({_ONE_REFERENCE})\}}$")
_REFERENCE_AFTER_A_WORD = re.compile(
    rf"^(?:[A-Za-z0-9._~+/-]+(?:[ \t]+|=))?\$\{{({_ONE_REFERENCE})\}}$"
)


def references(text: str) -> list[str]:
    """What `text` refers to: environment variables (`${VAR}`) and secrets (`secret:NAME`)."""
    return REFERENCE.findall(text)


def expanded(info: ValidationInfo) -> bool:
    """Whether these settings are being validated with their references already expanded."""
    return bool(info.context and info.context.get(EXPANDED))


def checkable(value: str, info: ValidationInfo) -> bool:
    """Whether `value` can be checked now: written without references, or already expanded."""
    return expanded(info) or not references(value)


def reference_only(value: str | None, info: ValidationInfo) -> str | None:
    """A secret field's value: a `${VAR}` reference (or, once expanded, the secret)."""
    if value is not None and not expanded(info) and not is_reference(value):
        raise ValueError(
            "a secret is given as ${secret:NAME} (stored with `audience secret set`) or as a "
            "${VARIABLE} that holds it, never as plain text"
        )
    return value


def is_credential_reference(value: str) -> bool:
    """Whether `value` gives a credential only by reference: a `${VAR}` or `${secret:NAME}`,
    after at most one word such as an authentication scheme (`Bearer ${secret:TOKEN}`) or a
    cookie's name (`session=${secret:SESSION}`)."""
    return _REFERENCE_AFTER_A_WORD.match(value) is not None


def is_reference(value: str) -> bool:
    """Whether `value` is exactly one `${VAR}` or `${secret:NAME}` reference."""
    return _ONLY_REFERENCE.match(value) is not None
