"""The `kind: journey` document (SPEC §5): customers move along a graph of nodes over days.

```yaml
kind: journey
name: Welcome series
include: [New customers]                 # entry segments, united
exclude: [Staff]                         # optional: never admitted
exit: [Purchased since entry]            # optional: leave at the next run
goals: [Second purchase]                 # optional: counted, not removed
allow_reentry: false                     # may they enter again, once out, on qualifying anew?
schedule: {every: {value: 1, unit: days}}
nodes:                                   # entrants start at the first node
  - {name: Welcome email, type: activate, destinations: [marketing-s3]}
  - {name: Wait 3 days, type: delay, value: 3, unit: days}
  - name: Split
    type: percent_split
    paths:
      - {name: Offer, percent: 90, next: Offer email}
      - {name: Control, percent: 10, control: true}       # no next: the path ends here
  - {name: Offer email, type: activate, destinations: [marketing-s3]}
```

A node goes on to the node listed after it, unless that one begins a path of a split (or a
branch of a delay), or `next:` names another node, or `next: end` ends the path there. A
customer who reaches the end of a path finishes the journey. Node types: `activate`
(destinations and, per destination, `attributes`, else the destination's defaults), `delay`
(`value` and `unit` hours|days|weeks|months, at most ten years; or `until: SEGMENT` with
`at_most: {value, unit}` and the branches `matched:` and `timed_out:`), `percent_split`
(`paths` with `percent`, one may be `control: true`; they total 100), `conditional_split`
(`paths` with `segment:` or `where:`, the last one with neither: everyone else) and `merge`
(paths rejoin; it goes on like any node).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audience.definitions.base import DefinitionModel
from audience.definitions.campaign import Percent, SentAttribute
from audience.definitions.conditions import Condition, check_depth
from audience.definitions.names import DestinationNames, Name, Reference
from audience.definitions.schedule import MAX_INTERVAL_HOURS, Schedule
from audience.errors import DefinitionError, InvalidValue, PercentagesError, ScheduleError

END = "end"
"""`next: end` ends a path; no node may be called this."""
RELEASE = "release"
"""In `removed_nodes`: the customers at that node leave the journey."""
NodeType = Literal["activate", "delay", "percent_split", "conditional_split", "merge"]
DelayUnit = Literal["hours", "days", "weeks", "months"]
_FIELDS_BY_TYPE: dict[str, set[str]] = {
    "activate": {"destinations", "attributes", "next"},
    "delay": {"value", "unit", "until", "at_most", "matched", "timed_out", "next"},
    "percent_split": {"paths", "seed"},
    "conditional_split": {"paths"},
    "merge": {"next"},
}


MAX_WAIT: dict[str, int] = {
    "hours": MAX_INTERVAL_HOURS,
    "days": MAX_INTERVAL_HOURS // 24,
    "weeks": MAX_INTERVAL_HOURS // (24 * 7),
    "months": 10 * 12,
}
"""The longest delay in each unit: ten years, as for a schedule's `every:`. Longer would wait
past any journey's life, and past the calendar (year 9999) for large enough values."""


def check_wait(value: int, unit: str) -> None:
    """Raise InvalidValue (field `value`) for a delay longer than ten years in its unit."""
    if value > MAX_WAIT[unit]:
        raise InvalidValue(
            f"a delay of {value:,} {unit} is more than ten years; give at most "
            f"{MAX_WAIT[unit]:,} {unit}",
            field="value",
        )


class Wait(DefinitionModel):
    """A length of time: `{value: 3, unit: days}`, at most ten years (MAX_WAIT)."""

    value: int = Field(strict=True, gt=0)
    unit: DelayUnit

    @model_validator(mode="after")
    def _at_most_ten_years(self) -> Wait:
        check_wait(self.value, self.unit)
        return self

    def before(self, moment: datetime) -> datetime:
        """The moment this long before `moment`: who entered then or earlier has waited
        enough. Months are calendar months (a month before March 31 is February 28 or 29)."""
        if self.unit != "months":
            return moment - timedelta(**{self.unit: self.value})
        years, month = divmod(moment.month - 1 - self.value, 12)
        year = moment.year + years
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)

    def describe(self) -> str:
        """`3 days`, `1 week`."""
        unit = self.unit[:-1] if self.value == 1 else self.unit
        return f"{self.value} {unit}"


