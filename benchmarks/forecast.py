"""Forecast quality in a fixed time: the default recipe against classical baselines.

For each seed, trains ``rnnkit.forecast.ForecastRecipe()`` (what ``rnnkit forecast train``
uses; ``--data``, ``--likelihood``, ``--scaling``, ``--linear-lags``, ``--calibrate`` and
``--set NAME=VALUE`` for any other field change it)
for ``--minutes`` (wall-clock, or CPU time of the seed's process with ``--cpu-time``, so that a
loaded machine does not decide the result), then backtests it by rolling origin over the test
period (for the default data: 24 hours from every midnight, 168 hours of context). The model is
scored twice: with the spread per horizon step its training chose on the validation period
(``calibrate``), and with the paths as trained (factor 1); with several seeds, also as their
ensemble (the seeds' paths pooled: N times the training, shown for what it tells, not a
target). The baselines (seasonal naive,
Holt-Winters, ARIMA; statsmodels) do not depend on the seed and are scored once, on the same
origins. Prints one table: the model as mean +- standard deviation over the seeds, and the
issue's targets:

- MASE at least 15% below seasonal naive and not above Holt-Winters;
- 80% and 95% interval coverage within 5 points of nominal;
- CRPS below every baseline's.

    python benchmarks/forecast.py --minutes 10 --cpu-time --jobs 3  # the measurement
    python benchmarks/forecast.py --minutes 1 --seeds 1              # a quick check that it runs
    python benchmarks/forecast.py --data taylor --horizon 48 --context 336   # half-hourly demand
    python benchmarks/forecast.py --table-from DIR                   # the table of finished seeds
    python benchmarks/forecast.py --rescore DIR   # calibrate and score the kept runs again
    python benchmarks/forecast.py --refit DIR     # refit the kept runs, score them again

``--out DIR`` keeps the runs and writes ``seedK.json`` as each seed finishes (``--rescore``
measures a change of the calibration or the scoring on those weights); ``--jobs`` trains
seeds in parallel processes (one torch thread each by default). The script prints the machine
and the load average before and after.
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
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from lm import cpu_name  # benchmarks/lm.py: this folder is on the path when run as a script
from lm import load as loadavg
from rnnkit.forecast import ForecastRecipe, backtest, load, train
from rnnkit.forecast.api import recalibrate, refit
from rnnkit.forecast.refit import REFIT

COLUMNS = ("mae", "rmse", "mase", "smape", "crps", "coverage_80", "coverage_95")


def run_seed(recipe: ForecastRecipe, seed: int, out: Path, args: argparse.Namespace) -> dict:
    """Train and backtest one seed; writes ``out/seedK.json`` and returns the same record."""
    torch.set_num_threads(args.threads)
    run = out / f"seed{seed}"
    started, cpu_started = time.monotonic(), time.process_time()
    clock = time.process_time if args.cpu_time else time.monotonic
    result = train(run, recipe=dataclasses.replace(recipe, seed=seed), clock=clock)
    train_s, train_cpu_s = time.monotonic() - started, time.process_time() - cpu_started
    trained = {
        "steps": result.steps,
        "valid_nll": result.best_valid_loss,
        "seconds": train_s,
        "cpu_seconds": train_cpu_s,
    }
    if recipe.refit:  # result is the refit's; the first stage's figures are in its trainer.json
        first = json.loads((run / "trainer.json").read_text())
        trained.update(
            steps=first["step"], valid_nll=first["best_valid_loss"], best_step=first["best_step"],
            refit_steps=result.steps,
        )  # fmt: skip
    return score_seed(out, seed, args, trained, started)


def rescore_seed(out: Path, seed: int, args: argparse.Namespace) -> dict:
    """Calibrate and backtest the kept run ``out/seedK`` again (its training untouched, so a
    change of the calibration or the scoring is measured without training anew)."""
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    trained = kept_training(out, seed)
    recalibrate(out / f"seed{seed}", seed=seed)
    return score_seed(out, seed, args, trained, started)


def kept_training(out: Path, seed: int) -> dict:
    """The training figures of the kept run ``out/seedK``: from its ``seedK.json``, or, for a
    run cut before it finished (no record yet), from its ``trainer.json`` (the seconds of its
    clock, CPU seconds with ``--cpu-time``; wall-clock seconds unknown: 0)."""
    record = out / f"seed{seed}.json"
    if record.is_file():
        return json.loads(record.read_text())["train"]
    summary = json.loads((out / f"seed{seed}" / "trainer.json").read_text())
    return {
        "steps": summary["step"],
        "valid_nll": summary["best_valid_loss"],
        "best_step": summary["best_step"],
        "seconds": 0.0,
        "cpu_seconds": summary["elapsed_s"],
        "cut": True,
    }


def refit_seed(out: Path, seed: int, args: argparse.Namespace) -> dict:
    """Refit the kept run ``out/seedK`` (``rnnkit.forecast.api.refit``: anew on training +
    validation for its best checkpoint's steps) and backtest it again; the first stage is
    scored beside it ("model, first stage")."""
    torch.set_num_threads(args.threads)
    started, cpu_started = time.monotonic(), time.process_time()
    trained = kept_training(out, seed)
    clock = time.process_time if args.cpu_time else time.monotonic
    if not (out / f"seed{seed}" / "calibration.json").is_file():  # a run cut before the end
        recalibrate(out / f"seed{seed}", seed=seed)
    result = refit(out / f"seed{seed}", schedule=args.refit_schedule, clock=clock)
    summary = json.loads((out / f"seed{seed}" / "trainer.json").read_text())
    trained = {
        **trained,
        "best_step": summary["best_step"],
        "refit_steps": result.steps,
        "refit_schedule": args.refit_schedule,
        "refit_cpu_seconds": time.process_time() - cpu_started,
        "cpu_seconds": trained["cpu_seconds"] + time.process_time() - cpu_started,
    }
    return score_seed(out, seed, args, trained, started)


def score_seed(out: Path, seed: int, args: argparse.Namespace, trained: dict, started: float):
    """Backtest the run ``out/seedK`` (baselines with the first seed), write ``out/seedK.json``."""
    fc = load(out / f"seed{seed}")
    history = args.baseline_history
    adapt, rate = args.adapt_spread, args.adapt_rate  # None: the run's recipe's
    scores = backtest(
        fc, baselines=seed == args.first_seed, seed=seed, baseline_history=history, adapt=adapt,
        rate=rate,
    )  # fmt: skip
    raw = backtest(fc, seed=seed, spread=1.0)
    scores["methods"]["model, spread 1"] = raw["methods"]["model"]
    if scores["adapt_spread"]:  # the calibrated spread without the recent-coverage scalar
        fixed = backtest(fc, seed=seed, adapt=0)
        scores["methods"]["model, fixed spread"] = fixed["methods"]["model"]
    if (out / f"seed{seed}" / REFIT).is_dir():  # also the first stage: the model without refit
        first = load(out / f"seed{seed}", first_stage=True)
        scores["methods"]["model, first stage"] = backtest(first, seed=seed)["methods"]["model"]
    scores["train"] = {**trained, "spread": fc.spread}
    scores["seconds"] = time.monotonic() - started
    scores["load_after"] = loadavg()
    scores.pop("examples")
    (out / f"seed{seed}.json").write_text(json.dumps(scores, indent=1))
    refit = f" + refit {trained['refit_steps']} steps" if "refit_steps" in trained else ""
    print(
        f"seed {seed}: {trained['steps']} steps{refit} in {trained['cpu_seconds']:.0f} CPU s "
        f"({trained['seconds']:.0f} s), valid NLL {trained['valid_nll']:.4f}, "
        f"{spread_range(fc.spread)}, MASE {scores['methods']['model']['mase']:.4f}; "
        f"load {loadavg()}",
        flush=True,
    )
    return scores


def spread_range(spread: float | list[float]) -> str:
    """A run's spread: its factor, or the range of its factors per step."""
    if isinstance(spread, (int, float)):
        return f"spread {spread:g}"
    return f"spread per step {spread[0]:.2f}..{spread[-1]:.2f}"


def fmt(values: list[float]) -> str:
    """Mean (and standard deviation over seeds), 4 significant digits."""
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g}+-{statistics.stdev(values):.2g}"


