"""Lists come a page at a time: `?limit=&offset=`, answered with the items and the total."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=1000, description="How many items at most.")]
Offset = Annotated[int, Query(ge=0, description="How many items to skip.")]


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of `items`: `{"items", "total", "limit", "offset"}`."""
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }
