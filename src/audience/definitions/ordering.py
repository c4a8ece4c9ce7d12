"""The order in which definitions can be applied one after another: what is used before its users.

Destinations first, then segments (a segment after every segment its `in_segment` conditions
name), then campaigns and orchestrations. The versions of one segment stay together in the order
given (its active version, then a draft edit of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from audience.definitions.conditions import AllOf, AnyOf, Condition, InSegmentCondition, NotOf
from audience.definitions.kinds import Definition
from audience.definitions.segment import Segment

_RANK = {"destination": 0, "segment": 1, "campaign": 2, "journey": 3, "orchestration": 4}
"""Kinds in the order they can be used; a kind not listed (one to come) goes last."""


def applicable_order(definitions: Iterable[Definition]) -> list[Definition]:
    """The definitions, each after those it uses; otherwise in the order given."""
    ranked = sorted(definitions, key=lambda d: _RANK.get(d.kind, len(_RANK)))
    segments = iter(_segments_in_order([d for d in ranked if isinstance(d, Segment)]))
    # the segments' block keeps its place; inside it, each segment follows those it uses
    return [next(segments) if isinstance(d, Segment) else d for d in ranked]


def segment_references(condition: Condition | None) -> Iterator[str]:
    """The names of the segments an `in_segment` inside the condition tree names."""
    if isinstance(condition, InSegmentCondition):
        yield condition.in_segment
    elif isinstance(condition, AllOf | AnyOf):
        for child in condition.all if isinstance(condition, AllOf) else condition.any:
            yield from segment_references(child)
    elif isinstance(condition, NotOf):
        yield from segment_references(condition.not_)


def _segments_in_order(segments: Sequence[Segment]) -> list[Segment]:
    versions: dict[str, list[Segment]] = {}
    for segment in segments:
        versions.setdefault(segment.name, []).append(segment)
    placed: list[Segment] = []
    done: set[str] = set()

    def place(name: str, visiting: frozenset[str]) -> None:
        if name in done or name in visiting or name not in versions:
            return  # placed already, a loop (never stored: apply refuses it), or not exported
        for segment in versions[name]:
            for used in (*segment_references(segment.where), *segment_references(segment.exclude)):
                place(used, visiting | {name})
        done.add(name)
        placed.extend(versions[name])

    for name in versions:
        place(name, frozenset())
    return placed
