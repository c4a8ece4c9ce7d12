"""Past activations as the metadata store knows them, for `sent` conditions: what each campaign
or journey sends (treatments, sub-audiences, destinations) and its counted runs.

Looked up by name only when a condition names one, and once per name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from audience.activation.ledger import RECIPIENTS
from audience.compile.history import SentActivation
from audience.definitions.campaign import Campaign
from audience.definitions.journey import Journey
from audience.store.runs import RunLog

Definitions = Callable[[str], list[Campaign | Journey]]
"""The campaign and journey (either, both or neither) of a name."""


class StoredHistory:
    """An ActivationHistory over the metadata store (and definitions being applied, which
    `pending` holds by name and which replace stored ones)."""

    recipients_table = RECIPIENTS

    def __init__(
        self,
        runs: RunLog,
        stored: Definitions,
        pending: Mapping[str, list[Campaign | Journey]] | None = None,
    ) -> None:
        self._runs = runs
        self._stored = stored
        self._pending = pending or {}
        self._known: dict[str, SentActivation | None] = {}

    def activation(self, name: str) -> SentActivation | None:
        """The campaign and/or journey of that name, as it sends now, with its counted runs."""
        if name not in self._known:
            self._known[name] = self._look_up(name)
        return self._known[name]

    def _look_up(self, name: str) -> SentActivation | None:
        found = {type(d): d for d in self._stored(name)}
        found.update({type(d): d for d in self._pending.get(name, [])})
        if not found:
            return None
        treatments: set[str] = set()
        sub_audiences: set[str] = set()
        destinations: set[str] = set()
        kinds = set()
        for definition in found.values():
            if isinstance(definition, Campaign):
                kinds.add("campaign")
                destinations.update(definition.destinations)
                for sub in definition.assigned_sub_audiences:
                    sub_audiences.add(sub.name)
                    treatments.update(t.name for t in sub.treatments)
            else:
                kinds.add("journey")
                for node in definition.nodes:
                    if node.type == "activate":
                        sub_audiences.add(node.name)
                        destinations.update(node.destinations)
                    treatments.update(p.name for p in node.paths if not p.control)  # never sent
        return SentActivation(
            kinds=frozenset(kinds),
            runs=tuple(self._runs.counted_runs(name)),
            treatments=frozenset(treatments),
            sub_audiences=frozenset(sub_audiences),
            destinations=frozenset(destinations),
        )
