"""Which spread should a refit forecast with? Rules scored on the real validation period.

Reads the kept runs of ``forecast_refit_check.py --out DIR`` (per seed: the first stage, trained
to the pseudo-validation period and calibrated there, and its refit ``refit-anneal``, trained to
the real validation period) and scores the refit's paths on the real validation period (which
neither saw) widened by the factors of each rule:

- ``first stage``: the first stage's factors per step (chosen on the pseudo-validation period
  for its own paths; the rule until now);
- ``as trained``: 1 at every step;
- ``refit in-sample``: chosen for the refit's own paths on the pseudo-validation period, which
  it trained on;
- ``transfer``: the refit's in-sample factors times the first stage's out-of-sample /
  in-sample ratio (its factors on the pseudo-validation period over those on the same length of
  its own training just before it);
- ``recent K``: the first stage's factors times one scalar per origin, the one with the lowest
  CRPS over the forecasts from the K midnights before it (their horizons end by the origin, so
  only values before it are used).

Scored at every midnight (the backtest's 36 origins) and at every hour (853 origins) of the
real validation period: CRPS and the coverage of the 80% and 95% intervals.

    python benchmarks/forecast_spread_check.py bench/refit_check
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from rnnkit.forecast import load
from rnnkit.forecast.api import Forecaster, _prepare, _sample, _truth
from rnnkit.forecast.calibration import crps_by_factor, fit_step_spread, widen_paths
from rnnkit.forecast.metrics import SampleForecast, Scores

SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))  # the per-origin scalar's choices


def paths_at(fc: Forecaster, picks: list[tuple[int, int]], seed: int):
    """The paths as trained (N, S, H) of ``fc`` from the (series, origin) ``picks`` and the
    true values (N, H)."""
    series, windows = _prepare(fc, None, fc.recipe.horizon)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        paths = _sample(fc, windows, picks, num_samples=fc.recipe.num_samples, spread=1.0)
    truth = np.stack([_truth(series, i, o, fc.recipe.horizon) for i, o in picks])
    return paths, truth


def score(paths: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """CRPS and the coverage of the 80% and 95% intervals of ``paths`` (N, S, H) against
    ``truth`` (N, H), as the backtest scores them."""
    scores = Scores(paths.shape[2])
    for p, t in zip(paths, truth):
        scores.add(SampleForecast(p), t, 1.0)
    summary = scores.summary()
    return {
        "crps": summary["crps"],
        "cov80": summary["coverage_80"],
        "cov95": summary["coverage_95"],
    }


def crps_per_origin(paths: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, len(SCALES)): each origin's mean CRPS over its steps after its ``paths`` (N, S, H)
    are widened about their median by each of SCALES."""
    rows = [crps_by_factor(p[None], t[None], SCALES) for p, t in zip(paths, truth)]
    return np.stack([np.nanmean(r, axis=1) for r in rows])


def recent_scale(per_origin: np.ndarray, k: int, gap: int, first: int) -> np.ndarray:
    """For each origin n >= first: the scalar of SCALES with the lowest CRPS summed over the
    origins n - gap, ..., n - k * gap (one horizon apart, so their horizons end by origin n)."""
    out = []
    for n in range(first, len(per_origin)):
        back = [n - j * gap for j in range(1, k + 1)]
        out.append(SCALES[int(np.argmin(per_origin[back].sum(axis=0)))])
    return np.array(out)


