"""Forecasting end to end: train a DeepAR-style model, load it, predict, backtest. The Python
face of ``rnnkit forecast``.

Example (a short run on the default data, then a forecast and a backtest)::

    from rnnkit.forecast import ForecastRecipe, backtest, load, predict, train

    train("runs/temp", recipe=ForecastRecipe(max_minutes=2))
    model = load("runs/temp")
    result = predict(model, quantiles=(0.1, 0.5, 0.9))   # after the last value of each series
    scores = backtest(model, baselines=True)              # rolling origin over the test period
    print(scores["methods"]["model"]["mase"], scores["methods"]["seasonal-naive"]["mase"])

A run directory (see :mod:`rnnkit.training` for the files the trainer writes) also holds
``config.json``: ``{"recipe", "model", "train", "data"}``, where ``data`` records the series,
grid step, covariate statistics and a digest of the values, so a resumed run refuses changed data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from rnnkit import runs
from rnnkit.errors import ConfigError, DataError, RunDirError
from rnnkit.forecast.baselines import BASELINES
from rnnkit.forecast.calibration import (
    crps_by_factor,
    fit_step_spread,
    recent_coverage_scale,
    tracked_scale,
    widen_paths,
)
from rnnkit.forecast.data import (
    DAY,
    WEEK,
    SeriesSet,
    check_series,
    format_freq,
    load_series,
    parse_time,
    set_split,
)  # fmt: skip
from rnnkit.forecast.metrics import SampleForecast, Scores, seasonal_error
from rnnkit.forecast.model import DeepAR, ForecastConfig
from rnnkit.forecast.recipe import ForecastRecipe, default_lags
from rnnkit.forecast.refit import REFIT, best_checkpoint, refit_config, refit_section
from rnnkit.forecast.snapshots import SnapshotKeeper, read_members, split_samples
from rnnkit.forecast.task import TASK, ForecastTask, Windows, covariate_stats
from rnnkit.training import Runtime, TrainConfig, TrainResult, config_dict, fit
from rnnkit.training.distributed import Group, place, rank_zero_first, to_device

logger = logging.getLogger(__name__)
EVAL_BATCH = 32  # origins sampled together (times num_samples paths)
CALIBRATION = "calibration.json"  # the spread per step chosen on the validation period
Spread = float | tuple[float, ...]  # a factor on every step's draws, or one per step after them


class Forecaster(NamedTuple):
    """A trained model with what it needs to forecast."""

    model: DeepAR
    recipe: ForecastRecipe
    config: dict[str, Any]  # the run's config.json
    run_dir: str
    spread: Spread = 1.0  # the spread of the paths (calibration.json; see _sample)
    place: Group | None = None  # the model's device and precision (None: the CPU, fp32)
    members: tuple[DeepAR, ...] = ()  # more checkpoints of the run, paths pooled (snapshots)


def read_data(
    recipe: ForecastRecipe, data: str | None = None, encoding: str = "utf-8"
) -> SeriesSet:
    """The series of ``data`` in ``encoding`` (default: the recipe's data, in the recipe's
    encoding), read with the recipe's column options and split where the recipe says."""
    series = load_series(
        data or recipe.data, freq=recipe.freq, covariates=tuple(recipe.covariates),
        time_column=recipe.time_column, id_column=recipe.id_column, target=recipe.target,
        encoding=encoding if data else recipe.encoding,
    )  # fmt: skip
    return set_split(series, recipe.split)


def data_digest(data: SeriesSet) -> str:
    """sha256 over the series' names, values and covariates (detects changed data)."""
    digest = hashlib.sha256()
    for s in data.series:
        digest.update(s.name.encode() + s.values.tobytes() + s.covariates.tobytes())
    return digest.hexdigest()


def check_counts(data: SeriesSet) -> None:
    """The negative binomial needs non-negative whole numbers; name the first series without."""
    for s in data.series:
        v = s.values[~np.isnan(s.values)]
        if (v < 0).any() or (v != np.round(v)).any():
            raise DataError(
                f"series {s.name!r} has values that are not counts (non-negative whole "
                "numbers); use --likelihood student-t or gaussian"
            )


