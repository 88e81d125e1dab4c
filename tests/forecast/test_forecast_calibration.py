"""The spread per horizon step: widening about the median, its CRPS, and the choice of factors."""

import numpy as np
import pytest

from rnnkit.forecast.calibration import (
    FACTORS,
    SCALES,
    crps_by_factor,
    fit_step_spread,
    recent_coverage_scale,
    tracked_scale,
    widen_paths,
)
from rnnkit.forecast.metrics import crps_samples


def test_widening_moves_each_steps_draws_about_their_median():
    rng = np.random.default_rng(0)
    paths = rng.normal(size=(3, 41, 4)) + np.arange(4)  # (origins, samples, steps)
    factors = np.array([1.0, 2.0, 0.5, 3.0])
    wide = widen_paths(paths, factors)
    median = np.median(paths, axis=1)
    np.testing.assert_allclose(np.median(wide, axis=1), median, rtol=0, atol=1e-12)
    np.testing.assert_allclose(wide - median[:, None], (paths - median[:, None]) * factors)
    np.testing.assert_allclose(widen_paths(paths[:, :, :2], factors), wide[:, :, :2])


def test_crps_by_factor_is_the_crps_of_the_widened_paths():
    rng = np.random.default_rng(1)
    paths = rng.standard_t(4, size=(5, 30, 3))
    truth = rng.normal(size=(5, 3)) * 2
    truth[2, 1] = np.nan  # a missing value: left out of its step's mean
    factors = np.array([0.7, 1.0, 2.5])
    got = crps_by_factor(paths, truth, factors)
    for k, c in enumerate(factors):
        wide = widen_paths(paths, np.full(3, c))
        each = np.stack([crps_samples(wide[n], truth[n]) for n in range(5)])
        np.testing.assert_allclose(got[k], np.nanmean(each, axis=0), rtol=1e-12)


def test_recovers_a_known_scale_per_step():
    # Paths drawn from N(0, 1) at every step while the truth has spread s[h]: the CRPS-best
    # widening of step h is s[h], whatever the scale's shape over the steps.
    rng = np.random.default_rng(2)
    horizon = 12
    scale = 0.8 * np.exp(0.12 * np.arange(horizon))  # 0.8 to 3.0
    paths = rng.normal(size=(600, 200, horizon))
    truth = rng.normal(size=(600, horizon)) * scale
    factors, raw = fit_step_spread(paths, truth)
    np.testing.assert_allclose(factors, scale, rtol=0.06)
    np.testing.assert_allclose(raw, scale, rtol=0.12)
    assert np.all(np.diff(factors) > 0)  # the smoothed factors follow the growth step by step


def test_a_one_step_horizon_and_the_bounds_of_the_factors():
    rng = np.random.default_rng(3)
    paths = rng.normal(size=(300, 100, 1))
    factors, _ = fit_step_spread(paths, rng.normal(size=(300, 1)) * 1.5)
    assert factors[0] == pytest.approx(1.5, rel=0.08)
    # A truth far wider than anything tried: the largest factor, not an extrapolation.
    factors, raw = fit_step_spread(paths[:, :, :1].repeat(3, 2), rng.normal(size=(300, 3)) * 50)
    assert np.all(raw == FACTORS[-1]) and np.allclose(factors, FACTORS[-1])


def _brute_force_scale(paths, truth, scales):
    """The recent-coverage scalar by widening the paths and scoring them as the backtest does."""
    from rnnkit.forecast.metrics import SampleForecast, Scores

    rows = []
    for s in scales:
        scores = Scores(paths.shape[2])
        for p, t in zip(widen_paths(paths, np.full(paths.shape[2], s)), truth):
            scores.add(SampleForecast(p), t, 1.0)
        m = scores.summary()
        rows.append((abs(m["coverage_80"] - 0.8) + abs(m["coverage_95"] - 0.95), m["crps"], s))
    best = min(r[0] for r in rows)
    return min((r for r in rows if r[0] <= best + 1e-12), key=lambda r: r[1])[2]