def check_seed(run: Path, seed: int, ks: list[int]) -> dict:
    """Score every rule on the kept runs of one seed (the record of ``spread-seedK.json``)."""
    first = load(run, first_stage=True)
    refit = load(run / "refit-anneal")
    series, windows = _prepare(first, None, first.recipe.horizon)
    pseudo, valid = series.cuts()  # the truncated data: validation = pseudo, test = real valid
    end = series.length
    h = first.recipe.horizon
    c_first = np.asarray(first.spread)
    # in-sample calibrations: the refit on the pseudo-validation period (it trained on it), the
    # first stage on as many steps of its own training just before it
    p, t = paths_at(refit, windows.origins(pseudo, valid, stride=1), seed)
    c_refit_in, _ = fit_step_spread(p, t)
    p, t = paths_at(first, windows.origins(pseudo - (valid - pseudo), pseudo, stride=1), seed)
    c_first_in, _ = fit_step_spread(p, t)
    rules = {
        "first stage": c_first,
        "as trained": np.ones(h),
        "refit in-sample": c_refit_in,
        "transfer": c_refit_in * c_first / c_first_in,
    }
    record = {
        "seed": seed,
        "factors": {k: [round(float(x), 3) for x in v] for k, v in rules.items()},
    }
    record["factors"]["first stage in-sample"] = [round(float(x), 3) for x in c_first_in]
    # every hour of the real validation period, and the K days before it (the recent-K rule)
    kmax = max(ks)
    picks = windows.origins(valid - kmax * h, end, stride=1)
    p, t = paths_at(refit, picks, seed)
    skip = kmax * h  # the scored origins start here
    assert series.epoch_s(picks[skip][1]) % 86400 == 0  # hourly data, midnight
    per_origin = crps_per_origin(widen_paths(p, c_first), t)
    scales = {k: recent_scale(per_origin, k, h, skip) for k in ks}
    for name, stride in (("midnights", h), ("hourly", 1)):
        rows = np.arange(skip, len(picks), stride)
        record[name] = {"origins": len(rows)}
        for rule, c in rules.items():
            record[name][rule] = score(widen_paths(p[rows], c), t[rows])
        for k, g in scales.items():
            chosen = g[rows - skip]
            scored = np.stack([widen_paths(p[r], c_first * x) for r, x in zip(rows, chosen)])
            record[name][f"recent {k}"] = {
                **score(scored, t[rows]),
                "scale_mean": float(np.mean(chosen)),
            }
    # the first stage (no refit) beside it: its own factors, and with the recent-K scalar
    p, t = paths_at(first, picks, seed)
    per_origin = crps_per_origin(widen_paths(p, c_first), t)
    for name, stride in (("midnights", h), ("hourly", 1)):
        rows = np.arange(skip, len(picks), stride)
        record[name]["no refit: first stage"] = score(widen_paths(p[rows], c_first), t[rows])
        for k in ks:
            g = recent_scale(per_origin, k, h, skip)[rows - skip]
            scored = np.stack([widen_paths(p[r], c_first * x) for r, x in zip(rows, g)])
            record[name][f"no refit: recent {k}"] = score(scored, t[rows])
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the --out of forecast_refit_check.py")
    parser.add_argument("--recent", default="7,14", help="K of the recent-K rule")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    ks = [int(k) for k in args.recent.split(",")]
    records = []
    for run in sorted(out.glob("seed*")):
        if not run.is_dir():
            continue
        seed = int(run.name[4:])
        rec = check_seed(run, seed, ks)
        (out / f"spread-seed{seed}.json").write_text(json.dumps(rec, indent=1))
        records.append(rec)
        print(f"seed {seed}: " + json.dumps(rec["factors"]), flush=True)
    for name in ("midnights", "hourly"):
        print(
            f"\n{name} of the real validation period ({records[0][name]['origins']} origins), "
            f"{len(records)} seed(s): mean (per seed)"
        )
        print(f"{'rule':22}{'CRPS':>28}{'cov. 80%':>24}{'cov. 95%':>24}")
        for rule in records[0][name]:
            if rule == "origins":
                continue
            cells = []
            for m in ("crps", "cov80", "cov95"):
                v = [r[name][rule][m] for r in records]
                cells.append(f"{statistics.mean(v):.4f} ({', '.join(f'{x:.4f}' for x in v)})")
            print(f"{rule:22}" + "".join(f"{c:>26}" for c in cells))
    print("\nthe choice (hourly origins; see choose):")
    print(f"chosen: {choose(records)}")
    return 0


def choose(records: list[dict]) -> str:
    """The rule chosen as written down before scoring: the mean coverage nearest nominal
    (``|cov80 - 0.8| + |cov95 - 0.95|``) over the hourly origins and the seeds, among the rules
    whose mean CRPS is at most 1% above the first stage's; within 0.01 of it, the lower CRPS."""
    mean = lambda rule, m: statistics.mean(r["hourly"][rule][m] for r in records)  # noqa: E731
    rules = [r for r in records[0]["hourly"] if r != "origins" and not r.startswith("no refit")]
    allowed = [r for r in rules if mean(r, "crps") <= 1.01 * mean("first stage", "crps")]
    distance = {
        r: abs(mean(r, "cov80") - 0.8) + abs(mean(r, "cov95") - 0.95) for r in allowed
    }  # fmt: skip
    best = min(distance.values())
    near = [r for r in allowed if distance[r] <= best + 0.01]
    for r in rules:
        kept = "excluded (CRPS)" if r not in allowed else f"distance {distance[r]:.3f}"
        print(f"  {r:18} CRPS {mean(r, 'crps'):.4f}  {kept}")
    return min(near, key=lambda r: mean(r, "crps"))


if __name__ == "__main__":
    raise SystemExit(main())
