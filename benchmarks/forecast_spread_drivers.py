"""What does the widening a forecast needs follow? A diagnostic on the validation periods.

The calibrated spread (``calibration.json``) widens every origin's paths by the same factor per
horizon step. On the default data the test period, the calmest of the periods, is covered too
often (80% intervals: 0.89). This asks, of the kept runs of ``forecast_refit_check.py --out DIR``
(per seed the first stage, calibrated on its pseudo-validation period, and its refit
``refit-anneal``, trained up to the real validation period), whether the widening each origin
needed could have been told at the origin:

- **predicted spread**: the mean width of the paths' 80% interval over the horizon, after the
  calibrated factors (the model's own uncertainty);
- **recent volatility**: the mean absolute seasonal difference ``|x[t] - x[t - 24]|`` over the
  168 values before the origin (how unsettled the series has just been; the docs compare the
  periods by it).

Every hourly origin is scored: the first stage on its pseudo-validation period, the refit on the
real validation period (never the test period). Per origin, the scalar (of 0.25-4) with the
lowest CRPS; the origins are cut into thirds by each driver, and each third's 80% coverage and
the scalar with the lowest CRPS over the third are printed with the slope of log scalar on log
driver. A driver worth a rule would order the thirds the same way in every row.

    python benchmarks/forecast_spread_drivers.py bench/refit_check/seed0 bench/refit_check/seed1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from forecast_spread_check import SCALES, crps_per_origin, paths_at
from rnnkit.forecast import load
from rnnkit.forecast.api import _prepare
from rnnkit.forecast.calibration import widen_paths


def recent_volatility(series, picks: list[tuple[int, int]], back: int, lag: int) -> np.ndarray:
    """Per (series, origin) pick: the mean of ``|x[t] - x[t - lag]|`` over the ``back`` values
    before the origin (missing values skipped)."""
    out = []
    for index, origin in picks:
        s = series.series[index]
        values = np.asarray(s.values, dtype=float)
        k = origin - s.offset
        x = values[max(0, k - back - lag) : k]
        out.append(np.nanmean(np.abs(x[lag:] - x[:-lag])))
    return np.asarray(out)


def thirds(name: str, driver: np.ndarray, inside: np.ndarray, per_origin: np.ndarray) -> str:
    """One line: per third of the origins by ``driver``, the 80% coverage (``inside``: each
    origin's fraction of steps inside) and the scalar of SCALES with the lowest CRPS over the
    third (``per_origin``: each origin's CRPS per scalar, :func:`crps_per_origin`)."""
    best = SCALES[np.argmin(per_origin, axis=1)]
    slope = np.polyfit(np.log(driver), np.log(best), 1)[0]
    cuts = np.quantile(driver, [1 / 3, 2 / 3])
    group = np.digitize(driver, cuts)
    cover = " ".join(f"{inside[group == g].mean():.3f}" for g in range(3))
    scale = " ".join(f"{SCALES[np.argmin(per_origin[group == g].mean(axis=0))]:.2f}"
                     for g in range(3))  # fmt: skip
    spread = driver.max() / driver.min()
    return (f"  by {name:<17} coverage 80 by third {cover} | best scalar by third {scale} | "
            f"slope {slope:+.2f} | driver max/min {spread:.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="SEED_DIR", help="forecast_refit_check seeds")
    parser.add_argument("--back", type=int, default=168, help="values of recent volatility")
    parser.add_argument("--lag", type=int, default=24, help="the seasonal difference's lag")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in map(Path, args.runs):
        if not (run / "refit-anneal" / "model.safetensors").is_file():
            print(f"forecast_spread_drivers.py: error: {run} has no refit-anneal run; give the "
                  "seed folders of forecast_refit_check.py --out DIR", file=sys.stderr)  # fmt: skip
            return 2
        first = load(run, first_stage=True)
        refit = load(run / "refit-anneal")
        series, windows = _prepare(first, None, first.recipe.horizon)
        pseudo, valid = series.cuts()
        factors = np.asarray(first.spread)
        for label, fc, start, end in (
            ("first stage, pseudo-validation", first, pseudo, valid),
            ("refit, real validation", refit, valid, series.length),
        ):
            picks = windows.origins(start, end, stride=1)
            paths, truth = paths_at(fc, picks, args.seed)
            widened = widen_paths(paths, factors)
            lo, hi = np.quantile(widened, 0.1, axis=1), np.quantile(widened, 0.9, axis=1)
            inside = ((truth >= lo) & (truth <= hi)).mean(axis=1)  # per origin
            per_origin = crps_per_origin(widened, truth)  # (origins, SCALES)
            print(f"{run}: {label}, {len(picks)} hourly origins, coverage 80 {inside.mean():.3f}")
            spread = (hi - lo).mean(axis=1)
            print(thirds("predicted spread", spread, inside, per_origin))
            volatility = recent_volatility(series, picks, args.back, args.lag)
            print(thirds("recent volatility", volatility, inside, per_origin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
