"""Scoring forecasts: point errors, CRPS, interval coverage, per origin and per horizon step.

A forecast is a predictive distribution per horizon step, given either as sample paths
(:class:`SampleForecast`, the network's) or as independent Gaussians (:class:`GaussianForecast`,
the classical baselines'). Point metrics score the median (MAE, MASE, sMAPE) or the mean (RMSE),
as GluonTS' evaluator does. Missing true values (NaN) are left out of every metric.

- MASE: MAE over the mean absolute seasonal difference ``|y[t] - y[t-m]|`` of the series'
  history before the origin (Hyndman & Koehler 2006), averaged over origins.
- sMAPE: ``200 |y - f| / (|y| + |f|)`` percent.
- CRPS: of samples, ``E|X - y| - E|X - X'| / 2`` over the empirical distribution of the paths
  (the estimator of ``properscoring.crps_ensemble``); of a Gaussian, its closed form (Gneiting
  et al. 2005).
- Coverage: the share of true values inside the central 80% and 95% intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

import numpy as np

INTERVALS = (0.8, 0.95)
_erf = np.vectorize(math.erf, otypes=[float])


class Forecast(Protocol):
    """A predictive distribution over ``H`` steps."""

    def quantile(self, q: float) -> np.ndarray: ...  # (H,)

    def mean(self) -> np.ndarray: ...  # (H,)

    def crps(self, y: np.ndarray) -> np.ndarray: ...  # (H,)


@dataclass
class SampleForecast:
    """Sample paths ``samples`` (S, H)."""

    samples: np.ndarray

    def quantile(self, q: float) -> np.ndarray:
        return np.quantile(self.samples, q, axis=0)

    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    def crps(self, y: np.ndarray) -> np.ndarray:
        return crps_samples(self.samples, y)


@dataclass
class GaussianForecast:
    """Independent normal distributions ``N(loc, std^2)`` per step."""

    loc: np.ndarray
    std: np.ndarray

    def quantile(self, q: float) -> np.ndarray:
        return self.loc + self.std * NormalDist().inv_cdf(q)

    def mean(self) -> np.ndarray:
        return self.loc

    def crps(self, y: np.ndarray) -> np.ndarray:
        return crps_gaussian(self.loc, self.std, y)


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(H,) CRPS of the empirical distribution of ``samples`` (S, H) at ``y`` (H,).

    Uses ``sum_ij |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i)`` over the sorted samples, so it
    costs O(S log S) instead of O(S^2).
    """
    s = samples.shape[0]
    first = np.abs(samples - y[None, :]).mean(axis=0)
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    return first - (weights * ordered).sum(axis=0) / (s * s)


def crps_gaussian(loc: np.ndarray, std: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of ``N(loc, std^2)`` at ``y``."""
    z = (y - loc) / std
    cdf = 0.5 * (1 + _erf(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def seasonal_error(history: np.ndarray, season: int) -> float:
    """Mean ``|y[t] - y[t - m]|`` over the observed pairs of ``history`` (MASE's scale)."""
    m = season if len(history) > season else 1
    diffs = np.abs(history[m:] - history[:-m])
    diffs = diffs[~np.isnan(diffs)]
    return float(diffs.mean()) if len(diffs) else float("nan")


@dataclass
class Scores:
    """Accumulates forecasts of one method over origins; :meth:`summary` gives the metrics."""

    horizon: int
    abs_err: list[np.ndarray] = field(default_factory=list)  # per origin: |y - median|, (H,)
    sq_err: list[np.ndarray] = field(default_factory=list)  # (y - mean)^2
    smape: list[np.ndarray] = field(default_factory=list)
    crps: list[np.ndarray] = field(default_factory=list)
    inside: dict[float, list[np.ndarray]] = field(default_factory=dict)
    mase: list[float] = field(default_factory=list)

    def add(self, forecast: Forecast, y: np.ndarray, scale: float) -> None:
        """Score ``forecast`` against the true values ``y`` (H,; NaN: missing); ``scale`` is
        the seasonal error of the history (:func:`seasonal_error`)."""
        median = forecast.quantile(0.5)
        err = np.abs(y - median)
        self.abs_err.append(err)
        self.sq_err.append((y - forecast.mean()) ** 2)
        denom = np.abs(y) + np.abs(median)
        smape = np.where(denom > 0, 200 * err / np.where(denom > 0, denom, 1), 0.0)
        self.smape.append(np.where(np.isnan(y), np.nan, smape))
        self.crps.append(forecast.crps(y))
        for level in INTERVALS:
            lo, hi = forecast.quantile((1 - level) / 2), forecast.quantile((1 + level) / 2)
            inside = ((y >= lo) & (y <= hi)).astype(float)
            self.inside.setdefault(level, []).append(np.where(np.isnan(y), np.nan, inside))
        if scale > 0 and not np.isnan(err).all():
            self.mase.append(float(np.nanmean(err)) / scale)

    def summary(self) -> dict[str, float]:
        """MAE, RMSE, MASE, sMAPE, CRPS and coverage over every scored step."""
        mean = lambda rows: float(np.nanmean(np.stack(rows)))  # noqa: E731
        out = {
            "mae": mean(self.abs_err),
            "rmse": math.sqrt(mean(self.sq_err)),
            "mase": float(np.mean(self.mase)) if self.mase else float("nan"),
            "smape": mean(self.smape),
            "crps": mean(self.crps),
        }
        for level, rows in self.inside.items():
            out[f"coverage_{round(level * 100)}"] = mean(rows)
        out["origins"] = len(self.abs_err)
        return out

    def per_step(self, metric: str = "mae") -> list[float]:
        """The metric (``"mae"`` or ``"crps"``) at each horizon step, over origins."""
        rows = {"mae": self.abs_err, "crps": self.crps}[metric]
        return np.nanmean(np.stack(rows), axis=0).tolist()
