"""The files the pages load: front-end packages from the npm registry (installed by `make` into
`frontend/node_modules`, pinned by its lock file) and the UI's own stylesheet and script.

Only the files named here are served: a request cannot reach anything else on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

OWN = Path(__file__).parent / "static"

PACKAGED = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "elk.bundled.js": "elkjs/lib/elk.bundled.js",
    "codejar.js": "codejar/dist/codejar.js",
    "prism.js": "prismjs/prism.js",
    "prism-sql.js": "prismjs/components/prism-sql.min.js",
    "prism.css": "prismjs/themes/prism.min.css",
}
"""Served name → path under node_modules."""

OWN_FILES = ("app.css", "app.js", "journey.js", "sql-editor.js")

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


def node_modules() -> Path:
    """Where the front-end packages are: `AUDIENCE_FRONTEND_MODULES`, or `frontend/node_modules`
    beside the source tree (where `make` installs them)."""
    configured = os.environ.get("AUDIENCE_FRONTEND_MODULES")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / "frontend" / "node_modules"


def asset_path(name: str) -> Path | None:
    """The file served as `name`, if it is one of the UI's and is there."""
    if name in OWN_FILES:
        path = OWN / name
    elif name in PACKAGED:
        path = node_modules() / PACKAGED[name]
    else:
        return None
    return path if path.is_file() else None


def missing_packages() -> list[str]:
    """Front-end packages that are not installed (the pages say so, and work without them)."""
    return [name for name in PACKAGED if asset_path(name) is None]
