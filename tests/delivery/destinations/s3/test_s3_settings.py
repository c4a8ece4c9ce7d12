"""The settings of an `s3` destination: what they accept, what they refuse, and `${VAR}`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from audience.definitions.destination import Destination
from audience.delivery.destinations.s3.settings import (
    AccessKeyCredentials,
    AssumeRoleCredentials,
    S3Settings,
)
from audience.delivery.shipment import open_destination
from audience.errors import TerminalDeliveryError

DESTINATION = {
    "kind": "destination",
    "name": "marketing-s3",
    "type": "s3",
    "settings": {
        "bucket": "acme-marketing",
        "prefix": "audiences/",
        "region": "us-west-2",
        "endpoint_url": "${S3_ENDPOINT_URL}",
        "credentials": "default",
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """The destination with one settings field (dotted path) replaced."""
    document: dict[str, Any] = {**DESTINATION, "settings": dict(DESTINATION["settings"])}  # type: ignore[call-overload]
    *parents, leaf = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    target[leaf] = value
    return document


def _settings(document: dict[str, Any]) -> S3Settings:
    settings = Destination.model_validate(document).settings
    assert isinstance(settings, S3Settings)
    return settings


def test_credentials_shapes() -> None:
    keys = {"access_key_id": "${KEY_ID}", "secret_access_key": "${SECRET}"}
    role = {"role_arn": "arn:aws:iam::123456789012:role/x", "external_id": "ext-123"}
    assert isinstance(
        _settings(_with("settings.credentials", keys)).credentials,
        AccessKeyCredentials,
    )
    assert isinstance(
        _settings(_with("settings.credentials", role)).credentials,
        AssumeRoleCredentials,
    )


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        ("settings.bucket", "Bad_Bucket", ("settings", "bucket"), "bucket name"),
        ("settings.prefix", "/abs/", ("settings", "prefix"), "relative folder"),
        ("settings.prefix", "a/../b/", ("settings", "prefix"), "relative folder"),
        ("settings.endpoint_url", "ftp://x", ("settings", "endpoint_url"), "http"),
        ("settings.credentials", "env", ("settings", "credentials"), "'default'"),
        (
            "settings.credentials",
            {"access_key_id": "AK", "secret_access_key": "plain-text"},
            ("settings", "credentials", "secret_access_key"),
            "never as plain text",
        ),
        (
            "settings.credentials",
            {"role_arn": "arn:aws:iam::123456789012:role/x"},
            ("settings", "credentials", "external_id"),
            "Field required",
        ),
        (
            "settings.credentials",
            {"role_arn": "not-an-arn", "external_id": "abc"},
            ("settings", "credentials", "role_arn"),
            "IAM role ARN",
        ),
        ("settings.kms_key_id", "k", ("settings",), "aws:kms"),
    ],
)
def test_bad_settings_name_their_field(
    path: str, value: Any, where: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Destination.model_validate(_with(path, value))
    first = caught.value.errors()[0]
    assert first["loc"] == where
    assert message in first["msg"]


def test_references_are_checked_once_expanded() -> None:
    destination = Destination.model_validate(_with("settings.bucket", "${BUCKET}"))
    with pytest.raises(TerminalDeliveryError, match=r"\$\{BUCKET\}, which is not set"):
        open_destination(destination, environ={})
    with pytest.raises(TerminalDeliveryError, match=r"settings\.bucket: .*bucket name"):
        open_destination(destination, environ={"BUCKET": "Not_Valid", "S3_ENDPOINT_URL": "x"})


def test_expansion_errors_never_show_secret_values() -> None:
    keys = {"access_key_id": "${KEY_ID}", "secret_access_key": "${SECRET}"}
    destination = Destination.model_validate(
        _with("settings", {"bucket": "b-1", "endpoint_url": "${URL}", "credentials": keys})
    )
    environment = {"KEY_ID": "AK", "SECRET": "s3cr3t-value", "URL": "s3cr3t-value"}
    with pytest.raises(TerminalDeliveryError) as caught:
        open_destination(destination, environ=environment)
    assert "endpoint_url" in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)


def test_an_endpoint_variable_set_to_nothing_means_aws() -> None:
    destination = Destination.model_validate(DESTINATION)
    client = open_destination(destination, environ={"S3_ENDPOINT_URL": ""})
    assert client.client.meta.endpoint_url == "https://s3.us-west-2.amazonaws.com"  # type: ignore[attr-defined]