def _windows(data: SeriesSet, config: ForecastConfig, recipe: ForecastRecipe, stats: Any) -> Any:
    return Windows(
        data, max_lag=config.max_lag, context=recipe.context, horizon=recipe.horizon,
        cov_stats=stats,
    )  # fmt: skip


def train(
    out: str | os.PathLike,
    *,
    recipe: ForecastRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[Any], None] | None = None,
) -> TrainResult:
    """Train a forecaster into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing forecast run with ``resume``).
        recipe: data, window, model and training settings (ignored when resuming).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bar.
        report: receives one-line progress messages.
        runtime: device, precision (see docs/distributed.md); under torchrun every rank calls
            this with the same arguments (rank 0 fetches a named series, the others read it).
        clock: the seconds counter of the time budget (``time.process_time``: CPU time, for
            comparisons on a busy machine).
        on_step: called as ``on_step(trainer)`` after every optimizer step (benchmarks, tools;
            see :func:`rnnkit.training.fit`).
    """
    report = report or logger.info
    if resume:
        run, config = runs.resume(out, TASK, budget)
        recipe = runs.build(run, config, "recipe", lambda d: ForecastRecipe(**d))
        model_config = runs.build(run, config, "model", ForecastConfig.from_dict)
        train_config = runs.build(run, config, "train", TrainConfig.from_dict)
        with rank_zero_first():
            data = read_data(recipe)
        if data_digest(data) != config["data"]["sha256"]:
            raise DataError(
                f"the data of {recipe.data} changed since the run started; cannot resume"
            )
        stats = config["data"]["covariate_stats"]
    else:
        recipe = recipe or ForecastRecipe()
        train_config = recipe.train_config()
        with rank_zero_first():
            data = read_data(recipe)
        check_series(data, context=recipe.context, horizon=recipe.horizon)
        if recipe.likelihood == "negbin":
            check_counts(data)
        stats = covariate_stats(data, data.cuts()[0])
        model_config = ForecastConfig(
            lags=list(recipe.lags or default_lags(data.step)),
            num_features=data.features(data.series[0]).shape[1],
            num_series=len(data.series),
            embedding_dim=recipe.embedding_dim if len(data.series) > 1 else 0,
            cell=recipe.cell, hidden_size=recipe.hidden_size, num_layers=recipe.num_layers,
            dropout=recipe.dropout, likelihood=recipe.likelihood,
            scaling=recipe.model_scaling(), residual=recipe.residual,
            linear_lags=recipe.model_linear_lags(), impl=recipe.impl,
        )  # fmt: skip
    windows = _windows(data, model_config, recipe, stats)
    task = ForecastTask(
        windows, batch_size=recipe.batch_size, steps_per_epoch=recipe.steps_per_epoch,
        seed=train_config.seed, free_running=recipe.free_running,
    )  # fmt: skip
    if not resume:  # (a resumed run's new budget is written by the trainer once it has resumed)
        source = recipe.data if not os.path.exists(recipe.data) else os.path.abspath(recipe.data)
        run = runs.start(
            out, TASK, recipe={**asdict(recipe), "data": source}, model=model_config.to_dict(),
            train=config_dict(train_config),
            data={
                "sha256": data_digest(data),
                "step_s": data.step,
                "series": [s.name for s in data.series],
                "covariates": data.covariate_names,
                "covariate_stats": stats,
                "missing": data.missing,
                "gaps": data.gaps,
            },
        )  # fmt: skip
        report(
            f"{data.source}: {len(data.series)} series, step {format_freq(data.step)}, "
            f"{data.length} steps; {data.missing} missing values ({data.gaps} gaps in the time "
            "column) interpolated as inputs and left out of the loss"
        )
    build = lambda: DeepAR(model_config)  # noqa: E731
    if recipe.snapshots > 1:
        keeper = SnapshotKeeper(run, recipe.snapshots, train_config.eval_every)
        on_step = _chain(keeper, on_step)
    result = fit(run, task, train_config, build, resume=resume, quiet=quiet, report=report,
                 runtime=runtime, clock=clock, on_step=on_step)  # fmt: skip
    if recipe.calibrate and model_config.likelihood != "negbin" and runs.writes_runs():
        recalibrate(out, seed=train_config.seed, report=report)
    if recipe.refit:
        result = refit(out, quiet=quiet, report=report, runtime=runtime, clock=clock,
                       on_step=on_step)  # fmt: skip
    return result


