"""The kinds of document `audience apply` accepts, and the model of each."""

from __future__ import annotations

from audience.definitions.segment import Segment

Definition = Segment
"""Any definition a user can apply."""

KINDS: dict[str, type[Definition]] = {"segment": Segment}
