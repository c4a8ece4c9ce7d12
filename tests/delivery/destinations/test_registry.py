"""The registry of destination types: every type is one package holding its settings model and
its client, and reading a destination's definition never imports a client's libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from audience.definitions.base import DestinationSettings
from audience.definitions.destination import Destination
from audience.delivery.destinations import TYPES, opener, settings_model

SAMPLE_SETTINGS = {
    "s3": {"bucket": "acme-marketing"},
    "filesystem": {"path": "out"},
    "sftp": {"host": "drop.example.com", "user": "acme", "password": "${SFTP_PASSWORD}"},
    "webhook": {"url": "https://hooks.example.com/audience"},
}
CLIENT_LIBRARIES = ("boto3", "botocore", "paramiko", "httpx", "pyarrow", "duckdb", "sqlalchemy")


def test_every_type_has_a_sample_here() -> None:
    assert set(SAMPLE_SETTINGS) == set(TYPES)


@pytest.mark.parametrize("destination_type", sorted(TYPES))
def test_each_type_is_one_package_with_settings_and_a_client(destination_type: str) -> None:
    model = settings_model(destination_type)
    assert issubclass(model, DestinationSettings)
    assert model.__module__ == f"audience.delivery.destinations.{destination_type}.settings"
    open_client = opener(destination_type)
    assert open_client.__module__ == f"audience.delivery.destinations.{destination_type}.client"
    destination = Destination.model_validate(
        {"name": "d", "type": destination_type, "settings": SAMPLE_SETTINGS[destination_type]}
    )
    assert type(destination.settings) is model
    assert destination.settings.place().startswith(f"{destination_type}|")


def test_a_definition_round_trips_with_its_types_settings() -> None:
    written = {"name": "d", "type": "sftp", "settings": SAMPLE_SETTINGS["sftp"]}
    dumped = Destination.model_validate(written).model_dump(exclude_defaults=True)
    assert dumped["settings"] == SAMPLE_SETTINGS["sftp"]
    assert Destination.model_validate(dumped) == Destination.model_validate(written)


def test_an_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        Destination.model_validate({"name": "d", "type": "ftp", "settings": {}})
    (error,) = caught.value.errors()
    assert error["loc"] == ("type",)
    assert all(name in error["msg"] for name in TYPES)


def test_reading_destinations_imports_no_client_library() -> None:
    probe = (
        "import sys\n"
        "from audience.definitions.destination import Destination\n"
        f"for t, s in {SAMPLE_SETTINGS!r}.items():\n"
        "    Destination.model_validate({'name': 'd', 'type': t, 'settings': s})\n"
        f"print(','.join(m for m in {CLIENT_LIBRARIES!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


@pytest.mark.parametrize(
    ("destination_type", "field", "settings"),
    [
        ("filesystem", "path", {"path": "${secret:token}"}),
        ("s3", "prefix", {"bucket": "acme", "prefix": "x/${secret:token}/"}),
        ("sftp", "user", {"host": "h", "user": "${secret:token}", "password": "${P}"}),
        ("webhook", "url", {"url": "https://h.example.com/in?key=${secret:token}"}),
    ],
)
def test_a_stored_secret_stands_only_where_it_is_never_shown(
    destination_type: str, field: str, settings: dict[str, str]
) -> None:
    """A file's address, a connection error and the run log would show it anywhere else."""
    with pytest.raises(ValidationError) as caught:
        Destination.model_validate({"name": "d", "type": destination_type, "settings": settings})
    assert f"{field}: a stored secret" in str(caught.value)


def test_secret_fields_take_stored_secrets() -> None:
    for destination_type, settings in (
        ("sftp", {"host": "h", "user": "u", "private_key": "${secret:sftp.key}"}),
        ("webhook", {"url": "https://h.example.com", "headers": {"X-Key": "${secret:k}"}}),
        (
            "s3",
            {
                "bucket": "acme",
                "credentials": {"access_key_id": "${secret:a}", "secret_access_key": "${secret:b}"},
            },
        ),
    ):
        Destination.model_validate({"name": "d", "type": destination_type, "settings": settings})