def refit(
    run_dir: str | os.PathLike,
    *,
    schedule: str | None = None,
    holdout: int = 0,
    into: str = REFIT,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[Any], None] | None = None,
) -> TrainResult:
    """Train the refit of the trained run ``run_dir`` into ``run_dir/refit`` (see
    :mod:`.refit`): anew, on training + validation, for the steps of its best checkpoint;
    ``train`` does this at the end with ``ForecastRecipe.refit``. An earlier refit there is
    replaced; from then on :func:`load` gives the refit.

    Args:
        schedule: "same" or "anneal" (default: the recipe's ``refit_schedule``).
        holdout: train only on the windows that end ``holdout`` steps before the test period
            (a refit whose last steps before it are out of sample; 0: all of them).
        into: the refit's directory inside ``run_dir`` (another name than ``refit``: a refit
            that :func:`load` does not use).
        quiet, report, runtime, clock, on_step: as for :func:`train`.
    """
    report = report or logger.info
    first, config = runs.load(run_dir, TASK)
    recipe = runs.build(first, config, "recipe", lambda d: ForecastRecipe(**d))
    if schedule is not None:
        recipe = replace(recipe, refit_schedule=schedule)
    model_config = runs.build(first, config, "model", ForecastConfig.from_dict)
    with rank_zero_first():
        data = read_data(recipe)
    if data_digest(data) != config["data"]["sha256"]:
        raise DataError(
            f"the data of {recipe.data} changed since the run was trained; cannot refit"
        )
    stats = config["data"]["covariate_stats"]
    step, elapsed_s = best_checkpoint(first)
    first_train = runs.build(first, config, "train", TrainConfig.from_dict)
    train_config, length = refit_config(
        first_train, schedule=recipe.refit_schedule, step=step, elapsed_s=elapsed_s,
        per_epoch=recipe.steps_per_epoch,
    )  # fmt: skip
    valid_start, test_start = data.cuts()
    if not 0 <= holdout < test_start - valid_start:
        raise ConfigError(
            f"holdout must be >= 0 and shorter than the validation period "
            f"({test_start - valid_start} steps), got {holdout}"
        )
    test_start -= holdout
    task = ForecastTask(
        _windows(data, model_config, recipe, stats), batch_size=recipe.batch_size,
        steps_per_epoch=recipe.steps_per_epoch, seed=train_config.seed,
        free_running=recipe.free_running, train_until=test_start,
    )  # fmt: skip
    path = Path(run_dir) / into
    if runs.writes_runs() and (path / runs.MANIFEST).is_file():
        shutil.rmtree(path)  # the refit of an earlier session (a resumed first stage)
    until = data.time_at(test_start).isoformat()
    run = runs.start(
        path, TASK, recipe={**config["recipe"], "refit": False}, model=config["model"],
        train=config_dict(train_config), data=config["data"],
        refit=refit_section(recipe, step, length, until),
    )  # fmt: skip
    report(
        f"refit: {step} steps (the best checkpoint's) on training + validation, until {until}; "
        + (f"the first stage's schedule of {length} steps" if length else "a full decay")
    )
    build = lambda: DeepAR(model_config)  # noqa: E731
    result = fit(run, task, train_config, build, quiet=quiet, report=report, runtime=runtime,
                 clock=clock, on_step=on_step)  # fmt: skip
    if first.has(CALIBRATION) and runs.writes_runs():  # chosen before the refit saw validation
        run.write_json(CALIBRATION, first.read_json(CALIBRATION))
    return result


def _chain(first: Callable[[Any], None], then: Callable[[Any], None] | None) -> Any:
    """One ``on_step`` hook calling ``first`` and then ``then`` (if any)."""

    def both(trainer: Any) -> None:
        first(trainer)
        if then is not None:
            then(trainer)

    return both


