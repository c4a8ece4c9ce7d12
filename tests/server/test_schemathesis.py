"""Schemathesis over the OpenAPI description, against `audience serve`'s app on a loopback port:
whatever it sends (within the schema or not), the server answers without a 500, with a status
the description names and a body that fits it."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from audience.server.app import create_app
from audience.settings import SETTINGS_FILE, render_settings
from audience.store.secrets import new_key
from audience.workspace import Workspace
from realservices import fixed_clock


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, sample_database: Path
) -> Iterator[tuple[str, str]]:
    directory = tmp_path_factory.mktemp("served")
    (directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    shutil.copy(sample_database, directory / "customer360.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIENCE__SECRETS__KEY", new_key())
        with Workspace.open(directory, fixed_clock) as ws:
            ws.store.accounts.add_user("ada", "admin", None, actor="test", now=fixed_clock())
            token = ws.store.accounts.create_token(
                "ada", "fuzz", expires_at=None, actor="test", now=fixed_clock()
            ).secret
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        app = create_app(directory, clock=fixed_clock, worker=False)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            threading.Event().wait(0.05)
        yield base, token
        server.should_exit = True
        thread.join(10)


@pytest.mark.slow
def test_no_input_makes_the_server_fail(served: tuple[str, str]) -> None:
    base, token = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            derandomize=True,  # the same cases every run: CI is not a lottery
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_well(case: Any) -> None:
            response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=checks)

        answers_well()
    assert httpx.get(f"{base}/health").status_code == 200
