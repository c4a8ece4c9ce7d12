"""Treatment against control: differences and lifts with 95 % confidence intervals.

Every figure is computed from group totals (counts, sums, sums of squares), never from rows, so
the engine does the per-customer work and this module only the arithmetic. The methods:

- a share (conversion) difference: Newcombe's hybrid score interval built from two Wilson
  intervals (Newcombe 1998, "Interval estimation for the difference between independent
  proportions", method 10), which keeps its coverage for small and extreme shares where the
  textbook Wald interval does not;
- a mean (revenue per recipient) difference: Welch's interval, a t quantile with the
  Welch–Satterthwaite degrees of freedom, valid when the groups' variances differ;
- a relative lift of conversion (treatment ÷ control − 1): the delta method on the log of the
  ratio (Katz et al. 1978), mapped back, so the interval is never below −100 %.

Distributions come from SciPy, imported when a comparison is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
MIN_GROUP = 30
"""Fewer customers than this in a group and a comparison says nothing worth a number."""


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided confidence interval."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> int:
        """+1 when the whole interval is above zero, −1 when below, 0 when it straddles it."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


@dataclass(frozen=True)
class Share:
    """`hits` of `n` customers (purchasers of recipients)."""

    hits: int
    n: int

    @property
    def rate(self) -> float:
        """The share itself (0 for an empty group)."""
        return self.hits / self.n if self.n else 0.0


@dataclass(frozen=True)
class Spread:
    """A per-customer figure summarised: how many customers, its sum and its sum of squares."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float:
        """The mean over the customers (0 for an empty group)."""
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n − 1), never negative from rounding."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.n * self.mean**2) / (self.n - 1))


def _z() -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + CONFIDENCE / 2))


def wilson(share: Share) -> tuple[float, float]:
    """Wilson's score interval for one share."""
    if share.n == 0:
        return 0.0, 1.0
    z = _z()
    n, p = share.n, share.rate
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_difference(treated: Share, control: Share) -> Interval:
    """treated − control, with Newcombe's hybrid score interval."""
    p1, p2 = treated.rate, control.rate
    l1, u1 = wilson(treated)
    l2, u2 = wilson(control)
    below = math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    above = math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(p1 - p2, p1 - p2 - below, p1 - p2 + above)


def mean_difference(treated: Spread, control: Spread) -> Interval | None:
    """treated − control of a per-customer mean, with Welch's interval; None when neither
    group varies (nobody bought anything in either), so there is nothing to measure."""
    from scipy.stats import t

    a, b = treated.variance / treated.n, control.variance / control.n
    difference = treated.mean - control.mean
    if a + b == 0:
        return None
    freedom = (a + b) ** 2 / (a * a / (treated.n - 1) + b * b / (control.n - 1))
    half = float(t.ppf(0.5 + CONFIDENCE / 2, freedom)) * math.sqrt(a + b)
    return Interval(difference, difference - half, difference + half)


def relative_lift(treated: Share, control: Share) -> Interval | None:
    """treated ÷ control − 1 of two shares, by the delta method on the log of the ratio; None
    when either group has no hits (the ratio or its log is undefined)."""
    if treated.hits == 0 or control.hits == 0:
        return None
    ratio = treated.rate / control.rate
    spread = math.sqrt(1 / treated.hits - 1 / treated.n + 1 / control.hits - 1 / control.n) * _z()
    return Interval(
        ratio - 1, math.exp(math.log(ratio) - spread) - 1, math.exp(math.log(ratio) + spread) - 1
    )