def recalibrate(
    run_dir: str | os.PathLike, *, seed: int = 0, report: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Choose the spread per step of a trained run (:func:`calibrate`) and store it in its
    ``calibration.json`` (``train`` does this at the end); returns what was stored."""
    report = report or logger.info
    run, _ = runs.load(run_dir, TASK)
    chosen = calibrate(load(run_dir, first_stage=True), seed=seed)
    run.write_json(CALIBRATION, chosen)
    if (Path(run_dir) / REFIT / runs.MANIFEST).is_file():  # a refit forecasts with them too
        runs.RunDir.open(Path(run_dir) / REFIT, TASK).write_json(CALIBRATION, chosen)
    crps = chosen["valid_crps"]
    report(
        f"{spread_text(tuple(chosen['spread']))}: validation CRPS {crps['calibrated']:.4g} "
        f"({crps['as trained']:.4g} as trained) over {chosen['origins']} origins"
    )
    return chosen


def calibrate(fc: Forecaster, *, seed: int = 0) -> dict[str, Any]:
    """The spread factor per horizon step (see :mod:`.calibration`), chosen on the validation
    period's origins every :func:`calibration_stride` steps (at every hour of the day, not only
    at midnight, so the choice rests on many origins), and what it gave there: returns the
    contents of ``calibration.json``.

    The paths are drawn as trained (spread 1) and widened about their median per step; the
    choice looks at the validation period only, never the test period.
    """
    series, windows = _prepare(fc, None, fc.recipe.horizon)
    valid_start, test_start = series.cuts()
    stride = calibration_stride(fc.recipe.horizon)
    picks = windows.origins(valid_start, test_start, stride=stride)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        paths = _sample(fc, windows, picks, num_samples=fc.recipe.num_samples, spread=1.0)
    truth = np.stack([_truth(series, i, origin, fc.recipe.horizon) for i, origin in picks])
    factors, raw = fit_step_spread(paths, truth)
    crps = lambda p: float(np.nanmean(crps_by_factor(p, truth, [1.0])))  # noqa: E731
    return {
        "spread": [round(float(f), 4) for f in factors],
        "raw": [round(float(f), 4) for f in raw],
        "origins": len(picks),
        "stride": stride,
        "valid_crps": {"as trained": crps(paths), "calibrated": crps(widen_paths(paths, factors))},
    }


def calibration_stride(horizon: int) -> int:
    """Steps between the validation origins :func:`calibrate` uses: 1 for a horizon of up to
    24 steps, so about 24 times the origins of the backtest (one per horizon)."""
    return max(1, horizon // 24)


def _truth(series: SeriesSet, index: int, origin: int, horizon: int) -> np.ndarray:
    """The ``horizon`` values of series ``index`` from ``origin`` (NaN: missing)."""
    s = series.series[index]
    return s.values[origin - s.offset : origin - s.offset + horizon]


def spread_text(spread: float | tuple[float, ...]) -> str:
    """How a forecaster's spread reads in one line."""
    if isinstance(spread, float):
        return f"spread factor {spread:g}"
    return f"spread factor per step {', '.join(f'{f:.2f}' for f in spread)} (calibration.json)"


def load(
    run_dir: str | os.PathLike, *, weights: str = runs.BEST, runtime: Runtime | None = None,
    first_stage: bool = False,
) -> Forecaster:  # fmt: skip
    """The trained model of ``run_dir`` (best validation weights) and its settings; the model on
    ``runtime``'s device (default: the CPU). A run trained with ``refit`` gives its refit
    (``run_dir/refit``), unless ``first_stage``."""
    run, config = runs.load(run_dir, TASK, weights=weights)
    recipe = runs.build(run, config, "recipe", lambda d: ForecastRecipe(**d))
    refitted = (Path(run_dir) / REFIT / runs.MANIFEST).is_file()
    if (recipe.refit or refitted) and not first_stage:
        if not (Path(run_dir) / REFIT / weights).is_file():
            raise RunDirError(
                f"{run_dir} was trained with --refit, but its refit has not finished; "
                f"continue it with: rnnkit forecast train --resume {run_dir}"
            )
        return load(Path(run_dir) / REFIT, weights=weights, runtime=runtime)
    model_config = runs.build(run, config, "model", ForecastConfig.from_dict)
    model = DeepAR(model_config)
    runs.build(run, config, "data", lambda d: (d["series"], d["step_s"], d["covariate_stats"]))
    runs.load_model_weights(run, model, weights)
    model.eval()
    members = []
    if weights == runs.BEST and recipe.snapshots > 1:  # the run's other kept checkpoints
        best_step = run.read_json(runs.SUMMARY).get("best_step") if run.has(runs.SUMMARY) else None
        for state in read_members(run, recipe.snapshots, best_step):
            member = DeepAR(model_config)
            member.load_state_dict(state)
            members.append(member.eval())
    spread = run.read_json(CALIBRATION)["spread"] if run.has(CALIBRATION) else 1.0
    # a list: one factor per step; a number: an older run's factor on every draw
    spread = tuple(map(float, spread)) if isinstance(spread, list) else float(spread)
    where = place(model, runtime)
    for member in members:
        place(member, runtime)
    return Forecaster(model, recipe, config, os.fspath(run_dir), spread, where, tuple(members))