class SplitPath(DefinitionModel):
    """One way out of a split: a share of the customers (percent split) or those matching a
    segment or condition (conditional split); `next` is where they go (None: the path ends)."""

    name: Name
    percent: Percent | None = None
    control: bool = False
    segment: Reference | None = None
    where: Condition | None = None
    next: Reference | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_too_deep(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            check_depth(raw.get("where"), "where")
        return raw

    @property
    def has_criteria(self) -> bool:
        """False for a conditional split's "everyone else"."""
        return self.segment is not None or self.where is not None


class Node(DefinitionModel):
    """One step of a journey; which fields it takes depends on its `type`."""

    name: Name
    type: NodeType
    next: Reference | None = None
    destinations: DestinationNames = Field(default_factory=list)
    attributes: dict[str, list[SentAttribute]] = Field(default_factory=dict)
    value: int | None = Field(default=None, strict=True, gt=0)
    unit: DelayUnit | None = None
    until: Reference | None = Field(default=None, min_length=1)
    at_most: Wait | None = None
    matched: Reference | None = None
    timed_out: Reference | None = None
    paths: list[SplitPath] = Field(default_factory=list)
    seed: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fields_of_its_type(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("type") in _FIELDS_BY_TYPE:
            allowed = _FIELDS_BY_TYPE[raw["type"]] | {"name", "type"}
            stray = sorted(set(raw) - allowed)
            if stray:
                article = "an" if raw["type"][0] in "aeiou" else "a"
                raise ValueError(
                    f"{article} {raw['type']} node takes no {', '.join(stray)} "
                    f"(it takes {', '.join(sorted(allowed - {'name', 'type'}))})"
                )
        return raw

    @field_validator("name")
    @classmethod
    def _not_end(cls, value: str) -> str:
        if value == END:
            raise ValueError(f"{END!r} means the end of a path; give the node another name")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Node:
        if self.type == "activate" and not self.destinations:
            raise ValueError("an activate node needs destinations")
        if self.type == "delay":
            self._check_delay()
        if self.type in {"percent_split", "conditional_split"}:
            self._check_paths()
        return self

    def _check_delay(self) -> None:
        if self.until is None:
            if self.value is None or self.unit is None:
                raise ValueError(
                    "a delay waits `value` and `unit` (e.g. value: 3, unit: days), or `until` "
                    "a segment with `at_most`"
                )
            for branch in ("matched", "timed_out", "at_most"):
                if getattr(self, branch) is not None:
                    raise ValueError(f"{branch} goes with `until: SEGMENT`")
            check_wait(self.value, self.unit)
        else:
            if self.value is not None or self.unit is not None:
                raise ValueError("a delay waits either `value` and `unit`, or `until` a segment")
            if self.at_most is None:
                raise ValueError("a delay until a segment needs at_most: {value: N, unit: days}")
            if self.next is not None:
                raise ValueError("a delay until a segment goes on by `matched` and `timed_out`")

    def _check_paths(self) -> None:
        if not self.paths:
            raise ValueError(f"a {self.type} needs paths")
        names = [p.name for p in self.paths]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"path names must be unique; repeated: {', '.join(repeated)}")
        if self.type == "percent_split":
            for path in self.paths:
                if path.percent is None or path.has_criteria:
                    raise ValueError(f"path {path.name!r}: a percent split's path takes a percent")
            if sum(p.control for p in self.paths) > 1:
                raise ValueError("one path at most is the control")
            for path in self.paths:
                if path.control and path.next not in (None, END):
                    raise ValueError(
                        f"path {path.name!r}: the control path is held back, so it ends at the "
                        f"split; drop its next ({path.next!r})"
                    )
            total = sum((Decimal(str(p.percent)) for p in self.paths), Decimal(0))
            if total != 100:
                shares = " + ".join(f"{p.percent:g}" for p in self.paths)
                raise PercentagesError(
                    f"node {self.name!r}: paths total {total.normalize():f}, not 100 ({shares})",
                    field="paths",
                )
        else:
            for path in self.paths:
                if path.percent is not None or path.control:
                    raise ValueError(
                        f"path {path.name!r}: a conditional split's path takes a segment or "
                        "where, not a percent"
                    )
                if path.segment is not None and path.where is not None:
                    raise ValueError(f"path {path.name!r}: give segment or where, not both")
            if self.paths[-1].has_criteria:
                raise ValueError(
                    "a conditional split ends with a path for everyone else (no segment, no where)"
                )
            for path in self.paths[:-1]:
                if not path.has_criteria:
                    raise ValueError(
                        f"path {path.name!r} has no segment or where: only the last path is "
                        "for everyone else"
                    )

    @property
    def wait(self) -> Wait | None:
        """How long a timed delay waits."""
        if self.type == "delay" and self.value is not None and self.unit is not None:
            return Wait(value=self.value, unit=self.unit)
        return None


class Edge(BaseModel):
    """A way out of a node: its label (a path's or branch's name, None for the only way) and
    where it leads (None: the end of the path)."""

    model_config = ConfigDict(frozen=True)

    label: str | None
    target: str | None
    control: bool = False


class Journey(DefinitionModel):
    """Entry and exit segments, and the graph customers move along."""

    kind: Literal["journey"] = "journey"
    name: Name
    description: str = ""
    include: list[Reference] = Field(min_length=1)
    exclude: list[Reference] = Field(default_factory=list)
    exit: list[Reference] = Field(default_factory=list)
    goals: list[Reference] = Field(default_factory=list)
    allow_reentry: bool = False
    schedule: Schedule = Schedule.model_validate({"every": {"value": 1, "unit": "days"}})
    nodes: list[Node] = Field(min_length=1)
    removed_nodes: dict[Reference, Reference] = Field(default_factory=dict)
    """When a new version drops nodes customers are at: where they go (a node of this version)
    or `release` (they leave the journey)."""

    @field_validator("schedule")
    @classmethod
    def _journey_schedule(cls, value: Schedule) -> Schedule:
        if value.after is not None:
            raise ScheduleError(
                "after another activation is for orchestrations; a journey runs on its own "
                "schedule",
                field="after",
            )
        return value

    @model_validator(mode="after")
    def _graph(self) -> Journey:
        names = [n.name for n in self.nodes]
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                raise DefinitionError(
                    f"node names must be unique; {name!r} is used twice", field=f"nodes.{index}"
                )
            seen.add(name)
        for index, node in enumerate(self.nodes):
            for field, target in self._named_targets(node):
                if target != END and target not in seen:
                    raise DefinitionError(
                        f"node {node.name!r}: {field} names {target!r}, which is not a node of "
                        f"this journey (nodes: {', '.join(names)})",
                        field=f"nodes.{index}.{field}",
                    )
        self._check_reachable_and_acyclic()
        for old, new in self.removed_nodes.items():
            if old in seen:
                raise DefinitionError(
                    f"removed_nodes: {old!r} is still a node of this version", field="removed_nodes"
                )
            if new != RELEASE and new not in seen:
                raise DefinitionError(
                    f"removed_nodes: customers at {old!r} would go to {new!r}, which is not a "
                    f"node of this version; name one, or `{RELEASE}`",
                    field="removed_nodes",
                )
        return self

    @staticmethod
    def _named_targets(node: Node) -> list[tuple[str, str]]:
        found = [(field, getattr(node, field)) for field in ("next", "matched", "timed_out")]
        found += [(f"paths.{i}.next", p.next) for i, p in enumerate(node.paths)]
        return [(field, target) for field, target in found if target is not None]

    def _check_reachable_and_acyclic(self) -> None:
        index = {n.name: i for i, n in enumerate(self.nodes)}
        state: dict[str, str] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "open":
                loop = " → ".join([*trail[trail.index(name) :], name])
                raise DefinitionError(
                    f"the nodes loop ({loop}): a journey moves one way", field="nodes"
                )
            state[name] = "open"
            for edge in self.edges(name):
                if edge.target is not None:
                    visit(edge.target, [*trail, name])
            state[name] = "done"

        visit(self.nodes[0].name, [])
        for node in self.nodes:
            if node.name not in state:
                raise DefinitionError(
                    f"node {node.name!r} cannot be reached from the first node "
                    f"({self.nodes[0].name!r})",
                    field=f"nodes.{index[node.name]}",
                )

    def _path_starts(self) -> set[str]:
        """Nodes that begin a split's path or a delay's branch: no node flows into them by
        being listed just before."""
        starts: set[str] = set()
        for node in self.nodes:
            starts.update(p.next for p in node.paths if p.next is not None)
            starts.update(t for t in (node.matched, node.timed_out) if t is not None)
        return starts

    def _following(self, name: str) -> str | None:
        """Where a node goes when it names nowhere: the next node listed, unless that one
        begins a path; else the end."""
        position = [n.name for n in self.nodes].index(name)
        if position + 1 >= len(self.nodes):
            return None
        after = self.nodes[position + 1].name
        return None if after in self._path_starts() else after

    def node(self, name: str) -> Node:
        """The node called `name`."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def edges(self, name: str) -> list[Edge]:
        """The ways out of node `name`, in order."""
        node = self.node(name)

        def target(named: str | None) -> str | None:
            if named is None:
                return self._following(name)
            return None if named == END else named

        if node.type in {"percent_split", "conditional_split"}:
            return [
                Edge(
                    label=p.name,
                    target=None if p.next in {None, END} else p.next,
                    control=p.control,
                )
                for p in node.paths
            ]
        if node.type == "delay" and node.until is not None:
            return [
                Edge(label="matched", target=target(node.matched)),
                Edge(label="timed_out", target=target(node.timed_out)),
            ]
        return [Edge(label=None, target=target(node.next))]

    def in_order(self) -> list[Node]:
        """The nodes in an order where every node comes after all that lead to it."""
        placed: list[Node] = []
        incoming = {n.name: 0 for n in self.nodes}
        for node in self.nodes:
            for edge in self.edges(node.name):
                if edge.target is not None:
                    incoming[edge.target] += 1
        ready = [n for n in self.nodes if incoming[n.name] == 0]
        while ready:
            node = ready.pop(0)
            placed.append(node)
            for edge in self.edges(node.name):
                if edge.target is not None:
                    incoming[edge.target] -= 1
                    if incoming[edge.target] == 0:
                        ready.append(self.node(edge.target))
        return placed

    @property
    def destinations(self) -> list[str]:
        """Every destination an activate node sends to, in first-use order."""
        found: dict[str, None] = {}
        for node in self.nodes:
            found.update(dict.fromkeys(node.destinations))
        return list(found)

    @property
    def segments(self) -> list[str]:
        """Every segment the journey uses by name."""
        found: dict[str, None] = dict.fromkeys(
            [*self.include, *self.exclude, *self.exit, *self.goals]
        )
        for node in self.nodes:
            if node.until is not None:
                found[node.until] = None
            found.update(dict.fromkeys(p.segment for p in node.paths if p.segment is not None))
        return list(found)

    @property
    def launch_date(self) -> None:
        """Journeys have no launch date (the Activations page shows none)."""
        return None

    def seed_of(self, node: Node) -> str:
        """What a percent split's hash is salted with: its seed, else journey and node name."""
        return node.seed if node.seed is not None else f"{self.name}:{node.name}"
