"""The intervals of campaign results against reference implementations (statsmodels, SciPy), on
random data: the same numbers from group totals as the references give from the rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audience.activation.results import GroupTotals, versus_control
from audience.activation.statistics import (
    Share,
    Spread,
    mean_difference,
    relative_lift,
    share_difference,
    wilson,
)


@st.composite
def shares(draw: st.DrawFn) -> Share:
    n = draw(st.integers(min_value=1, max_value=5000))
    return Share(draw(st.integers(min_value=0, max_value=n)), n)


@given(shares())
def test_wilson_is_statsmodels_wilson(share: Share) -> None:
    low, high = proportion_confint(share.hits, share.n, alpha=0.05, method="wilson")
    assert wilson(share) == pytest.approx((low, high), abs=1e-12)


@given(shares(), shares())
def test_the_conversion_difference_is_newcombes_hybrid_score(
    treated: Share, control: Share
) -> None:
    low, high = confint_proportions_2indep(
        treated.hits, treated.n, control.hits, control.n, method="newcomb", compare="diff"
    )
    found = share_difference(treated, control)
    assert found.estimate == pytest.approx(treated.rate - control.rate, abs=1e-12)
    assert (found.low, found.high) == pytest.approx((low, high), abs=1e-9)


@given(shares(), shares())
def test_the_lift_is_the_log_ratio_interval(treated: Share, control: Share) -> None:
    found = relative_lift(treated, control)
    if treated.hits == 0 or control.hits == 0:
        assert found is None
        return
    low, high = confint_proportions_2indep(
        treated.hits, treated.n, control.hits, control.n, method="log", compare="ratio"
    )
    assert found is not None
    assert found.estimate == pytest.approx(treated.rate / control.rate - 1, rel=1e-9)
    assert (found.low, found.high) == pytest.approx((low - 1, high - 1), rel=1e-7, abs=1e-9)


@settings(max_examples=60)
@given(
    st.integers(min_value=2, max_value=400),
    st.integers(min_value=2, max_value=400),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_revenue_difference_is_welchs_interval(
    n_treated: int, n_control: int, buy_treated: float, buy_control: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    treated = np.round(rng.exponential(60, n_treated) * (rng.random(n_treated) < buy_treated), 2)
    control = np.round(rng.exponential(50, n_control) * (rng.random(n_control) < buy_control), 2)
    found = mean_difference(
        Spread(n_treated, float(treated.sum()), float((treated**2).sum())),
        Spread(n_control, float(control.sum()), float((control**2).sum())),
    )
    if treated.var() == 0 and control.var() == 0:
        assert found is None
        return
    reference = stats.ttest_ind(treated, control, equal_var=False).confidence_interval()
    assert found is not None
    assert found.estimate == pytest.approx(treated.mean() - control.mean(), abs=1e-9)
    assert (found.low, found.high) == pytest.approx(
        (reference.low, reference.high), rel=1e-6, abs=1e-6
    )


def totals(recipients: int, purchasers: int, revenue: list[float]) -> GroupTotals:
    return GroupTotals(
        recipients=recipients,
        purchasers=purchasers,
        orders=purchasers,
        revenue=sum(revenue),
        revenue_squares=sum(r * r for r in revenue),
    )


def test_the_verdict_follows_the_conversion_interval() -> None:
    better = versus_control(totals(1000, 150, [40.0] * 150), totals(1000, 80, [40.0] * 80))
    assert better.verdict == "better than control"
    assert better.incremental_conversion is not None
    assert better.incremental_conversion.low > 0
    assert better.incremental_revenue == pytest.approx((6.0 - 3.2) * 1000)
    worse = versus_control(totals(1000, 80, [40.0] * 80), totals(1000, 150, [40.0] * 150))
    assert worse.verdict == "worse than control"
    same = versus_control(totals(500, 50, [40.0] * 50), totals(500, 52, [40.0] * 52))
    assert same.verdict == "no detectable difference"
    assert same.lift is not None and same.lift.low < 0 < same.lift.high


def test_small_or_missing_controls_give_no_numbers() -> None:
    none = versus_control(totals(1000, 100, [1.0] * 100), None)
    assert none.verdict == "no control group" and none.incremental_conversion is None
    small = versus_control(totals(1000, 100, [1.0] * 100), totals(29, 5, [1.0] * 5))
    assert small.verdict == "too few customers to tell"
    assert small.incremental_conversion is None and small.lift is None
    assert "the control has 29" in (small.reason or "")
    nobody = versus_control(totals(100, 10, [5.0] * 10), totals(100, 0, []))
    assert nobody.lift is None and "control made no purchases" in (nobody.reason or "")
    assert nobody.incremental_conversion is not None
    assert math.isfinite(nobody.incremental_conversion.high)
