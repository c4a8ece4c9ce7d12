"""Saving what a builder shows without losing what it does not: a stored definition keeps every
top-level field the editor left as the builder first showed it (a campaign's seed, a schedule's
catch-up policy, a value list with commas…), and takes the builder's only where it changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def keep_untouched(
    stored: Mapping[str, Any], shown: Mapping[str, Any], edited: Mapping[str, Any]
) -> dict[str, Any]:
    """The document to save: `edited` (what the builder makes of the form now), except that a
    field equal to `shown` (what the builder made of `stored` when it opened) is `stored`'s."""
    merged: dict[str, Any] = {}
    for key in [*stored, *(k for k in edited if k not in stored)]:
        if edited.get(key) == shown.get(key):
            if key in stored:
                merged[key] = stored[key]
        elif key in edited:
            merged[key] = edited[key]
    return merged
