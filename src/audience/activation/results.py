"""Campaign results (SPEC §8): per sub-audience and group, what the customers bought after they
were sent (or held back), and each treatment against its sub-audience's control.

One query in the engine gives the groups' totals (`compile/results.py`); this module adds the
rates and the comparisons (`statistics.py`) and shapes the answer. Only successful, real runs
count: test sends write no ledger, and a failed run's rows are never trusted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from audience.activation import ledger, statistics
from audience.activation.statistics import MIN_GROUP, Interval, Share, Spread
from audience.compile.conditions import CompileContext
from audience.compile.history import CountedRun
from audience.compile.results import Measurement, results_query
from audience.definitions.campaign import CONTROL_GROUP, Campaign
from audience.engines.base import Engine
from audience.errors import InvalidValue

if TYPE_CHECKING:
    from audience.workspace import Workspace

DEFAULT_WINDOW = timedelta(days=30)
_WINDOW = re.compile(r"^\s*(\d+)\s*([hdw]?)\s*$")
_UNIT_HOURS = {"h": 1, "d": 24, "": 24, "w": 24 * 7}

Verdict = Literal[
    "better than control",
    "no detectable difference",
    "worse than control",
    "too few customers to tell",
    "no control group",
]


def parse_window(text: str, *, field: str = "window") -> timedelta:
    """A measurement window: `30d`, `4w`, `72h` or a number of days; at least an hour."""
    found = _WINDOW.match(text)
    if found is None or int(found.group(1)) == 0:
        raise InvalidValue(
            f"a window is a whole number of hours, days or weeks, like 30d, 4w or 72h; "
            f"got {text!r}",
            field=field,
        )
    hours = int(found.group(1)) * _UNIT_HOURS[found.group(2)]
    if hours > 24 * 366 * 10:
        raise InvalidValue(f"a window is at most ten years, got {text!r}", field=field)
    return timedelta(hours=hours)


class Estimate(BaseModel):
    """A figure and its 95 % confidence interval."""

    estimate: float
    low: float
    high: float

    @classmethod
    def of(cls, interval: Interval | None) -> Estimate | None:
        """The model of an interval (None stays None)."""
        if interval is None:
            return None
        return cls(estimate=interval.estimate, low=interval.low, high=interval.high)


class VersusControl(BaseModel):
    """A treatment against its sub-audience's control. Figures are None when they cannot be
    told (`reason` says why): no control, too few customers, nothing bought."""

    verdict: Verdict
    reason: str | None = None
    incremental_conversion: Estimate | None = None
    """Treatment's conversion rate minus control's (Newcombe hybrid score interval)."""
    incremental_revenue_per_recipient: Estimate | None = None
    """Treatment's revenue per recipient minus control's (Welch interval)."""
    incremental_revenue: float | None = None
    """The revenue per recipient difference times the treatment's recipients."""
    lift: Estimate | None = None
    """Treatment's conversion rate ÷ control's − 1 (delta method on the log ratio)."""


class GroupResult(BaseModel):
    """One treatment or control group of one sub-audience, over the measurement window."""

    sub_audience: str
    group: str
    is_control: bool
    recipients: int
    purchasers: int
    orders: int
    revenue: float
    conversion_rate: float | None
    revenue_per_recipient: float | None
    average_order_value: float | None
    versus_control: VersusControl | None = None
    """For a treatment: how it compares with the control (None for the control itself)."""


