"""`audience serve` as a process of its own, over real HTTP on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace

AUDIENCE = [sys.executable, "-c", "from audience.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _serving(directory: Path) -> Iterator[str]:
    """`audience serve` on `directory` in a process of its own; its address."""
    port = _free_port()
    server = subprocess.Popen(
        [*AUDIENCE, "serve", "--port", str(port), "-w", str(directory)],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/health").json() == {"ok": True}
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_serve_answers_on_loopback_with_a_token(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    with Workspace.open(tmp_path) as ws:
        ws.store.accounts.add_user("ada", "admin", None, actor="test", now=ws.clock())
        token = ws.store.accounts.create_token(
            "ada", "t", expires_at=None, actor="test", now=ws.clock()
        ).secret
    with _serving(tmp_path) as base:
        assert httpx.get(f"{base}/status").status_code == 401
        answer = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["items"] == []
        assert httpx.get(f"{base}/docs").status_code == 200


@pytest.mark.slow
def test_a_forwarded_for_header_does_not_pick_the_address_sign_in_limits_count(
    tmp_path: Path,
) -> None:
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    with _serving(tmp_path) as base:
        for n in range(5):  # five names, five claimed addresses: one real address
            wrong = {"name": f"nobody{n}", "password": "not the password"}
            forwarded = {"X-Forwarded-For": f"10.9.9.{n}"}
            refused = httpx.post(f"{base}/auth/login", json=wrong, headers=forwarded)
            assert refused.status_code == 401
        sixth = httpx.post(
            f"{base}/auth/login",
            json={"name": "nobody9", "password": "not the password"},
            headers={"X-Forwarded-For": "10.9.9.99"},
        )
        assert sixth.status_code == 429  # the loopback address has failed five times


def test_serve_refuses_a_folder_that_is_no_workspace(tmp_path: Path) -> None:
    done = subprocess.run(
        [*AUDIENCE, "serve", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "is not an Audience workspace" in done.stderr
