"""The kinds of document `audience apply` accepts, and the model of each."""

from __future__ import annotations

from audience.definitions.campaign import Campaign
from audience.definitions.destination import Destination
from audience.definitions.journey import Journey
from audience.definitions.orchestration import Orchestration
from audience.definitions.segment import Segment

Definition = Segment | Destination | Campaign | Journey | Orchestration
"""Any definition a user can apply."""

Activation = Campaign | Journey | Orchestration
"""A definition that runs: sends to destinations, on a schedule or by hand."""

KINDS: dict[str, type[Definition]] = {
    "segment": Segment,
    "destination": Destination,
    "campaign": Campaign,
    "journey": Journey,
    "orchestration": Orchestration,
}