def table(runs: list[dict], pooled: dict | None = None) -> dict[str, bool]:
    """Print the side-by-side table of ``runs`` (one record per seed, baselines in the first)
    and, when given, the scores of their ensemble ``pooled``, and the targets (of the single
    runs, mean over seeds); returns whether each target is met."""
    first = next(r for r in runs if "seasonal-naive" in r["methods"])
    steps = [r["train"]["steps"] for r in runs]
    cpu = [r["train"]["cpu_seconds"] for r in runs]
    if all("refit_steps" in r["train"] for r in runs):
        print(
            "\nrefit: first stage best step / steps "
            + ", ".join(f"{r['train']['best_step']}/{r['train']['steps']}" for r in runs)
            + "; the refit trained that many steps on training + validation"
        )
    print(
        f"\n{first['data']}: {first['origins']} origins from {first['first_origin']}, horizon "
        f"{first['horizon']}; model: {len(runs)} seed(s), {min(steps)}-{max(steps)} steps, "
        f"{min(cpu) / 60:.1f}-{max(cpu) / 60:.1f} CPU min of training (refit included); "
        + "; ".join(spread_range(r["train"]["spread"]) for r in runs)
    )
    print(f"{'method':20}" + "".join(f"{c:>18}" for c in COLUMNS))
    model = {}
    names = ["model", "model, spread 1"]
    for extra in ("model, fixed spread", "model, first stage"):
        if all(extra in r["methods"] for r in runs):
            names.append(extra)
    adapt = {r.get("adapt_spread", 0) for r in runs}
    rates = {r.get("adapt_rate", 0.0) for r in runs if r.get("adapt_spread", 0)}
    if adapt != {0}:
        how = (
            f"tracked at rate {'/'.join(f'{g:g}' for g in sorted(rates))} over"
            if rates != {0.0}
            else "from"
        )
        print(
            f"model: the spread times a scalar per origin {how} the coverage of the last "
            f"{'/'.join(map(str, sorted(adapt)))} forecasts (geometric mean per seed: "
            + ", ".join(f"{r.get('spread_scale_mean', 1.0):.3f}" for r in runs)
            + "); 'model, fixed spread': without it"
        )
    for name in names:
        values = {c: [r["methods"][name][c] for r in runs] for c in COLUMNS}
        model[name] = values
        print(f"{name:20}" + "".join(f"{fmt(values[c]):>18}" for c in COLUMNS))
    if pooled is not None:
        name = f"ensemble of {len(runs)}"
        print(f"{name:20}" + "".join(f"{fmt([pooled[c]]):>18}" for c in COLUMNS))
    base = {k: v for k, v in first["methods"].items() if not k.startswith("model")}
    for name, m in base.items():
        print(f"{name:20}" + "".join(f"{fmt([m[c]]):>18}" for c in COLUMNS))
    ours = {c: statistics.mean(v) for c, v in model["model"].items()}
    checks = {
        "MASE <= 0.85 x seasonal naive": ours["mase"] <= 0.85 * base["seasonal-naive"]["mase"],
        "MASE <= Holt-Winters": ours["mase"] <= base["holt-winters"]["mase"],
        "80% coverage within 5 points": abs(ours["coverage_80"] - 0.8) <= 0.05,
        "95% coverage within 5 points": abs(ours["coverage_95"] - 0.95) <= 0.05,
        "CRPS below every baseline": ours["crps"] < min(m["crps"] for m in base.values()),
    }
    per_step_table(runs)
    print(f"\nMASE vs seasonal naive: {ours['mase'] / base['seasonal-naive']['mase']:.3f}x")
    for name, ok in checks.items():
        print(f"  {'met    ' if ok else 'NOT met'}  {name}")
    return checks


