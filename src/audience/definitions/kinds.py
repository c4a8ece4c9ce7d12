"""The kinds of document `audience apply` accepts, and the model of each."""

from __future__ import annotations

from audience.definitions.campaign import Campaign
from audience.definitions.destination import Destination
from audience.definitions.segment import Segment

Definition = Segment | Destination | Campaign
"""Any definition a user can apply."""

KINDS: dict[str, type[Definition]] = {
    "segment": Segment,
    "destination": Destination,
    "campaign": Campaign,
}
