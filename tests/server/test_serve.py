"""`audience serve` as a process of its own, over real HTTP on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_answers_on_loopback_with_a_token(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    with Workspace.open(tmp_path) as ws:
        ws.store.accounts.add_user("ada", "admin", None, actor="test", now=ws.clock())
        token = ws.store.accounts.create_token(
            "ada", "t", expires_at=None, actor="test", now=ws.clock()
        ).secret
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from audience.cli.main import main; main()",
            "serve",
            "--port",
            str(port),
            "-w",
            str(tmp_path),
        ],
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
        assert httpx.get(f"{base}/status").status_code == 401
        answer = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["items"] == []
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        server.terminate()
        server.wait(10)


def test_serve_refuses_a_folder_that_is_no_workspace(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from audience.cli.main import main; main()",
            "serve",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "is not an Audience workspace" in done.stderr
