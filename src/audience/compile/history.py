"""What the compiler may know of past activations: their counted runs, for results and for
`sent` conditions (the building block of frequency caps).

The ledger holds a row per customer per run; only runs the metadata store marks succeeded (and
that were not tests) are trusted. Their ids and due times come from the store through an
`ActivationHistory` the caller gives, so the compiler itself reads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class CountedRun:
    """A successful, real run: its id, its activation's kind and the time it was due (the
    moment it selected its customers as of)."""

    id: str
    kind: str
    due: datetime


@dataclass(frozen=True)
class SentActivation:
    """One activation as a `sent` condition sees it: its counted runs, and the names of what it
    sends (so a misspelt treatment is refused rather than matching nobody)."""

    kinds: frozenset[str]
    runs: Sequence[CountedRun] = ()
    treatments: frozenset[str] = frozenset()
    """Campaign treatments and journey split paths."""
    sub_audiences: frozenset[str] = frozenset()
    """Campaign sub-audiences and journey activate nodes."""
    destinations: frozenset[str] = field(default_factory=frozenset)


class ActivationHistory(Protocol):
    """Past activations by name."""

    @property
    def recipients_table(self) -> str:
        """The recipients ledger's table."""
        ...

    def activation(self, name: str) -> SentActivation | None:
        """The activation of that name (None: there is none that sends customers)."""
        ...


@dataclass(frozen=True)
class NoHistory:
    """No activations at all (a compiler used alone)."""

    recipients_table: str = "audience_recipients"

    def activation(self, name: str) -> SentActivation | None:
        """Nothing is known."""
        return None