def _prepare(
    fc: Forecaster, data: str | None, horizon: int, encoding: str = "utf-8"
) -> tuple[SeriesSet, Windows]:
    """The data to forecast (``data`` in ``encoding``, or the run's own), checked against what
    the model was trained on."""
    trained = fc.recipe.horizon
    if horizon > trained:
        raise DataError(
            f"horizon {horizon} is longer than the model was trained for ({trained}); "
            f"pass --horizon {trained} or less, or train a model with --horizon {horizon}"
        )
    series = read_data(fc.recipe, data, encoding)
    info = fc.config["data"]
    if series.step != info["step_s"]:
        raise DataError(
            f"{series.source} has a step of {format_freq(series.step)}, the model was trained on "
            f"{format_freq(info['step_s'])} data; give data on its grid (or --freq)"
        )
    names = info["series"]
    if fc.model.config.embedding_dim:
        unknown = [s.name for s in series.series if s.name not in names]
        if unknown:
            raise DataError(
                f"series {unknown[0]!r} of {series.source} was not in the training data; "
                f"the model knows: {', '.join(names)}"
            )
    recipe = fc.recipe
    config = fc.model.config
    windows = Windows(
        series, max_lag=config.max_lag, context=recipe.context, horizon=horizon,
        cov_stats=info["covariate_stats"],
    )  # fmt: skip
    return series, windows


def _series_index(fc: Forecaster, data: SeriesSet, index: int) -> int:
    names = fc.config["data"]["series"]
    name = data.series[index].name
    return names.index(name) if fc.model.config.embedding_dim else 0


def _sample(
    fc: Forecaster, windows: Windows, picks: list[tuple[int, int]], *, num_samples: int,
    spread: Spread | None = None,
) -> np.ndarray:  # fmt: skip
    """(len(picks), num_samples, horizon) sample paths from each (series, origin); with
    snapshot members, the paths are shared among the best checkpoint and them and pooled.

    ``spread`` (default: the forecaster's): a number multiplies the spread of every step's
    distribution as it is drawn (1: the paths as trained); a tuple, one factor per step, widens
    the paths as trained about their median afterwards (:func:`.calibration.widen_paths`).
    """
    spread = fc.spread if spread is None else spread
    per_step = isinstance(spread, tuple)
    out = []
    where = fc.place or place(fc.model)
    models = (fc.model, *fc.members)
    shares = split_samples(num_samples, len(models))
    for i in range(0, len(picks), EVAL_BATCH):
        chunk = picks[i : i + EVAL_BATCH]
        batch = windows.batch(chunk, with_future=False)
        ids = torch.tensor([_series_index(fc, windows.data, k) for k, _ in chunk])
        batch = to_device(batch._replace(series=ids), where.device)
        pooled = []
        for model, share in zip(models, shares):
            with where.autocast():
                paths = model.sample_paths(
                    batch.values, batch.observed, batch.features, batch.series,
                    context=windows.context, horizon=windows.horizon, num_samples=share,
                    spread=1.0 if per_step else spread,
                )  # fmt: skip
            pooled.append(paths)
        out.append(torch.cat(pooled, dim=1).double().cpu().numpy())
    paths = np.concatenate(out)
    return widen_paths(paths, np.asarray(spread)) if per_step else paths