def test_recent_coverage_scale_matches_the_backtests_coverage_by_brute_force():
    rng = np.random.default_rng(4)
    paths = rng.normal(size=(7, 50, 5))
    truth = rng.normal(size=(7, 5)) * 1.7
    truth[3, 2] = np.nan  # missing: not counted
    scales = np.exp(np.linspace(np.log(0.5), np.log(3.0), 23))
    assert recent_coverage_scale(paths, truth, scales) == _brute_force_scale(paths, truth, scales)
    assert recent_coverage_scale(paths, np.full((7, 5), np.nan), scales) == 1.0


def test_recent_coverage_scale_finds_the_truths_spread():
    # Paths as N(0, 1), truth with spread 2.2: the intervals cover nominally at about 2.2.
    rng = np.random.default_rng(5)
    paths = rng.normal(size=(40, 400, 24))
    chosen = recent_coverage_scale(paths, rng.normal(size=(40, 24)) * 2.2)
    assert chosen == pytest.approx(2.2, rel=0.08)
    assert recent_coverage_scale(paths, rng.normal(size=(40, 24)) * 0.5) == pytest.approx(
        0.5, rel=0.1
    )
    assert SCALES[0] <= chosen <= SCALES[-1]


def test_tracked_scale_takes_the_controllers_steps_by_hand():
    """Paths whose quantiles are known exactly (101 draws -50..50 at every step: the 80% interval
    is +-40, the 95% +-47.5): a truth of 45 misses the 80% interval alone, so the first step adds
    rate * ((1 - 0.2) + (0 - 0.05)); the widened second forecast (s = e^0.15, 80% interval
    +-46.5) then covers it, and the step adds rate * (-0.2 - 0.05). A forecast with no observed
    value changes nothing; a missing step is left out of the fractions."""
    grid = np.arange(-50.0, 51.0)
    paths = np.broadcast_to(grid[None, :, None], (3, 101, 4)).copy()
    truth = np.full((3, 4), 45.0)
    truth[1] = np.nan  # nothing observed: skipped
    truth[2, 0] = np.nan
    one = tracked_scale(paths[:1], truth[:1], 0.2)
    assert one == pytest.approx(np.exp(0.2 * 0.75), rel=1e-12)
    both = tracked_scale(paths, truth, 0.2)
    assert both == pytest.approx(np.exp(0.2 * 0.75 - 0.2 * 0.25), rel=1e-12)
    # a truth outside both intervals, and one at the median
    assert tracked_scale(paths[:1], np.full((1, 4), 60.0), 0.1) == pytest.approx(np.exp(0.175))
    assert tracked_scale(paths[:1], np.zeros((1, 4)), 0.1) == pytest.approx(np.exp(-0.025))
    assert tracked_scale(paths, truth, 0.0) == 1.0  # rate 0: the calibrated spread


def test_tracked_scale_follows_the_truths_spread_and_stays_in_range():
    # Paths as N(0, 1), truth with spread 2.2 (then 0.5): over 60 forecasts the controller
    # settles near the scalar at which the intervals cover nominally.
    rng = np.random.default_rng(6)
    paths = rng.normal(size=(60, 400, 24))
    wide = tracked_scale(paths, rng.normal(size=(60, 24)) * 2.2, 0.2)
    assert wide == pytest.approx(2.2, rel=0.12)
    calm = tracked_scale(paths, rng.normal(size=(60, 24)) * 0.5, 0.2)
    assert calm == pytest.approx(0.5, rel=0.12)
    # a truth far wider than anything allowed: the upper bound, not beyond
    assert tracked_scale(paths, rng.normal(size=(60, 24)) * 50, 0.5) == pytest.approx(SCALES[-1])
    # a smaller rate moves less far in the same forecasts
    slow = tracked_scale(paths[:5], rng.normal(size=(5, 24)) * 2.2, 0.02)
    assert 1.0 < slow < 1.2
