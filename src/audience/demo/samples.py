"""The sample definitions `audience demo` applies (the YAML sits beside this module)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DEFINITIONS = Path(__file__).parent / "definitions.yaml"
SAMPLE_CAMPAIGN_DEFINITIONS = Path(__file__).parent / "campaign.yaml"
SAMPLE_CAMPAIGN = "Win back lapsed customers"
SAMPLE_JOURNEY_DEFINITIONS = Path(__file__).parent / "journey.yaml"
SAMPLE_JOURNEY = "Welcome series"
SAMPLE_JOURNEY_DAYS = 4
"""Days the demo ticks the journey over, one run a day from now."""
SAMPLE_SEGMENTS = (
    "High value, recently active",
    "Recent complainers",
    "Valuable or complaining",
    "Lapsed customers",
    "Reachable loyalists",
)
"""Segments whose insights the demo prints, in this order."""