def _sample_adapted(
    fc: Forecaster, series: SeriesSet, windows: Windows, picks: list[tuple[int, int]], *,
    num_samples: int, spread: Spread | None = None, recent: int = 0, rate: float = 0.0,
    unseen_from: int = 0,
) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """:func:`_sample`, and with ``recent`` > 0 each origin's paths widened about their median
    by one scalar from the forecasts (drawn alike) from the ``recent`` origins one horizon apart
    before it that have a full context, all of whose values are known at the origin: with
    ``rate`` 0 the scalar whose 80% and 95% intervals covered nearest nominal over them
    (:func:`.calibration.recent_coverage_scale`), with ``rate`` > 0 the scalar a controller of
    that rate reaches over them, oldest first (:func:`.calibration.tracked_scale`). Only origins
    at or after grid step ``unseen_from`` count (:func:`unseen_from`: forecasts the model did
    not train on). Returns the paths and the scalar of each origin (1 without such origins)."""
    if recent <= 0:
        paths = _sample(fc, windows, picks, num_samples=num_samples, spread=spread)
        return paths, [1.0] * len(picks)
    h = windows.horizon
    back = {}
    for index, origin in picks:
        s = series.series[index]
        back[index, origin] = [
            (index, origin - j * h)
            for j in range(recent, 0, -1)  # oldest first: the controller runs forward in time
            if origin - j * h >= max(s.offset + windows.context, unseen_from)
        ]
    extra = sorted({b for bs in back.values() for b in bs} - set(picks))
    drawn = _sample(fc, windows, picks + extra, num_samples=num_samples, spread=spread)
    at = {pick: k for k, pick in enumerate(picks + extra)}
    paths, scales = [], []
    for k, pick in enumerate(picks):
        scale = 1.0
        if back[pick]:
            before = drawn[[at[b] for b in back[pick]]]
            truth = np.stack([_truth(series, i, o, h) for i, o in back[pick]])
            scale = (
                tracked_scale(before, truth, rate) if rate > 0
                else recent_coverage_scale(before, truth)
            )  # fmt: skip
        paths.append(widen_paths(drawn[k], np.full(h, scale)))
        scales.append(scale)
    return np.stack(paths), scales