class CampaignResults(BaseModel):
    """`audience campaign results`: the public JSON shape."""

    campaign: str
    launch_date: date | None
    measured_from: datetime | None
    """The start of measurement: the launch date, or the first counted run when there is none."""
    window_days: float
    as_of: datetime
    runs: int
    """Successful real runs counted."""
    confidence: float = statistics.CONFIDENCE
    groups: list[GroupResult]

    def csv_rows(self) -> list[dict[str, Any]]:
        """One flat row per group, for the CSV download."""
        rows = []
        for g in self.groups:
            versus = g.versus_control
            row: dict[str, Any] = {
                "campaign": self.campaign,
                "sub_audience": g.sub_audience,
                "group": g.group,
                "is_control": g.is_control,
                "recipients": g.recipients,
                "purchasers": g.purchasers,
                "orders": g.orders,
                "revenue": g.revenue,
                "conversion_rate": g.conversion_rate,
                "revenue_per_recipient": g.revenue_per_recipient,
                "average_order_value": g.average_order_value,
                "verdict": versus.verdict if versus else None,
                "reason": versus.reason if versus else None,
                "incremental_revenue": versus.incremental_revenue if versus else None,
            }
            for name in ("incremental_conversion", "incremental_revenue_per_recipient", "lift"):
                figure = getattr(versus, name) if versus else None
                for part in ("estimate", "low", "high"):
                    row[f"{name}_{part}"] = getattr(figure, part) if figure else None
            rows.append(row)
        return rows


class GroupTotals(BaseModel):
    """What one group's customers did over the window, summed by the engine."""

    recipients: int = 0
    purchasers: int = 0
    orders: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0

    @property
    def share(self) -> Share:
        """Purchasers of recipients."""
        return Share(self.purchasers, self.recipients)

    @property
    def spread(self) -> Spread:
        """Revenue per recipient, summarised."""
        return Spread(self.recipients, self.revenue, self.revenue_squares)


def campaign_results(
    campaign: Campaign,
    engine: Engine,
    ctx: CompileContext,
    runs: list[CountedRun],
    *,
    window: timedelta = DEFAULT_WINDOW,
    as_of: datetime,
) -> CampaignResults:
    """Results of the campaign's counted runs (its successful real runs) due before `as_of`,
    each customer measured over `window` from their first run's due time (or the launch date,
    when later)."""
    launch = datetime.combine(campaign.launch_date, time(), UTC) if campaign.launch_date else None
    counted = [r for r in runs if r.due < as_of]
    ledger.ensure_tables(engine)
    measurement = Measurement(
        kind="campaign",
        name=campaign.name,
        runs=counted,
        launch=launch,
        window=window,
        as_of=as_of,
        recipients_table=ledger.RECIPIENTS,
    )
    found: dict[tuple[str, str, bool], GroupTotals] = {}
    first_run: datetime | None = None
    for row in engine.rows(results_query(measurement, ctx)) if counted else []:
        key = (str(row["sub_audience"]), str(row["treatment"]), bool(row["is_control"]))
        found[key] = GroupTotals(
            recipients=int(row["recipients"]),
            purchasers=int(row["purchasers"] or 0),
            orders=int(row["orders"] or 0),
            revenue=_number(row["revenue"]),
            revenue_squares=_number(row["revenue_squares"]),
        )
        started = row.get("first_start")
        if isinstance(started, datetime):
            first_run = min(first_run or started, started)
    groups: list[GroupResult] = []
    for sub_audience, group, is_control in _groups_in_order(campaign, found):
        totals = found.get((sub_audience, group, is_control), GroupTotals())
        control = None if is_control else _control_of(campaign, sub_audience, found)
        groups.append(_group(sub_audience, group, is_control, totals, control))
    return CampaignResults(
        campaign=campaign.name,
        launch_date=campaign.launch_date,
        measured_from=launch or _aware(first_run),
        window_days=window / timedelta(days=1),
        as_of=as_of,
        runs=len(counted),
        groups=groups,
    )


def _groups_in_order(
    campaign: Campaign, found: dict[tuple[str, str, bool], GroupTotals]
) -> list[tuple[str, str, bool]]:
    """The campaign's groups as it defines them now (treatments, then control), then any the
    ledger holds that it no longer defines (renamed or removed since they were sent)."""
    keys: list[tuple[str, str, bool]] = []
    for sub in campaign.assigned_sub_audiences:
        keys += [(sub.name, t.name, False) for t in sub.treatments]
        if sub.control:
            keys.append((sub.name, CONTROL_GROUP, True))
    keys += sorted(set(found) - set(keys))
    return keys


