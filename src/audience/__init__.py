"""Audience: turn a customer 360 into audiences and deliver them where marketing happens.

The Python API is the `Workspace` façade the CLI and the REST API call::

    from audience import Workspace

    with Workspace.open(Path("shop")) as ws:
        print(ws.segment_insights("High value").model_dump(mode="json"))

It is loaded when first asked for, so `import audience` (and `audience --help`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audience.errors import AudienceError

if TYPE_CHECKING:
    from audience.workspace import Workspace

__all__ = ["AudienceError", "Workspace"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from audience.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'audience' has no attribute {name!r}")