def unseen_from(fc: Forecaster, series: SeriesSet) -> int:
    """The first grid step of ``series`` that ``fc`` did not train on: where a refit's training
    ended (its ``trained_until``), else the start of the validation period. Conformal
    calibration is valid only on forecasts from there on (``ForecastRecipe.adapt_unseen``)."""
    until = fc.config.get("refit", {}).get("trained_until")
    if until is None:
        return series.cuts()[0]
    seconds = (parse_time(until, "trained_until") - series.start).total_seconds()
    return max(0, int(-(-seconds // series.step)))


def _chain_start(fc: Forecaster, series: SeriesSet) -> int:
    """Where the forecasts the per-origin scalar learns from may start: :func:`unseen_from`
    with the recipe's ``adapt_unseen``, else anywhere (0)."""
    return unseen_from(fc, series) if fc.recipe.adapt_unseen else 0


def predict(
    fc: Forecaster,
    *,
    data: str | None = None,
    encoding: str = "utf-8",
    horizon: int | None = None,
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
    num_samples: int | None = None,
    seed: int = 0,
    adapt: int | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """Forecast ``horizon`` steps after the last value of every series of ``data`` (a CSV file
    in ``encoding``; default: the run's own data); ``adapt``:
    the recent-coverage scalar over this many earlier forecasts (:func:`_sample_adapted`;
    default: the recipe's ``adapt_spread``; 0: off), ``rate`` its tracking rate (default: the
    recipe's ``adapt_rate``; 0: the scalar nearest nominal over them).

    Returns ``{"series": [{"name", "times", "mean", "quantiles": {q: [...]}, "history":
    {"times", "values"}}], ...}``; the same ``seed`` gives the same numbers.
    """
    horizon = horizon or fc.recipe.horizon
    for q in quantiles:
        if not 0 < q < 1:
            raise ConfigError(f"quantiles must lie strictly between 0 and 1, got {q}")
    series, windows = _prepare(fc, data, horizon, encoding)
    picks = []
    for index, s in enumerate(series.series):
        if len(s.values) < fc.recipe.context:
            raise DataError(
                f"series {s.name!r} of {series.source} has {len(s.values)} steps, fewer than the "
                f"context of {fc.recipe.context}; give a longer history"
            )
        if windows.available(index) < s.end + horizon:
            have = windows.available(index) - s.end
            raise DataError(
                f"series {s.name!r} of {series.source} needs covariates for the {horizon} steps "
                f"to forecast and has {have}: add {horizon - have} more rows after its last value "
                "with the covariates filled in and the value empty"
            )
        picks.append((index, s.end))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        paths, scales = _sample_adapted(
            fc, series, windows, picks, num_samples=num_samples or fc.recipe.num_samples,
            recent=fc.recipe.adapt_spread if adapt is None else adapt,
            rate=fc.recipe.adapt_rate if rate is None else rate,
            unseen_from=_chain_start(fc, series),
        )  # fmt: skip
    results = []
    for (index, origin), sample, scale in zip(picks, paths, scales):
        s = series.series[index]
        tail = max(s.offset, origin - min(fc.recipe.context, 4 * horizon))
        forecast = SampleForecast(sample)
        results.append(
            {
                "name": s.name,
                "times": [series.time_at(origin + h).isoformat() for h in range(horizon)],
                "mean": forecast.mean().tolist(),
                "quantiles": {str(q): forecast.quantile(q).tolist() for q in quantiles},
                "history": {
                    "times": [series.time_at(k).isoformat() for k in range(tail, origin)],
                    "values": [_num(v) for v in s.values[tail - s.offset :]],
                },
                "bands": {str(q): forecast.quantile(q).tolist() for q in BAND_QUANTILES},
                "spread_scale": scale,
            }
        )
    return {"run": fc.run_dir, "data": series.source, "horizon": horizon, "series": results}


PERIODS = {"test": "test period (its last 10%)", "valid": "validation period (10% before the test)"}
BAND_QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)  # the plots' median and 80%/95% bands


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def backtest(
    fc: Forecaster,
    *,
    data: str | None = None,
    encoding: str = "utf-8",
    baselines: bool = False,
    num_samples: int | None = None,
    seed: int = 0,
    baseline_history: int | None = None,
    examples: int = 3,
    period: str = "test",
    spread: Spread | None = None,
    adapt: int | None = None,
    rate: float | None = None,
    members: tuple[Forecaster, ...] = (),
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Rolling-origin evaluation over the test period (its last 10%), or the validation period.

    Origins: every ``horizon`` steps from the first midnight of the test period (sub-daily data;
    else from its first step), for every series with a full context before and the whole
    horizon inside it. Each method forecasts ``horizon`` steps from each origin.

    Args:
        fc: a model from :func:`load`.
        data: other data on the same grid (default: the run's own).
        encoding: the text encoding of ``data``.
        baselines: also score seasonal naive, Holt-Winters and ARIMA (statsmodels).
        num_samples: sample paths per origin (default: the recipe's).
        seed: sampling seed.
        baseline_history: steps the baselines fit on before each origin (default:
            :func:`default_baseline_history`).
        examples: how many origins to keep for plotting.
        period: "test", or "valid" to score the validation period (the 10% before the test
            period), which is where settings are chosen without looking at the test period.
        spread: the spread of the paths (default: the run's calibrated one, per step; 1.0:
            the paths as trained; see :func:`_sample`).
        adapt: the recent-coverage scalar per origin over this many earlier forecasts (see
            :func:`_sample_adapted`; default: the recipe's ``adapt_spread`` with the run's own
            spread, 0 with a ``spread`` given).
        rate: the scalar's tracking rate (:func:`_sample_adapted`; default: the recipe's
            ``adapt_rate``; 0: the scalar nearest nominal over the earlier forecasts).
        members: more forecasters of the same window (other seeds of the recipe): "model" is
            then the ensemble, each member's paths (drawn with seed ``seed + k``) pooled.
        quiet: no progress bar over the origins (there is none off a terminal either).
        report: receives one-line progress messages (every 10 origins, without a bar).
    """
    report = report or logger.info
    if period not in PERIODS:
        raise ConfigError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    horizon = fc.recipe.horizon
    series, windows = _prepare(fc, data, horizon, encoding)
    valid_start, test_start = series.cuts()
    first, last = (valid_start, test_start) if period == "valid" else (test_start, series.length)
    picks = windows.origins(first, last, stride=horizon, midnight=True)
    if not picks:
        raise DataError(
            f"the {PERIODS[period]} of {series.source} holds no origin with "
            f"{fc.recipe.context} steps of context and {horizon} to forecast; give more data"
        )
    window = lambda f: (f.model.config.lags, f.recipe.context, f.recipe.horizon)  # noqa: E731
    for member in members:
        if window(member) != window(fc):
            raise ConfigError(
                f"{member.run_dir} has other lags, context or horizon than {fc.run_dir}; "
                "an ensemble needs runs of the same window"
            )
    if adapt is None:
        adapt = fc.recipe.adapt_spread if spread is None else 0
    rate = fc.recipe.adapt_rate if rate is None else rate
    paths, scales = [], []
    for k, member in enumerate((fc, *members)):
        with torch.random.fork_rng():
            torch.manual_seed(seed + k)
            drawn, chosen = _sample_adapted(
                member, series, windows, picks, spread=spread, recent=adapt, rate=rate,
                num_samples=num_samples or fc.recipe.num_samples,
                unseen_from=_chain_start(member, series),
            )  # fmt: skip
        paths.append(drawn)
        scales += chosen
    paths = np.concatenate(paths, axis=1)
    methods = ["model"] + (list(BASELINES) if baselines else [])
    scores = {name: Scores(horizon) for name in methods}
    history_len = baseline_history or default_baseline_history(fc.recipe.context, series.step)
    keep = np.linspace(0, len(picks) - 1, min(examples, len(picks))).round().astype(int).tolist()
    shown = []
    bar = None
    if baselines and not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(picks), unit="origin", leave=False, desc="baselines")
    for n, ((index, origin), sample) in enumerate(zip(picks, paths)):
        s = series.series[index]
        local = origin - s.offset
        truth = s.values[local : local + horizon]
        past = s.values[:local]
        scale = seasonal_error(past, series.season)
        forecasts = {"model": SampleForecast(sample)}
        if baselines:
            filled = windows.filled[index][windows.max_lag :][:local][-history_len:]
            for name, method in BASELINES.items():
                forecasts[name] = method(filled.astype(np.float64), horizon, series.season)
        for name, forecast in forecasts.items():
            scores[name].add(forecast, truth, scale)
        if n in keep:
            shown.append(_example(series, s, origin, truth, forecasts, fc.recipe.context))
        if bar is not None:
            bar.update(1)
        elif baselines and (n + 1) % 10 == 0:
            report(f"backtest: {n + 1}/{len(picks)} origins")
    if bar is not None:
        bar.close()
    return {
        "run": fc.run_dir,
        "data": series.source,
        "horizon": horizon,
        "period": period,
        "origins": len(picks),
        "first_origin": series.time_at(picks[0][1]).isoformat(),
        "adapt_spread": adapt,
        "adapt_rate": rate if adapt else 0.0,
        "adapt_unseen": bool(adapt and fc.recipe.adapt_unseen),
        "spread_scale_mean": float(np.exp(np.mean(np.log(scales)))),
        "methods": {name: sc.summary() for name, sc in scores.items()},
        "per_step": {name: {"mae": sc.per_step("mae")} for name, sc in scores.items()},
        "examples": shown,
    }


def default_baseline_history(context: int, step: int) -> int:
    """Steps the baselines fit on by default: the model's context, and for sub-daily data at
    least a week (the issue's 168 hours on the default data, whatever context the model reads)."""
    return max(context, WEEK // step) if step < DAY else context


def _example(
    series: SeriesSet, s: Any, origin: int, truth: np.ndarray, forecasts: dict, context: int
) -> dict[str, Any]:
    start = max(s.offset, origin - min(context, 2 * len(truth)))
    return {
        "series": s.name,
        "origin": series.time_at(origin).isoformat(),
        "history": [_num(v) for v in s.values[start - s.offset : origin - s.offset]],
        "truth": [_num(v) for v in truth],
        "steps_before": origin - start,
        "forecasts": {
            name: {str(q): f.quantile(q).tolist() for q in BAND_QUANTILES}
            for name, f in forecasts.items()
        },
    }
