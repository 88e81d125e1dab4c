"""Forecasting: a DeepAR-style recurrent network, probabilistic forecasts, backtests.

  rnnkit forecast train --out runs/temp --max-minutes 10      # default data: seattle-temps
  rnnkit forecast train --out runs/mine --data my.csv --horizon 48 --context 336
  rnnkit forecast predict runs/temp --quantiles 0.1,0.5,0.9 --plot forecast.png
  rnnkit forecast backtest runs/temp --baselines --plot backtest.png

CSV files: a time column and one column per series (wide), or series_id,time,value rows
(long); see docs/forecasting.md. A run directory holds config.json, model.safetensors (best
validation weights), last.safetensors (to resume), trainer.json, metrics.jsonl and loss.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from rnnkit.forecast.recipe import ForecastRecipe


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers, comma-separated: {text!r}"
        ) from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, comma-separated: {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    d = ForecastRecipe()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", default=d.data, help="dataset name or CSV file (default: %(default)s)"
    )
    data.add_argument(
        "--freq", default=d.freq, help="grid step, e.g. 1h, 30min, d (default: inferred)"
    )
    data.add_argument(
        "--covariates",
        type=_names,
        default=d.covariates,
        help="CSV columns known in advance, comma-separated",
    )
    data.add_argument(
        "--time-column",
        default=d.time_column,
        help="time column (default: time/date/... or the first)",
    )
    data.add_argument(
        "--id-column",
        default=d.id_column,
        help="long layout: series column (default: series_id/series/id)",
    )
    data.add_argument(
        "--target", default=d.target, help="long layout: value column (default: value/y/target)"
    )
    win = parser.add_argument_group("window")
    win.add_argument(
        "--horizon", type=int, default=d.horizon, help="steps to forecast (default: %(default)s)"
    )
    win.add_argument(
        "--context",
        type=int,
        default=d.context,
        help="steps read before the forecast (default: %(default)s)",
    )
    win.add_argument(
        "--lags",
        type=_ints,
        default=d.lags,
        help="lagged values, e.g. 1,24,168 (default: from the step)",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell", choices=["lstm", "gru"], default=d.cell, help="(default: %(default)s)"
    )
    model.add_argument(
        "--hidden", type=int, default=d.hidden_size, help="state size (default: %(default)s)"
    )
    model.add_argument("--layers", type=int, default=d.num_layers, help="(default: %(default)s)")
    model.add_argument("--dropout", type=float, default=d.dropout, help="(default: %(default)s)")
    model.add_argument(
        "--likelihood",
        choices=["gaussian", "student-t", "negbin"],
        default=d.likelihood,
        help="(default: %(default)s)",
    )
    model.add_argument(
        "--scaling",
        choices=["auto", "mean", "std"],
        default=d.scaling,
        help="(default: %(default)s)",
    )
    model.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=d.residual,
        help="locate each step's distribution from the previous value (default: %(default)s)",
    )
    model.add_argument(
        "--embedding",
        type=int,
        default=d.embedding_dim,
        help="series embedding size, several series (default: %(default)s)",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="windows per step (default: %(default)s)",
    )
    train.add_argument(
        "--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)"
    )
    train.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help="validate every N steps (default: %(default)s)",
    )
    train.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    train.add_argument("--epochs", type=int, help=f"epochs of {d.steps_per_epoch} steps")
    train.add_argument("--max-steps", type=int, help="optimizer steps")
    train.add_argument(
        "--max-minutes",
        type=float,
        help=f"wall-clock budget (default when no budget is given: {d.max_minutes:g})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def recipe_from_args(args: argparse.Namespace) -> ForecastRecipe:
    budget = {"epochs": args.epochs, "max_steps": args.max_steps, "max_minutes": args.max_minutes}
    if all(v is None for v in budget.values()):
        budget["max_minutes"] = ForecastRecipe().max_minutes
    return ForecastRecipe(
        data=args.data, freq=args.freq, covariates=args.covariates, time_column=args.time_column,
        id_column=args.id_column, target=args.target, horizon=args.horizon,
        context=args.context, lags=args.lags, cell=args.cell, hidden_size=args.hidden,
        num_layers=args.layers, dropout=args.dropout, likelihood=args.likelihood,
        scaling=args.scaling, residual=args.residual, embedding_dim=args.embedding,
        batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
        **budget,
    )  # fmt: skip


def _report(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False):
        return lambda message: None
    return lambda message: print(message, file=sys.stderr, flush=True)


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.forecast import api
    from rnnkit.training import TrainingInterrupted

    _threads(args)
    resume = args.resume is not None
    out = args.resume or args.out
    budget = {"epochs": args.epochs, "max_steps": args.max_steps, "max_minutes": args.max_minutes}
    budget = {k: v for k, v in budget.items() if v is not None}
    recipe = None if resume else recipe_from_args(args)
    try:
        result = api.train(
            out, recipe=recipe, resume=resume, budget=budget, quiet=args.quiet, report=_report(args)
        )
    except TrainingInterrupted as exc:  # fmt: skip
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 130
    summary = f"done: {result.steps} steps in {result.elapsed_s / 60:.1f} min"
    if result.best_valid_loss is not None:
        summary += f"; best validation NLL {result.best_valid_loss:.4f} nats per value"
    print(summary)
    print(f"run saved in {out}; try: rnnkit forecast backtest {out} --baselines")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rnnkit.forecast import api

    _threads(args)
    fc = api.load(args.run_dir)
    result = api.predict(
        fc, data=args.data, horizon=args.horizon, quantiles=args.quantiles,
        num_samples=args.samples, seed=args.seed,
    )  # fmt: skip
    if args.plot:
        from rnnkit.forecast.plots import plot_forecast

        plot_forecast(result, args.plot)
    keys = [str(q) for q in args.quantiles]
    if args.json:
        slim = [
            {k: v for k, v in s.items() if k not in ("history", "bands")} for s in result["series"]
        ]
        print(json.dumps({**result, "series": slim}))
        return 0
    rows = [
        [s["name"], t, f"{s['mean'][h]:.6g}", *(f"{s['quantiles'][k][h]:.6g}" for k in keys)]
        for s in result["series"]
        for h, t in enumerate(s["times"])
    ]  # fmt: skip
    header = ["series", "time", "mean", *(f"q{k}" for k in keys)]
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerows([header, *rows])
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if args.plot:
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from rnnkit.forecast import api

    _threads(args)
    fc = api.load(args.run_dir)
    result = api.backtest(
        fc, data=args.data, baselines=args.baselines, num_samples=args.samples, seed=args.seed,
        baseline_history=args.baseline_history, quiet=args.quiet, report=_report(args),
    )  # fmt: skip
    if args.plot:
        from rnnkit.forecast.plots import plot_backtest

        plot_backtest(result, args.plot)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}))
        return 0
    print(
        f"{result['data']}: {result['origins']} origins from {result['first_origin']}, "
        f"{result['horizon']} steps each"
    )
    cols = ["mae", "rmse", "mase", "smape", "crps", "coverage_80", "coverage_95"]
    print(f"{'method':16}" + "".join(f"{c:>13}" for c in cols))
    for name, m in result["methods"].items():
        print(f"{name:16}" + "".join(f"{m[c]:13.4f}" for c in cols))
    if args.plot:
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser("train", help="train a forecaster into a run directory")
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="new run directory")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    d = ForecastRecipe()
    pred = sub.add_parser("predict", help="forecast after the last value of each series")
    pred.add_argument("run_dir", metavar="RUN_DIR")
    pred.add_argument("--data", help="CSV file to forecast (default: the run's own data)")
    pred.add_argument(
        "--horizon", type=int, help="steps to forecast (default: the trained horizon)"
    )
    pred.add_argument(
        "--quantiles",
        type=_floats,
        default=(0.1, 0.5, 0.9),
        help="comma-separated (default: 0.1,0.5,0.9)",
    )
    pred.add_argument(
        "--samples", type=int, default=d.num_samples, help="sample paths (default: %(default)s)"
    )
    pred.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    fmt = pred.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV rows")
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    pred.add_argument("--plot", metavar="PNG", help="draw history, median and 80%%/95%% bands")
    pred.add_argument("--threads", type=int, help="torch CPU threads")
    pred.set_defaults(func=cmd_predict)

    back = sub.add_parser("backtest", help="rolling-origin evaluation over the test period")
    back.add_argument("run_dir", metavar="RUN_DIR")
    back.add_argument("--data", help="other data on the same grid (default: the run's own)")
    back.add_argument(
        "--baselines",
        action="store_true",
        help="also seasonal naive, Holt-Winters, ARIMA (statsmodels)",
    )
    back.add_argument(
        "--baseline-history", type=int, help="steps the baselines fit on (default: the context)"
    )
    back.add_argument(
        "--samples", type=int, default=d.num_samples, help="sample paths (default: %(default)s)"
    )
    back.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    back.add_argument("--json", action="store_true", help="print one JSON object")
    back.add_argument("--plot", metavar="PNG", help="draw a few origins and the MAE per step")
    back.add_argument("--quiet", action="store_true", help="no progress lines")
    back.add_argument("--threads", type=int, help="torch CPU threads")
    back.set_defaults(func=cmd_backtest)
