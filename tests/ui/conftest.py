"""The web UI in a real browser: `audience serve` as a process of its own (with its worker) on
a free loopback port, and Debian's Chromium driven by Playwright (its own browser download
cannot work here, so `executable_path` names Debian's). Every page a test visits is saved as a
screenshot under `test-artifacts/ui/` (not committed), and axe-core (from the npm registry)
checks it for WCAG 2 A/AA violations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browsing import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    DOCUMENTS,
    PASSWORD,
    Served,
    Visit,
    free_port,
)
from playwright.sync_api import Browser, sync_playwright

from audience.definitions.loader import validate_data
from audience.settings import SETTINGS_FILE, render_settings
from audience.store.secrets import new_key
from audience.workspace import Workspace

AUDIENCE = [sys.executable, "-c", "from audience.cli.main import main; main()"]


@pytest.fixture
def served(tmp_path: Path, sample_database: Path) -> Iterator[Served]:
    """`audience serve` on a sample workspace with a viewer, an editor and an admin."""
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    shutil.copy(sample_database, tmp_path / "customer360.duckdb")
    with Workspace.open(tmp_path) as ws:
        for name, role in (("vera", "viewer"), ("ed", "editor"), ("ada", "admin")):
            ws.store.accounts.add_user(name, role, PASSWORD, actor="test", now=ws.clock())
        ws.apply_documents([validate_data(d) for d in DOCUMENTS])
    port = free_port()
    server = subprocess.Popen(
        [*AUDIENCE, "serve", "--port", str(port), "-w", str(tmp_path)],
        env=os.environ | {"AUDIENCE__SECRETS__KEY": new_key()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield Served(tmp_path, base)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    assert CHROMIUM.exists(), "make test installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def visit(browser: Browser, served: Served, request: pytest.FixtureRequest) -> Iterator[Visit]:
    """A fresh browser context (no cookies) on the served workspace."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.on("dialog", lambda dialog: dialog.accept())  # "Send … now?": yes
    try:
        yield Visit(context.new_page(), served.base, folder)
    finally:
        context.close()
