"""Destination types, one module each: its client (`DestinationClient`), the mapping of its
errors to transient or terminal, and `open_client(settings, root)`. Settings models live with
the definitions (`definitions.destination.SETTINGS_BY_TYPE`); a type is added by one module and
one line here, never by an `if` elsewhere. Modules are imported when a destination of their type
is opened, so a command that sends nowhere never pays for boto3 or paramiko."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from audience.delivery.destinations.base import DestinationClient

MODULES = {
    "filesystem": "audience.delivery.destinations.filesystem",
    "s3": "audience.delivery.destinations.s3",
    "sftp": "audience.delivery.destinations.sftp",
    "webhook": "audience.delivery.destinations.webhook",
}


class Opener(Protocol):
    """What each destination module provides."""

    def __call__(self, settings: BaseModel, root: Path | None) -> DestinationClient: ...


def opener(destination_type: str) -> Opener:
    """The function that opens clients of `destination_type`."""
    module = importlib.import_module(MODULES[destination_type])
    found: Opener = module.open_client
    return found
