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
SAMPLE_PURCHASE_RATES = {"Offer 10": 0.05, "Offer 20": 0.065, "Offer 30": 0.09}
"""The chance that a recipient of each treatment buys in the weeks after the demo campaign
(control: `demo.purchases.BASE_RATE`), for its simulated results."""
SAMPLE_PURCHASE_DAYS = 28
"""Simulated orders fall on one of the days after the demo campaign's send, up to this many."""
SAMPLE_RESULTS_DAYS = 30
"""The demo prints its campaign's results as of this many days after the send."""
