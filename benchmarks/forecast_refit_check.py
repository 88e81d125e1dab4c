"""Should a forecaster be refitted on its validation period? A nested check that never looks
at the test period.

The real validation period plays the test period: the data are cut at the start of the test
period, the as many steps before the validation period become a pseudo-validation period
(``ForecastRecipe.split``), and for each seed

1. the recipe trains on what is left (its first stage), its best checkpoint chosen on the
   pseudo-validation period (and its spread per step calibrated there);
2. ``refit`` trains anew on training + pseudo-validation for that many steps, with the first
   stage's learning rate step for step ("same") and/or, from the same first stage, with a full
   decay ("anneal") (``--schedules``);

and the three forecasters are backtested on the real validation period (24 hours from every
midnight), each with the first stage's calibrated spread and as trained (spread 1).

    python benchmarks/forecast_refit_check.py --minutes 10 --cpu-time --seeds 2 --jobs 2 \\
        --set patience=10 --out bench/refit_check
    python benchmarks/forecast_refit_check.py ... --resume --schedules anneal  # go on

``--score-from TIME`` makes another replica earlier in the data: the scored period (as long as
the real validation period) starts at TIME, the data are cut at its end, and the
pseudo-validation period is as long again before it (``--score-from 2010-07-16`` on the
default data: first stage to 2010-06-09 12:00, refit to 2010-07-16, scored to 2010-08-21 12:00).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from forecast import COLUMNS, recipe_fields  # benchmarks/forecast.py
from lm import load as loadavg
from rnnkit import runs
from rnnkit.forecast import ForecastRecipe, backtest, load, train
from rnnkit.forecast.api import read_data, refit
from rnnkit.forecast.data import parse_time
from rnnkit.forecast.refit import REFIT
from rnnkit.forecast.task import TASK


def truncated_csv(
    recipe: ForecastRecipe, out: Path, score_from: str | None = None
) -> tuple[Path, list[str]]:
    """The recipe's data cut at the start of its test period, as a wide CSV in ``out``, and
    the split that makes as many steps before the validation period validate; with
    ``score_from`` (a time), the scored period starts there instead (as long as the real
    validation period) and the data are cut at its end."""
    data = read_data(recipe)
    valid_start, test_start = data.cuts()
    if score_from is not None:
        length = test_start - valid_start
        seconds = (parse_time(score_from, "--score-from") - data.start).total_seconds()
        valid_start = int(seconds // data.step)
        test_start = valid_start + length
        if seconds % data.step or not 2 * length <= valid_start <= data.length - length:
            raise SystemExit(f"--score-from {score_from}: not on the grid, or too near an end")
    path = out / "until-test.csv"
    lines = ["time," + ",".join(s.name for s in data.series)]
    for k in range(test_start):
        cells = []
        for s in data.series:
            i = k - s.offset
            v = s.values[i] if 0 <= i < len(s.values) else float("nan")
            cells.append("" if v != v else repr(float(v)))
        lines.append(data.time_at(k).strftime("%Y-%m-%d %H:%M") + "," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    pseudo = valid_start - (test_start - valid_start)
    fmt = lambda k: data.time_at(k).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return path, [fmt(pseudo), fmt(valid_start)]


def run_seed(recipe: ForecastRecipe, seed: int, out: Path, args: argparse.Namespace) -> dict:
    """Train (or, with ``--resume``, continue) the seed's first stage and refit(s); score them."""
    torch.set_num_threads(args.threads)
    run = out / f"seed{seed}"
    clock = time.process_time if args.cpu_time else time.monotonic
    started = time.process_time()
    if args.resume:  # the first stage does not depend on the refit's schedule: set it, go on
        first = runs.RunDir.open(run, TASK)
        config = first.read_config()
        config["recipe"]["refit_schedule"] = args.schedules[0]
        first.write_config(config)
        train(run, resume=True, clock=clock)
    else:
        recipe = dataclasses.replace(recipe, seed=seed, refit_schedule=args.schedules[0])
        train(run, recipe=recipe, clock=clock)
    refits = {}
    for schedule in args.schedules:
        if schedule != args.schedules[0]:
            refit(run, schedule=schedule, clock=clock)  # the same first stage, another schedule
        shutil.move(run / REFIT, run / f"refit-{schedule}")
        refits[f"refit, {schedule} schedule"] = load(run / f"refit-{schedule}")
    record = {"seed": seed, "cpu_s": time.process_time() - started}
    summary = runs.RunDir.open(run, TASK).read_json(runs.SUMMARY)
    record["first_stage"] = {
        k: summary[k] for k in ("step", "best_step", "best_valid_loss", "elapsed_s")
    }  # fmt: skip
    forecasters = {"first stage (no refit)": load(run, first_stage=True), **refits}
    record["methods"] = {}
    for name, f in forecasters.items():
        calibrated = backtest(f, seed=seed)  # the truncated data's test period: real validation
        raw = backtest(f, seed=seed, spread=1.0)
        record["methods"][name] = calibrated["methods"]["model"]
        record["methods"][name + ", spread 1"] = raw["methods"]["model"]
        record["first_origin"] = calibrated["first_origin"]
        record["origins"] = calibrated["origins"]
    (out / f"seed{seed}.json").write_text(json.dumps(record, indent=1))
    print(
        f"seed {seed}: {json.dumps(record['first_stage'])}, {record['cpu_s']:.0f} CPU s; "
        f"load {loadavg()}",
        flush=True,
    )
    return record


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g}+-{statistics.stdev(values):.2g}"


def table(records: list[dict]) -> None:
    first = records[0]
    print(
        f"\nreal validation period: {first['origins']} origins from {first['first_origin']}; "
        f"{len(records)} seed(s)"
    )
    for r in records:
        print(f"  seed {r['seed']}: first stage {r['first_stage']}, {r['cpu_s'] / 60:.1f} CPU min")
    print(f"{'method':34}" + "".join(f" {c:>16}" for c in COLUMNS))  # a space: never run together
    for name in first["methods"]:
        values = {c: [r["methods"][name][c] for r in records] for c in COLUMNS}
        print(f"{name:34}" + "".join(f" {fmt(values[c]):>16}" for c in COLUMNS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--schedules", type=lambda t: t.split(","), default=["same", "anneal"],
        help="the refit schedules to compare, comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted first stages in --out"
    )
    parser.add_argument("--table-from", action="store_true", help="only print the table")
    parser.add_argument(
        "--score-from", metavar="TIME",
        help="another replica: the scored period starts at TIME (default: the real validation "
        "period's start)",
    )  # fmt: skip
    args = parser.parse_args()
    out = Path(args.out)
    if args.table_from:
        table([json.loads(p.read_text()) for p in sorted(out.glob("seed*.json"))])
        return 0
    out.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, torch threads {args.threads}; load before {loadavg()}")
    base = ForecastRecipe(max_minutes=args.minutes, **recipe_fields(args.set))
    path, split = truncated_csv(base, out, args.score_from)
    recipe = dataclasses.replace(base, data=str(path.resolve()), split=split, refit=True)
    print(
        f"data until the test period: {path}; pseudo-validation from {split[0]}, "
        f"real validation (scored) from {split[1]}"
    )
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    work = [(recipe, s, out, args) for s in seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            records = list(pool.map(run_seed, *zip(*work)))
    else:
        records = [run_seed(*w) for w in work]
    print(f"load after {loadavg()}")
    table(records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
