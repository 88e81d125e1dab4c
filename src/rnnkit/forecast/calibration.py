"""The spread of the sample paths per horizon step, chosen on the validation period.

The network learns one-step-ahead distributions with the true values fed in; a forecast feeds
back its own draws. On a smooth series the uncertainty of a day ahead (how the whole daily
curve drifts) is not what one-step noise adds up to, so the paths as trained are too narrow,
and by how much depends on the step ahead. So after training, the paths drawn from many
validation origins are widened (or narrowed) about their median by a factor per step,

    x'[h] = median[h] + c[h] * (x[h] - median[h]),

which leaves the median (the point forecast) and the shape of each path alone. Each ``c[h]``
minimises the CRPS of step ``h`` over the origins (CRPS is a proper score: too narrow and too
wide paths both lose); the factors are then smoothed by a quadratic in ``h`` fitted to their
logarithms, so neighbouring steps do not differ by the noise of the choice.
"""

from __future__ import annotations

import numpy as np

# the factors tried per step: 0.5 to 6, about 3% apart
FACTORS = np.exp(np.linspace(np.log(0.5), np.log(6.0), 85))
SMOOTH_DEGREE = 2  # of the polynomial in the step fitted to the log factors


def widen_paths(paths: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``paths`` (..., S, H) with each step's draws moved about their median by ``factors``
    (H,) (only the first ``H`` factors are used when there are more)."""
    factors = np.asarray(factors, dtype=paths.dtype)[: paths.shape[-1]]
    median = np.median(paths, axis=-2, keepdims=True)
    return median + factors * (paths - median)


def crps_by_factor(paths: np.ndarray, truth: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(len(factors), H) mean CRPS over the N origins of ``paths`` (N, S, H) against ``truth``
    (N, H; NaN: missing, left out) after :func:`widen_paths` by each factor at every step.

    Uses ``E|X' - X''| = c E|X - X'|`` (the spread term scales with the factor), so only the
    term ``E|X' - y|`` is computed per factor.
    """
    s = paths.shape[1]
    median = np.median(paths, axis=1, keepdims=True)
    dev = paths - median  # (N, S, H)
    ordered = np.sort(dev, axis=1)
    weights = (2 * np.arange(1, s + 1) - s - 1)[None, :, None]
    spread = (weights * ordered).sum(axis=1) / (s * s)  # (N, H): E|X - X'| / 2
    gap = truth - median[:, 0]  # (N, H)
    seen = ~np.isnan(gap)
    gap = np.where(seen, gap, 0.0)
    count = np.maximum(seen.sum(axis=0), 1)
    out = np.empty((len(factors), paths.shape[2]))
    for k, c in enumerate(factors):
        crps = np.abs(c * dev - gap[:, None, :]).mean(axis=1) - c * spread
        out[k] = (crps * seen).sum(axis=0) / count
    return out


def fit_step_spread(
    paths: np.ndarray, truth: np.ndarray, factors: np.ndarray = FACTORS
) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed factor per step (H,) and the raw per-step choice (H,) with the lowest CRPS
    of the origins' ``paths`` (N, S, H) against ``truth`` (N, H); see the module docstring."""
    crps = crps_by_factor(paths, truth, factors)
    raw = factors[np.argmin(crps, axis=0)]
    horizon = len(raw)
    steps = np.arange(horizon)
    degree = min(SMOOTH_DEGREE, horizon - 1)
    coef = np.polyfit(steps, np.log(raw), degree) if degree > 0 else [np.log(raw[0])]
    smooth = np.exp(np.polyval(coef, steps))
    return np.clip(smooth, factors[0], factors[-1]), raw


# the scalar of the recent-coverage rule (ForecastRecipe.adapt_spread): 0.25 to 4, about 6% apart
SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))
LEVELS = (0.8, 0.95)  # the central intervals whose coverage it matches


def recent_coverage_scale(
    paths: np.ndarray, truth: np.ndarray, scales: np.ndarray = SCALES
) -> float:
    """The scalar (of ``scales``) that widens the recent forecasts' ``paths`` (K, S, H) about
    their median so that their 80% and 95% intervals covered ``truth`` (K, H; NaN: missing)
    nearest nominal: the smallest ``|cov80 - 0.8| + |cov95 - 0.95|``, ties broken by the lower
    CRPS; 1 when no value was observed. Widening moves each quantile away from the median by
    the scalar, so the interval of scale ``s`` is ``median + s (quantile - median)``."""
    seen = ~np.isnan(truth)
    if not seen.any():
        return 1.0
    median = np.median(paths, axis=1)  # (K, H)
    gap = (truth - median)[seen]  # (M,)
    distance = np.zeros(len(scales))
    for level in LEVELS:
        lo = (np.quantile(paths, (1 - level) / 2, axis=1) - median)[seen]
        hi = (np.quantile(paths, (1 + level) / 2, axis=1) - median)[seen]
        s = np.asarray(scales)[:, None]
        inside = (gap >= s * lo) & (gap <= s * hi)  # (len(scales), M)
        distance += np.abs(inside.mean(axis=1) - level)
    best = np.flatnonzero(distance <= distance.min() + 1e-12)
    if len(best) == 1:
        return float(scales[best[0]])
    crps = np.nansum(crps_by_factor(paths, truth, np.asarray(scales)[best]), axis=1)
    return float(scales[best[np.argmin(crps)]])


def tracked_scale(
    paths: np.ndarray, truth: np.ndarray, rate: float, low: float = SCALES[0],
    high: float = SCALES[-1],
) -> float:  # fmt: skip
    """The scalar an adaptive-conformal controller reaches over the recent forecasts' ``paths``
    (K, S, H), oldest first, against ``truth`` (K, H; NaN: missing): starting at 1, each
    forecast in turn is widened about its median by the current scalar ``s``, and then

        log s <- log s + rate * ((miss80 - 0.20) + (miss95 - 0.05)),

    ``missL`` the fraction of its observed steps outside its central ``L`` interval; ``s`` is
    kept within [``low``, ``high``]. An integral controller on the miss rate (in the spirit of
    Gibbs & Candes 2021): where the intervals miss more often than nominal it widens them, where
    less often it narrows them, and unlike a scalar fitted to the window it does not carry that
    fit's optimism forward. ``rate`` 0 gives 1."""
    log_s = 0.0
    median = np.median(paths, axis=1)  # (K, H)
    bounds = [
        (np.quantile(paths, (1 - level) / 2, axis=1) - median,
         np.quantile(paths, (1 + level) / 2, axis=1) - median)
        for level in LEVELS
    ]  # fmt: skip
    for k in range(len(paths)):
        seen = ~np.isnan(truth[k])
        if not seen.any():
            continue
        gap = (truth[k] - median[k])[seen]
        s = np.exp(log_s)
        error = 0.0
        for level, (lo, hi) in zip(LEVELS, bounds):
            inside = (gap >= s * lo[k][seen]) & (gap <= s * hi[k][seen])
            error += (1.0 - inside.mean()) - (1.0 - level)
        log_s = float(np.clip(log_s + rate * error, np.log(low), np.log(high)))
    return float(np.exp(log_s))
