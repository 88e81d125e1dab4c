"""Forecasting: a DeepAR-style recurrent network, probabilistic forecasts, backtests.

  rnnkit forecast train --out runs/temp --max-minutes 10      # default data: seattle-temps
  rnnkit forecast train --out runs/mine --data my.csv --horizon 48 --context 336
  rnnkit forecast predict runs/temp --quantiles 0.1,0.5,0.9 --plot forecast.png
  rnnkit forecast backtest runs/temp --baselines --plot backtest.png

CSV files: a time column and one column per series (wide), or series_id,time,value rows
(long); see docs/forecasting.md. A run directory holds config.json, model.safetensors (best
validation weights), last.safetensors (to resume), trainer.json, metrics.jsonl and loss.png,
and refit/: the run trained anew on training + validation that forecasts (--no-refit: none).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from rnnkit.forecast.recipe import ForecastRecipe
from rnnkit.options import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    add_budget_arguments,
    add_command,
    add_ema_argument,
    add_encoding_argument,
    add_force_argument,
    add_process_arguments,
    add_run_location,
    add_runtime_arguments,
    launched,
    recipe_budget,
    reporter,
    resume_changes,
    runtime_of,
    set_threads,
)


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
    data.add_argument("--data", default=d.data, help="dataset name or CSV file")
    add_encoding_argument(data, "a --data CSV file", default=d.encoding)
    data.add_argument(
        "--freq", default=d.freq, help="grid step, e.g. 1h, 30min, d (default: inferred)"
    )
    data.add_argument(
        "--covariates",
        type=_names,
        help="CSV columns known in advance, comma-separated (default: none)",
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
    win.add_argument("--horizon", type=POSITIVE, default=d.horizon, help="steps to forecast")
    win.add_argument(
        "--context",
        type=POSITIVE,
        default=d.context,
        help="steps read before the forecast",
    )
    win.add_argument(
        "--lags",
        type=_ints,
        default=d.lags,
        help="lagged values, e.g. 1,24,168 (default: from the step)",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=["lstm", "gru"], default=d.cell, help="recurrent layer")
    model.add_argument("--hidden", type=POSITIVE, default=d.hidden_size, help="state size")
    model.add_argument("--layers", type=POSITIVE, default=d.num_layers, help="recurrent layers")
    model.add_argument("--dropout", type=PROBABILITY, default=d.dropout, help="between layers")
    model.add_argument(
        "--likelihood",
        choices=["gaussian", "student-t", "negbin"],
        default=d.likelihood,
        help="distribution of each value (negbin: counts)",
    )
    model.add_argument(
        "--scaling",
        choices=["auto", "mean", "std"],
        default=d.scaling,
        help="per-window scaling; auto: std, mean for negbin",
    )
    model.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=d.residual,
        help="locate each step's distribution from the previous value",
    )
    model.add_argument(
        "--linear-lags",
        action=argparse.BooleanOptionalAction,
        default=d.linear_lags,
        help="add a linear autoregression on the lags to each step's location",
    )
    model.add_argument(
        "--embedding",
        type=POSITIVE,
        default=d.embedding_dim,
        help="series embedding size, several series",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--free-running",
        action=argparse.BooleanOptionalAction,
        default=d.free_running,
        help="score the horizon on the model's own draws (as it forecasts), not the true values",
    )
    train.add_argument(
        "--batch-size",
        type=POSITIVE,
        default=d.batch_size,
        help="windows per step",
    )
    train.add_argument("--lr", type=POSITIVE_NUMBER, default=d.lr, help="peak learning rate")
    add_ema_argument(train, d.ema)
    train.add_argument(
        "--eval-every",
        type=NON_NEGATIVE,
        default=d.eval_every,
        help="validate every N steps",
    )
    train.add_argument("--seed", type=SEED, default=d.seed, help="weights and window draws")
    train.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=d.calibrate,
        help="after training, widen the paths by a factor per step with the lowest validation CRPS",
    )
    train.add_argument(
        "--adapt-spread",
        type=NON_NEGATIVE,
        default=d.adapt_spread,
        metavar="N",
        help="forecast with the spread times one scalar per origin, the one whose 80%%/95%% "
        "intervals covered nearest nominal over the N forecasts one horizon apart before it "
        "(0: off)",
    )
    train.add_argument(
        "--adapt-rate",
        type=PROBABILITY,
        default=d.adapt_rate,
        metavar="G",
        help="with --adapt-spread: track the scalar over those forecasts with an "
        "adaptive-conformal controller of this rate (0: the scalar nearest nominal)",
    )
    train.add_argument(
        "--adapt-unseen",
        action=argparse.BooleanOptionalAction,
        default=d.adapt_unseen,
        help="with --adapt-spread: only the earlier forecasts the model did not train on count "
        "(after the refit's training, else from the validation period)",
    )
    train.add_argument(
        "--patience",
        type=POSITIVE,
        default=d.patience,
        help="stop after N validations without a new best (default: train the whole budget)",
    )
    train.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=d.refit,
        help="then train anew on training + validation for the best checkpoint's steps "
        "(into RUN/refit), and forecast with that",
    )
    train.add_argument(
        "--refit-schedule",
        choices=["same", "anneal"],
        default=d.refit_schedule,
        help="the refit's learning rate: the first stage's step for step, or a full decay",
    )
    data.add_argument(
        "--split",
        type=_names,
        default=d.split,
        metavar="VALID_TIME,TEST_TIME",
        help="where validation and test start (default: at 80%% and 90%% of the time grid)",
    )
    add_budget_arguments(train, d)
    add_process_arguments(parser)
    add_runtime_arguments(parser)


def recipe_from_args(args: argparse.Namespace) -> ForecastRecipe:
    budget = recipe_budget(args, ForecastRecipe())
    return ForecastRecipe(
        data=args.data, encoding=args.encoding, freq=args.freq, covariates=args.covariates or [],
        time_column=args.time_column, id_column=args.id_column, target=args.target,
        horizon=args.horizon, context=args.context, lags=args.lags, cell=args.cell,
        hidden_size=args.hidden, num_layers=args.layers, dropout=args.dropout,
        likelihood=args.likelihood, scaling=args.scaling, residual=args.residual,
        linear_lags=args.linear_lags,
        embedding_dim=args.embedding, batch_size=args.batch_size, lr=args.lr, ema=args.ema,
        eval_every=args.eval_every, seed=args.seed, free_running=args.free_running,
        calibrate=args.calibrate, split=args.split, patience=args.patience, refit=args.refit,
        refit_schedule=args.refit_schedule, adapt_spread=args.adapt_spread,
        adapt_rate=args.adapt_rate, adapt_unseen=args.adapt_unseen,
        **budget,
    )  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.forecast import api

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    resume = args.resume is not None
    out = args.resume or args.out
    recipe = None if resume else recipe_from_args(args)
    result = api.train(
        out, recipe=recipe, resume=resume, budget=resume_changes(args), quiet=args.quiet,
        report=reporter(args), runtime=runtime_of(args),
    )  # fmt: skip
    summary = f"done: {result.steps} steps in {result.elapsed_s / 60:.1f} min"
    if os.path.isfile(os.path.join(out, "refit", "config.json")):
        summary = (
            f"done: the refit, {result.steps} steps on training + validation in "
            f"{result.elapsed_s / 60:.1f} min ({os.path.join(out, 'refit')}; the first stage: "
            f"{os.path.join(out, 'trainer.json')})"
        )
    elif result.best_valid_loss is not None:
        summary += f"; best validation NLL {result.best_valid_loss:.4f} nats per value"
    print(summary)
    print(f"run saved in {out}; try: rnnkit forecast backtest {out} --baselines")
    return 0


def _check_plot(args: argparse.Namespace) -> None:
    """Refuse a ``--plot`` that would replace an input or a file rnnkit did not draw, before any
    work (:func:`rnnkit.plots.check_image_output`)."""
    if args.plot:
        from rnnkit.plots import check_image_output

        check_image_output(
            args.plot, inputs=[args.data] if args.data else [], force=args.force, option="--plot"
        )


def cmd_predict(args: argparse.Namespace) -> int:
    from rnnkit.forecast import api

    set_threads(args)
    _check_plot(args)
    fc = api.load(args.run_dir, runtime=runtime_of(args))
    result = api.predict(
        fc, data=args.data, encoding=args.encoding, horizon=args.horizon, quantiles=args.quantiles,
        num_samples=args.samples, seed=args.seed, adapt=args.adapt_spread,
        rate=args.adapt_rate,
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

    set_threads(args)
    _check_plot(args)
    fc = api.load(args.run_dir, runtime=runtime_of(args), first_stage=args.first_stage)
    result = api.backtest(
        fc, data=args.data, encoding=args.encoding, baselines=args.baselines,
        num_samples=args.samples, seed=args.seed, baseline_history=args.baseline_history,
        period=args.period, quiet=args.quiet, report=reporter(args), adapt=args.adapt_spread,
        rate=args.adapt_rate,
    )  # fmt: skip
    if args.plot:
        from rnnkit.forecast.plots import plot_backtest

        plot_backtest(result, args.plot)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}))
        return 0
    print(
        f"{result['data']}: {result['origins']} origins from {result['first_origin']} "
        f"({result['period']} period), {result['horizon']} steps each; "
        f"{api.spread_text(fc.spread)}"
        + (
            ", times a scalar per origin "
            + (
                f"tracked at rate {result['adapt_rate']:g} over"
                if result["adapt_rate"]
                else "fitted to"
            )
            + f" the coverage of the last {result['adapt_spread']} forecasts"
            + (" it did not train on" if result["adapt_unseen"] else "")
            + f" (geometric mean {result['spread_scale_mean']:.3f})"
            if result["adapt_spread"]
            else ""
        )
    )
    cols = ["mae", "rmse", "mase", "smape", "crps", "coverage_80", "coverage_95"]
    print(f"{'method':16}" + "".join(f"{c:>13}" for c in cols))
    for name, m in result["methods"].items():
        print(f"{name:16}" + "".join(f"{m[c]:13.4f}" for c in cols))
    if args.plot:
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0


def add_sampling_arguments(p: argparse.ArgumentParser, d: ForecastRecipe) -> None:
    """How ``predict`` and ``backtest`` draw their sample paths (the same options in both)."""
    p.add_argument("--samples", type=POSITIVE, default=d.num_samples, help="sample paths")
    p.add_argument("--seed", type=SEED, default=0, help="sampling seed")
    p.add_argument(
        "--adapt-spread",
        type=NON_NEGATIVE,
        metavar="N",
        help="the recent-coverage scalar over N earlier forecasts (default: the run's; 0: off)",
    )
    p.add_argument(
        "--adapt-rate", type=PROBABILITY, metavar="G",
        help="track that scalar at rate G (adaptive conformal; default: the run's; 0: the "
        "scalar nearest nominal)",
    )  # fmt: skip


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = add_command(commands, "train", "train a forecaster into a run directory", cmd_train)
    add_run_location(train)
    add_train_arguments(train)

    d = ForecastRecipe()
    pred = add_command(
        commands, "predict", "forecast after the last value of each series", cmd_predict
    )
    pred.add_argument("run_dir", metavar="RUN_DIR")
    pred.add_argument("--data", help="CSV file to forecast (default: the run's own data)")
    add_encoding_argument(pred, "--data")
    pred.add_argument("--horizon", type=POSITIVE, help="steps to forecast (default: as trained)")
    pred.add_argument("--quantiles", type=_floats, default="0.1,0.5,0.9", help="comma-separated")
    add_sampling_arguments(pred, d)
    fmt = pred.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV rows")
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    pred.add_argument("--plot", metavar="PNG", help="draw history, median and 80%%/95%% bands")
    add_force_argument(pred)
    add_process_arguments(pred)
    add_runtime_arguments(pred, launch=False)

    back = add_command(
        commands, "backtest", "rolling-origin evaluation over the test period", cmd_backtest
    )
    back.add_argument("run_dir", metavar="RUN_DIR")
    back.add_argument("--data", help="other data on the same grid (default: the run's own)")
    add_encoding_argument(back, "--data")
    back.add_argument(
        "--baselines", action="store_true",
        help="also seasonal naive, Holt-Winters, ARIMA (pip install 'rnnkit[forecast]')",
    )  # fmt: skip
    back.add_argument(
        "--baseline-history",
        type=POSITIVE,
        help="steps the baselines fit on (default: the context, a week at least for sub-daily)",
    )
    add_sampling_arguments(back, d)
    back.add_argument(
        "--period", choices=["test", "valid"], default="test",
        help="the origins: the test period, or the validation period (to choose settings)",
    )  # fmt: skip
    back.add_argument(
        "--first-stage", action="store_true",
        help="a run trained with --refit: score its first stage instead of the refit",
    )  # fmt: skip
    back.add_argument("--json", action="store_true", help="print one JSON object")
    back.add_argument("--plot", metavar="PNG", help="draw a few origins and the MAE per step")
    add_force_argument(back)
    add_process_arguments(back)
    add_runtime_arguments(back, launch=False)
