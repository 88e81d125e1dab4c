"""Forecast quality in a fixed time: the default recipe against classical baselines.

For each seed, trains ``rnnkit.forecast.ForecastRecipe()`` (what ``rnnkit forecast train``
uses; ``--data``, ``--likelihood``, ``--scaling`` change it) for ``--minutes`` of wall-clock
time, then backtests it by rolling origin over the test period (for the default data: 24 hours
from every midnight, 168 hours of context). The baselines (seasonal naive, Holt-Winters, ARIMA;
statsmodels) do not depend on the seed and are scored once, on the same origins. Prints one
table: the model as mean +- standard deviation over the seeds, and the issue's targets:

- MASE at least 15% below seasonal naive and not above Holt-Winters;
- 80% and 95% interval coverage within 5 points of nominal;
- CRPS below every baseline's.

    python benchmarks/forecast.py --minutes 10                 # the measurement (~35 minutes)
    python benchmarks/forecast.py --minutes 1 --seeds 1        # a quick check that it runs
    python benchmarks/forecast.py --data taylor --horizon 48 --context 336   # half-hourly demand

Run it on a quiet machine; the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from lm import cpu_name  # benchmarks/lm.py: this folder is on the path when run as a script
from lm import load as loadavg
from rnnkit.forecast import ForecastRecipe, backtest, load, train

COLUMNS = ("mae", "rmse", "mase", "smape", "crps", "coverage_80", "coverage_95")


def run_seed(recipe: ForecastRecipe, seed: int, out: Path, baselines: bool, args) -> dict:
    run = out / f"seed{seed}"
    started = time.monotonic()
    result = train(run, recipe=dataclasses.replace(recipe, seed=seed))
    scores = backtest(
        load(run), baselines=baselines, seed=seed, baseline_history=args.baseline_history
    )
    scores["train"] = {"steps": result.steps, "valid_nll": result.best_valid_loss}
    scores["seconds"] = time.monotonic() - started
    print(
        f"seed {seed}: {result.steps} steps, valid NLL {result.best_valid_loss:.4f}, "
        f"MASE {scores['methods']['model']['mase']:.4f} ({scores['seconds']:.0f} s)",
        flush=True,
    )
    return scores


def fmt(values: list[float]) -> str:
    """Mean (and standard deviation over seeds), 4 significant digits."""
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g}+-{statistics.stdev(values):.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=ForecastRecipe().data, help="dataset name or CSV")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--horizon", type=int, default=ForecastRecipe().horizon)
    parser.add_argument("--context", type=int, default=ForecastRecipe().context)
    parser.add_argument("--likelihood", default=ForecastRecipe().likelihood)
    parser.add_argument("--scaling", default=ForecastRecipe().scaling)
    parser.add_argument("--baseline-history", type=int, help="steps the baselines fit on")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; torch threads {args.threads}")
    print(f"load average before: {loadavg()}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}")
    recipe = ForecastRecipe(
        data=args.data, horizon=args.horizon, context=args.context,
        likelihood=args.likelihood, scaling=args.scaling, max_minutes=args.minutes,
    )  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-forecast-") as tmp:
        for seed in range(args.seeds):
            runs.append(run_seed(recipe, seed, Path(tmp), seed == 0, args))
    print(f"load average after: {loadavg()}")
    first = runs[0]
    print(
        f"\n{first['data']}: {first['origins']} origins from {first['first_origin']}, "
        f"horizon {first['horizon']}; model: {args.minutes:g} min per seed, "
        f"{args.seeds} seed(s); {args.likelihood}, {args.scaling} scaling"
    )
    print(f"{'method':16}" + "".join(f"{c:>18}" for c in COLUMNS))
    model = {c: [r["methods"]["model"][c] for r in runs] for c in COLUMNS}
    print(f"{'model':16}" + "".join(f"{fmt(model[c]):>18}" for c in COLUMNS))
    base = {k: v for k, v in first["methods"].items() if k != "model"}
    for name, m in base.items():
        print(f"{name:16}" + "".join(f"{fmt([m[c]]):>18}" for c in COLUMNS))
    mase = statistics.mean(model["mase"])
    checks = {
        "MASE <= 0.85 x seasonal naive": mase <= 0.85 * base["seasonal-naive"]["mase"],
        "MASE <= Holt-Winters": mase <= base["holt-winters"]["mase"],
        "80% coverage within 5 points": abs(statistics.mean(model["coverage_80"]) - 0.8) <= 0.05,
        "95% coverage within 5 points": abs(statistics.mean(model["coverage_95"]) - 0.95) <= 0.05,
        "CRPS below every baseline": statistics.mean(model["crps"])
        < min(m["crps"] for m in base.values()),
    }
    print(f"\nMASE vs seasonal naive: {mase / base['seasonal-naive']['mase']:.3f}x")
    for name, ok in checks.items():
        print(f"  {'met    ' if ok else 'NOT met'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "checks": checks}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
