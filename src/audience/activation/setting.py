"""What a campaign run needs from its workspace, and how it reports progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from audience.compile.conditions import CompileContext
from audience.definitions.destination import Destination
from audience.delivery.destinations.base import DestinationClient
from audience.delivery.shipment import open_destination
from audience.engines.base import Engine
from audience.store.runs import RunLog


class Progress(Protocol):
    """How core code reports progress; the CLI draws it, the API exposes it."""

    def step(self, description: str, total: int | None = None) -> None:
        """A new step begins (with its number of rows, when known)."""

    def advance(self, rows: int) -> None:
        """Rows of the current step are done."""


class Silent:
    """Progress that nobody watches."""

    def step(self, description: str, total: int | None = None) -> None:
        del description, total

    def advance(self, rows: int) -> None:
        del rows


@dataclass(frozen=True)
class CampaignSetting:
    """Everything a campaign needs from its workspace."""

    engine: Engine
    runs: RunLog
    ctx: CompileContext
    destinations: Mapping[str, Destination]
    open_client: Callable[[Destination], DestinationClient] = field(default=open_destination)
    references: Mapping[str, str] = field(default_factory=lambda: os.environ)
    """What `${VAR}` and `${secret:NAME}` stand for, for what `open_client` does not open (PGP
    keys)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The wall clock, for when a run starts and ends (`now` is when it was due)."""
