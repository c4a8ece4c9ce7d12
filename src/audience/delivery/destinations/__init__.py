"""Destination types, one package each (as in dlt): `<type>/settings.py` is the model of its
`settings:` (plain pydantic, which the definitions validate with), and `<type>/client.py` its
client (`DestinationClient`), the mapping of its errors to transient or terminal, and
`open_client(settings, root)`. A type is added by one package and one line in `TYPES`, never by
an `if` elsewhere. A package is imported when a destination of its type is loaded (settings) or
opened (client), so a command that sends nowhere never pays for boto3, paramiko or httpx.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from audience.definitions.base import DestinationSettings
    from audience.delivery.destinations.base import DestinationClient

TYPES = {
    "s3": "an Amazon S3 bucket, or any S3-compatible store",
    "filesystem": "a folder on this machine or a mounted share",
    "sftp": "a folder on an SFTP server",
    "webhook": "an HTTP endpoint that takes records as JSON",
}
"""Every destination type, with what it is in a few words."""


class Opener(Protocol):
    """What each destination type's client module provides as `open_client`."""

    def __call__(self, settings: DestinationSettings, root: Path | None) -> DestinationClient: ...


def settings_model(destination_type: str) -> type[DestinationSettings]:
    """The model of `destination_type`'s settings (one of `TYPES`)."""
    module = importlib.import_module(f"{__name__}.{_known(destination_type)}.settings")
    found: type[DestinationSettings] = module.SETTINGS
    return found


def opener(destination_type: str) -> Opener:
    """The function that opens clients of `destination_type` (one of `TYPES`)."""
    module = importlib.import_module(f"{__name__}.{_known(destination_type)}.client")
    found: Opener = module.open_client
    return found


def _known(destination_type: str) -> str:
    if destination_type not in TYPES:
        raise KeyError(destination_type)
    return destination_type