def per_step_table(runs: list[dict]) -> None:
    """Print the MAE per horizon step: the model's (mean over seeds) and each baseline's."""
    first = next(r for r in runs if "seasonal-naive" in r["methods"])
    if "per_step" not in first:  # records of an older version of this script
        return
    rows = {
        "model": [statistics.mean(v) for v in zip(*(r["per_step"]["model"]["mae"] for r in runs))]
    }
    rows.update({k: v["mae"] for k, v in first["per_step"].items() if not k.startswith("model")})
    print("\nMAE per horizon step (model: mean over seeds)")
    print(f"{'step':16}" + "".join(f"{h + 1:>7}" for h in range(len(rows["model"]))))
    for name, values in rows.items():
        print(f"{name:20}" + "".join(f"{v:7.3f}" for v in values))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = ForecastRecipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=d.data, help="dataset name or CSV")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per seed")
    parser.add_argument("--cpu-time", action="store_true", help="count minutes in CPU time")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (from --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed trained")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per seed")
    parser.add_argument("--horizon", type=int, default=d.horizon)
    parser.add_argument("--context", type=int, default=d.context)
    parser.add_argument("--likelihood", default=d.likelihood)
    parser.add_argument("--scaling", default=d.scaling)
    bool_flag = argparse.BooleanOptionalAction
    parser.add_argument("--linear-lags", action=bool_flag, default=d.linear_lags)
    parser.add_argument("--calibrate", action=bool_flag, default=d.calibrate)
    parser.add_argument("--baseline-history", type=int, help="steps the baselines fit on")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="another ForecastRecipe field, e.g. --set dropout=0 --set lags=1,2,24 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--out", help="keep the runs and each seed's seedK.json here")
    parser.add_argument("--table-from", help="only print the table of the seedK.json in DIR")
    parser.add_argument(
        "--rescore", help="calibrate and backtest the kept runs of DIR (from --out) again"
    )
    parser.add_argument(
        "--refit",
        metavar="DIR",
        help="refit the kept runs of DIR (from --out) on training + validation, score again",
    )
    parser.add_argument("--refit-schedule", choices=["same", "anneal"], default="same")
    parser.add_argument(
        "--adapt-spread", type=int, metavar="N",
        help="score with the recent-coverage scalar over N forecasts (default: the runs' recipe)",
    )  # fmt: skip
    parser.add_argument(
        "--adapt-rate", type=float, metavar="G",
        help="track that scalar at rate G (0: nearest nominal; default: the runs' recipe)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args(argv)


def recipe_fields(pairs: list[str]) -> dict:
    """``NAME=VALUE`` pairs as ForecastRecipe fields, each value of the field's default's type
    (a list: comma-separated integers)."""
    defaults = dataclasses.asdict(ForecastRecipe())
    out = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in defaults:
            raise SystemExit(f"--set {pair}: ForecastRecipe has no field {name!r}")
        default = defaults[name]
        if isinstance(default, bool):
            out[name] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float)):
            out[name] = type(default)(text)
        elif name == "lags":
            out[name] = [int(x) for x in text.split(",")]
        elif name == "split":
            out[name] = [x.strip() for x in text.split(",")]
        elif name == "patience":
            out[name] = int(text)
        else:
            out[name] = text
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        found = sorted(Path(args.table_from).glob("seed*.json"))
        pooled = Path(args.table_from, "ensemble.json")
        table(
            [json.loads(p.read_text()) for p in found],
            json.loads(pooled.read_text()) if pooled.is_file() else None,
        )
        return 0
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; torch threads {args.threads} per seed")
    print(f"load average before: {loadavg()}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}")
    if args.rescore:
        print(f"calibrating and scoring the runs of {args.rescore} again")
    elif args.refit:
        print(f"refitting the runs of {args.refit} ({args.refit_schedule} schedule), scoring them")
    else:
        print(f"budget: {args.minutes:g} min per seed ({'CPU' if args.cpu_time else 'wall-clock'})")
    recipe = ForecastRecipe(
        data=args.data, horizon=args.horizon, context=args.context,
        likelihood=args.likelihood, scaling=args.scaling, linear_lags=args.linear_lags,
        calibrate=args.calibrate, max_minutes=args.minutes, **recipe_fields(args.set),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rnnkit-forecast-") as tmp:
        out = Path(args.rescore or args.refit or args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        if args.rescore or args.refit:
            seeds = sorted(int(p.name[4:]) for p in out.glob("seed*") if p.is_dir())
            redo = rescore_seed if args.rescore else refit_seed
            work = (redo, [(out, s, args) for s in seeds])
        else:
            seeds = list(range(args.first_seed, args.first_seed + args.seeds))
            work = (run_seed, [(recipe, s, out, args) for s in seeds])
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
                runs = list(pool.map(work[0], *zip(*work[1])))
        else:
            runs = [work[0](*a) for a in work[1]]
        pooled = (
            ensemble(out, seeds, args.adapt_spread, args.adapt_rate) if len(seeds) > 1 else None
        )
    print(f"load average after: {loadavg()}")
    checks = table(runs, pooled)
    if args.json:
        record = {"runs": runs, "ensemble": pooled, "checks": checks}
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


def ensemble(
    out: Path, seeds: list[int], adapt: int | None = None, rate: float | None = None
) -> dict:
    """The test scores of the seeds' runs as one ensemble (their calibrated paths pooled);
    also written to ``out/ensemble.json``."""
    first, *others = (load(out / f"seed{s}") for s in seeds)
    scores = backtest(first, members=tuple(others), seed=0, adapt=adapt, rate=rate)
    scores = scores["methods"]["model"]
    (out / "ensemble.json").write_text(json.dumps(scores, indent=1))
    return scores


if __name__ == "__main__":
    raise SystemExit(main())