def _control_of(
    campaign: Campaign, sub_audience: str, found: dict[tuple[str, str, bool], GroupTotals]
) -> GroupTotals | None:
    """The control group of a sub-audience, when it has one (defined now or in the ledger)."""
    for (sub, _, is_control), totals in found.items():
        if sub == sub_audience and is_control:
            return totals
    defined = any(s.name == sub_audience and s.control for s in campaign.assigned_sub_audiences)
    return GroupTotals() if defined else None


def _group(
    sub_audience: str,
    group: str,
    is_control: bool,
    totals: GroupTotals,
    control: GroupTotals | None,
) -> GroupResult:
    n = totals.recipients
    return GroupResult(
        sub_audience=sub_audience,
        group=group,
        is_control=is_control,
        recipients=n,
        purchasers=totals.purchasers,
        orders=totals.orders,
        revenue=round(totals.revenue, 2),
        conversion_rate=totals.purchasers / n if n else None,
        revenue_per_recipient=totals.revenue / n if n else None,
        average_order_value=totals.revenue / totals.orders if totals.orders else None,
        versus_control=None if is_control else versus_control(totals, control),
    )


def versus_control(treated: GroupTotals, control: GroupTotals | None) -> VersusControl:
    """A treatment's figures against its control, or why there are none."""
    versus = conversion_versus_control(
        treated.share, None if control is None else control.share, what="purchases"
    )
    if control is None or versus.incremental_conversion is None:
        return versus
    revenue = statistics.mean_difference(treated.spread, control.spread)
    reasons = [versus.reason] if versus.reason else []
    if revenue is None:
        reasons.insert(0, "neither group spent anything, so revenue has no interval")
    difference = treated.spread.mean - control.spread.mean
    return versus.model_copy(
        update={
            "reason": "; ".join(reasons) or None,
            "incremental_revenue_per_recipient": Estimate.of(revenue),
            "incremental_revenue": round(difference * treated.recipients, 2),
        }
    )


def conversion_versus_control(
    treated: Share,
    control: Share | None,
    *,
    what: str = "purchases",
    without: str = "this sub-audience has no control",
) -> VersusControl:
    """A treated group's conversion against its control's (`what` the hits are and `without`
    why there may be no control, for the reasons): the difference, the lift, the verdict; or
    why there are none."""
    if control is None:
        return VersusControl(verdict="no control group", reason=without)
    small = [
        f"{label} has {share.n}"
        for label, share in (("the treatment", treated), ("the control", control))
        if share.n < MIN_GROUP
    ]
    if small:
        return VersusControl(
            verdict="too few customers to tell",
            reason=f"{' and '.join(small)} customers; each needs at least {MIN_GROUP}",
        )
    conversion = statistics.share_difference(treated, control)
    lift = statistics.relative_lift(treated, control)
    reason = None
    if lift is None:
        reason = (
            f"the control made no {what}, so there is no lift over it"
            if control.hits == 0
            else f"the treatment made no {what}, so there is no lift"
        )
    side = conversion.excludes_zero()
    verdict: Verdict = (
        "better than control"
        if side > 0
        else "worse than control"
        if side < 0
        else "no detectable difference"
    )
    return VersusControl(
        verdict=verdict,
        reason=reason,
        incremental_conversion=Estimate.of(conversion),
        lift=Estimate.of(lift),
    )


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    return float(value) if isinstance(value, Decimal | int | float) else float(str(value))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Results:
    """Did it work? An activation's recipients against its control, over a window."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def campaign(
        self,
        name: str,
        *,
        window: timedelta = DEFAULT_WINDOW,
        as_of: datetime | None = None,
    ) -> CampaignResults:
        """A campaign's results as of `as_of` (default: now), counting its successful real
        runs before then."""
        ws = self._ws
        campaign, _ = ws.campaign(name)
        moment = as_of or ws.clock()
        return campaign_results(
            campaign,
            ws.engine,
            ws.compile_context(now=moment),
            ws.store.runs.counted_runs(name, "campaign"),
            window=window,
            as_of=moment,
        )
