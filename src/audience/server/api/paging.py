"""Lists come a page at a time: `?limit=&offset=`, answered with the items and the total."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Query

from audience.shapes import Page

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=1000, description="How many items at most.")]
Offset = Annotated[int, Query(ge=0, description="How many items to skip.")]


def page(items: list[T], limit: int, offset: int) -> Page[T]:
    """One page of `items`."""
    return Page[T](
        items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset
    )
