"""What the browser tests share: the workspace they serve, the browser's flags, and `Visit`, a
tab that screenshots every page it reaches (under `test-artifacts/ui/`, not committed) and has
axe-core (from the npm registry) check it for WCAG 2 A/AA violations."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page
from sqlglot import parse_one

from audience.workspace import Workspace

DOCUMENTS: list[dict[str, Any]] = [
    {
        "kind": "segment",
        "name": "Gold",
        "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
    },
    {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": "out"},
        "file": {"format": "csv", "compression": "none"},
        "default_attributes": ["amperity_id", "email"],
    },
    {
        "kind": "campaign",
        "name": "Gold offer",
        "audience": {"include": ["Gold"]},
        "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
        "control": 10,
        "schedule": {"once": "asap"},
    },
]
"""What the served workspace starts with: a segment, a folder and a campaign sending to it."""
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Served:
    """A workspace served over HTTP: its folder and its address."""

    directory: Path
    base: str


@dataclass
class Visit:
    """A browser tab of one test: every page it reaches is screenshot and checked by axe."""

    page: Page
    base: str
    folder: Path
    checked: list[str] = field(default_factory=list)

    def go(self, path: str) -> Page:
        """Open a page of the UI."""
        self.page.goto(self.base + path)
        return self.seen()

    def seen(self) -> Page:
        """Record the page as it is now: a screenshot, and axe's verdict (no serious or
        critical WCAG 2 A/AA violation)."""
        self.page.wait_for_load_state("load")
        number = len(self.checked) + 1
        name = re.sub(r"[^a-z0-9]+", "-", self.page.url.split("/ui/", 1)[-1].lower()).strip("-")
        self.page.screenshot(
            path=self.folder / f"{number:02d}-{name or 'home'}.png", full_page=True
        )
        self.page.add_script_tag(path=str(AXE))
        found: list[dict[str, Any]] = self.page.evaluate(
            "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        )
        bad = [v for v in found if v.get("impact") in ("serious", "critical")]
        assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in bad]
        self.checked.append(self.page.url)
        return self.page

    def settled(self) -> Page:
        """The page once htmx has no request under way (a drop-down's change re-renders the
        condition builder: a person waits for it to redraw, and so does the test)."""
        self.page.wait_for_function(
            "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
        )
        return self.page

    def sign_in(self, name: str) -> Page:
        """Sign in through the form, as a person would."""
        self.go("/ui/login")
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/ui/.*"))
        return self.seen()


def customers_where(served: Served, where: str) -> int:
    """How many profiles of the served workspace match `where`: the oracle pages are checked
    against (the server lets the database go between requests)."""
    with Workspace.open(served.directory) as ws:
        (row,) = ws.engine.rows(parse_one(f"select count(*) as n from customer_360 where {where}"))
    return int(row["n"])
