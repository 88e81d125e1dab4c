"""Refit on training + validation (``ForecastRecipe.refit``), early stopping and the split by
dates: what the refit trains on, for how many steps, on which schedule, and where it is kept."""

import json
from datetime import datetime

import pytest
import torch
from forecast_series import sinusoid_rows, write_wide

from rnnkit.errors import DataError, RunDirError
from rnnkit.forecast import ForecastRecipe, backtest, load, predict, train
from rnnkit.forecast.api import read_data, refit
from rnnkit.forecast.task import ForecastTask, Windows
from rnnkit.runs import RunDir

TINY = dict(
    horizon=6, context=24, lags=[1, 24], hidden_size=8, num_layers=1, batch_size=8,
    steps_per_epoch=10, eval_every=10, max_minutes=None, num_samples=20, max_steps=60,
    warmup_steps=5,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def refitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refit")
    data = write_wide(tmp / "s.csv", ["a"], [sinusoid_rows(400)])
    torch.set_num_threads(1)
    recipe = ForecastRecipe(data=str(data), refit=True, refit_schedule="same", **TINY)
    train(tmp / "run", recipe=recipe)
    return tmp, recipe


def _json(path):
    return json.loads(path.read_text())


def _weights(run, name="model.safetensors"):
    return RunDir.open(run, "forecast").load_tensors(name)[0]


def test_refit_trains_through_the_validation_period_for_the_best_checkpoints_steps(refitted):
    tmp, recipe = refitted
    first, second = tmp / "run", tmp / "run" / "refit"
    best = _json(first / "trainer.json")["best_step"]
    assert 0 < best <= 60
    config = _json(second / "config.json")
    assert config["train"]["max_steps"] == best and config["train"]["max_minutes"] is None
    assert _json(second / "trainer.json")["step"] == best
    data = read_data(recipe)
    valid_start, test_start = data.cuts()
    assert config["refit"]["trained_until"] == data.time_at(test_start).isoformat()
    assert (
        config["refit"]["steps"] == best and config["data"] == _json(first / "config.json")["data"]
    )
    windows = Windows(data, max_lag=24, context=24, horizon=6, cov_stats=([], []))
    stage = lambda until: ForecastTask(  # noqa: E731
        windows, batch_size=8, steps_per_epoch=10, seed=0, train_until=until
    )
    last_end = lambda task: max(o for _, o in task.train_picks) + 6  # noqa: E731
    assert last_end(stage(None)) == valid_start  # the first stage never sees validation
    assert last_end(stage(test_start)) == test_start  # the refit sees all of it, no test
    # the calibration chosen by the first stage (before the refit saw validation) is kept
    assert _json(second / "calibration.json") == _json(first / "calibration.json")


def _lr(run):
    """The learning rate of each logged training step of ``run``."""
    records = RunDir.open(run, "forecast").read_jsonl("metrics.jsonl")
    return {r["step"]: r["lr"] for r in records if r["split"] == "train"}


def test_the_refit_follows_the_first_stages_learning_rate_step_for_step(refitted):
    tmp, _ = refitted
    first, second = _lr(tmp / "run"), _lr(tmp / "run" / "refit")
    assert second and all(second[s] == first[s] for s in second)
    assert _json(tmp / "run" / "refit" / "config.json")["refit"]["schedule_steps"] == 60


def test_load_gives_the_refit_and_the_first_stage_on_request(refitted):
    tmp, _ = refitted
    fc, first = load(tmp / "run"), load(tmp / "run", first_stage=True)
    refit_w = _weights(tmp / "run" / "refit")
    for name, value in fc.model.state_dict().items():
        assert torch.equal(value, refit_w[name]), name
    assert any(
        not torch.equal(a, b)
        for a, b in zip(fc.model.state_dict().values(), first.model.state_dict().values())
    )
    assert fc.spread == first.spread  # the first stage's calibration
    scores = backtest(fc)["methods"]["model"]
    assert scores["mae"] > 0 and scores["origins"] > 0


def test_refit_is_reproducible_and_can_be_made_again_with_another_schedule(
    refitted, tmp_path, monkeypatch
):
    tmp, recipe = refitted
    train(tmp_path / "again", recipe=recipe)
    for name, value in _weights(tmp / "run" / "refit").items():
        assert torch.equal(value, _weights(tmp_path / "again" / "refit")[name]), name
    # a best checkpoint before the end of the first stage's 60 steps:
    import rnnkit.forecast.api as api

    first = RunDir.open(tmp_path / "again", "forecast")
    at_50 = next(
        r["elapsed_s"] for r in first.read_jsonl("metrics.jsonl") if r["step"] == 50
    )  # fmt: skip
    monkeypatch.setattr(api, "best_checkpoint", lambda run: (50, at_50))
    lrs = {}
    for schedule in ("same", "anneal"):
        refit(tmp_path / "again", schedule=schedule)  # replaces the refit; stage 1 untouched
        config = _json(tmp_path / "again" / "refit" / "config.json")
        assert config["refit"]["schedule"] == schedule and config["train"]["max_steps"] == 50
        assert _json(tmp_path / "again" / "refit" / "trainer.json")["step"] == 50
        lrs[schedule] = _lr(tmp_path / "again" / "refit")
    assert lrs["same"] == {s: v for s, v in _lr(tmp_path / "again").items() if s <= 50}
    assert lrs["anneal"][50] < lrs["same"][50] / 10  # decayed to nearly 0 over its 50 steps
    for name, value in _weights(tmp / "run").items():
        assert torch.equal(value, _weights(tmp_path / "again")[name]), name


def test_a_refit_run_without_its_refit_says_how_to_finish_it(refitted, tmp_path):
    tmp, recipe = refitted
    train(tmp_path / "run", recipe=recipe)
    import shutil

    shutil.rmtree(tmp_path / "run" / "refit")
    with pytest.raises(RunDirError, match="refit has not finished.*--resume"):
        load(tmp_path / "run")
    assert load(tmp_path / "run", first_stage=True).model is not None


def test_split_by_dates_and_its_refusals(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(400)])
    recipe = ForecastRecipe(data=str(data), split=["2024-01-10 00:00", "2024-01-14 12:00"])
    series = read_data(recipe)
    assert series.cuts() == (9 * 24, 13 * 24 + 12)
    assert series.time_at(series.cuts()[1]) == datetime(2024, 1, 14, 12)
    for split, match in (
        (["2024-01-10 00:30", "2024-01-14 12:00"], "off the 1h grid"),
        (["2024-01-14 00:00", "2024-01-10 00:00"], "must increase"),
        (["2024-01-10 00:00", "2025-01-01 00:00"], "outside"),
        (["2024-01-10 00:00"], "two times"),
        (["2024-01-10 00:00", "soon"], "cannot read the time"),
    ):
        with pytest.raises(DataError, match=match):
            read_data(ForecastRecipe(data=str(data), split=split))


def test_the_first_stage_leaves_time_in_the_budget_for_the_refit(refitted):
    """With a refit the first stage reserves its time (``reserve_refit``, which the trainer's
    tests check); the refit itself has no clock budget to reserve from."""
    tmp, recipe = refitted
    assert recipe.train_config().reserve_refit
    assert not ForecastRecipe(refit=False).train_config().reserve_refit
    assert _json(tmp / "run" / "config.json")["train"]["reserve_refit"] is True
    assert _json(tmp / "run" / "refit" / "config.json")["train"]["reserve_refit"] is False


def test_a_holdout_refit_stops_its_windows_before_the_test_period(refitted, tmp_path):
    tmp, recipe = refitted
    import shutil

    from rnnkit.errors import ConfigError

    shutil.copytree(tmp / "run", tmp_path / "run")
    refit(tmp_path / "run", holdout=12, into="refit-h12")
    config = _json(tmp_path / "run" / "refit-h12" / "config.json")
    data = read_data(recipe)
    valid_start, test_start = data.cuts()
    assert config["refit"]["trained_until"] == data.time_at(test_start - 12).isoformat()
    assert config["refit"]["steps"] == _json(tmp / "run" / "trainer.json")["best_step"]
    # the refit that forecasts is untouched, and still the one load gives
    for name, value in _weights(tmp / "run" / "refit").items():
        assert torch.equal(value, _weights(tmp_path / "run" / "refit")[name]), name
    assert load(tmp_path / "run").run_dir == str(tmp_path / "run" / "refit")
    assert any(
        not torch.equal(v, _weights(tmp_path / "run" / "refit-h12")[k])
        for k, v in _weights(tmp_path / "run" / "refit").items()
    )
    with pytest.raises(ConfigError, match="holdout must be"):
        refit(tmp_path / "run", holdout=test_start - valid_start, into="refit-x")


def test_the_recent_coverage_scalar_per_origin_comes_from_the_forecasts_before_it(
    refitted, monkeypatch
):
    """Each origin's paths are its own, widened about their median by the scalar that the
    forecasts from the origins one, two, three horizons earlier (with a full context) choose
    against their true values; a fake sampler makes every origin's paths known."""
    import numpy as np

    import rnnkit.forecast.api as api
    from rnnkit.forecast.calibration import recent_coverage_scale, tracked_scale, widen_paths

    tmp, _ = refitted
    fc = load(tmp / "run")
    series, windows = api._prepare(fc, None, fc.recipe.horizon)
    h = fc.recipe.horizon

    def fake(origin):  # paths about the level with a spread that differs by origin
        return 10.0 + np.random.default_rng(origin).normal(size=(20, h)) * (0.5 + origin % 7 / 2)

    monkeypatch.setattr(
        api, "_sample", lambda fc, w, picks, **k: np.stack([fake(o) for _, o in picks])
    )
    picks = [(0, o) for o in (31, 360, 366, 372)]  # 31: one origin with a context before it
    paths, scales = api._sample_adapted(fc, series, windows, picks, num_samples=20, recent=3)
    for (_, origin), got, scale in zip(picks, paths, scales):
        before = [origin - j * h for j in (1, 2, 3) if origin - j * h >= windows.context]
        assert len(before) == (1 if origin == 31 else 3)
        truth = np.stack([series.series[0].values[o : o + h] for o in before])
        want = recent_coverage_scale(np.stack([fake(o) for o in before]), truth)
        assert scale == want
        np.testing.assert_allclose(got, widen_paths(fake(origin), np.full(h, want)))
    assert len({round(s, 6) for s in scales}) > 1  # the origins chose differently
    plain, ones = api._sample_adapted(fc, series, windows, picks, num_samples=20, recent=0)
    assert ones == [1.0] * 4
    np.testing.assert_allclose(plain, np.stack([fake(o) for _, o in picks]))
    # tracked instead: the controller runs over the same forecasts, oldest first
    paths, tracked = api._sample_adapted(
        fc, series, windows, picks, num_samples=20, recent=3, rate=0.3
    )
    for (_, origin), got, scale in zip(picks, paths, tracked):
        before = [origin - j * h for j in (3, 2, 1) if origin - j * h >= windows.context]
        truth = np.stack([series.series[0].values[o : o + h] for o in before])
        want = tracked_scale(np.stack([fake(o) for o in before]), truth, 0.3)
        assert scale == want
        np.testing.assert_allclose(got, widen_paths(fake(origin), np.full(h, want)))
    assert tracked != scales
    # only the forecasts from origins the model did not train on: 366 and 372 keep one and two
    # of their three, 31 and 360 none (the scalar 1)
    paths, unseen = api._sample_adapted(
        fc, series, windows, picks, num_samples=20, recent=3, rate=0.3, unseen_from=355
    )
    for (_, origin), got, scale in zip(picks, paths, unseen):
        before = [o for o in (origin - 3 * h, origin - 2 * h, origin - h) if o >= 355]
        assert len(before) == {31: 0, 360: 0, 366: 1, 372: 2}[origin]
        if not before:
            assert scale == 1.0
            continue
        truth = np.stack([series.series[0].values[o : o + h] for o in before])
        assert scale == tracked_scale(np.stack([fake(o) for o in before]), truth, 0.3)
        np.testing.assert_allclose(got, widen_paths(fake(origin), np.full(h, scale)))


def test_backtest_and_predict_adapt_the_spread_when_asked(refitted):
    from dataclasses import replace

    import numpy as np

    import rnnkit.forecast.api as api

    tmp, _ = refitted
    fc = load(tmp / "run")
    fixed, adapted = backtest(fc, adapt=0), backtest(fc, adapt=3, rate=0.0)
    assert fixed["adapt_spread"] == 0 and fixed["spread_scale_mean"] == 1.0
    assert adapted["adapt_spread"] == 3 and adapted["spread_scale_mean"] != 1.0
    default = backtest(fc)  # the recipe's: tracked over the 14 forecasts before each origin
    assert (default["adapt_spread"], default["adapt_rate"], default["adapt_unseen"]) == (
        14,
        0.2,
        True,
    )
    assert default == backtest(fc, adapt=14, rate=0.2)
    # the refit trained to the test period, so only forecasts from there on count
    series, _ = api._prepare(fc, None, fc.recipe.horizon)
    assert api.unseen_from(fc, series) == series.cuts()[1]
    assert fc.config["refit"]["trained_until"] == series.time_at(series.cuts()[1]).isoformat()
    first = load(tmp / "run", first_stage=True)
    assert api.unseen_from(first, series) == series.cuts()[0]  # trained to the validation period
    everywhere = fc._replace(recipe=replace(fc.recipe, adapt_unseen=False))
    assert backtest(everywhere)["spread_scale_mean"] != default["spread_scale_mean"]
    assert backtest(fc, spread=1.0)["adapt_spread"] == 0  # the paths as trained: never adapted
    assert backtest(fc, adapt=3, rate=0.0) == adapted  # the same seed, the same numbers
    one = predict(fc, adapt=3, rate=0.0)["series"][0]
    assert one["spread_scale"] > 0 and predict(fc, adapt=0)["series"][0]["spread_scale"] == 1.0
    assert np.isfinite(one["quantiles"]["0.5"]).all()
    with pytest.raises(Exception, match="adapt_spread must be >= 0"):
        ForecastRecipe(adapt_spread=-1)
    tracked = backtest(fc, adapt=3, rate=0.3)
    assert tracked["adapt_rate"] == 0.3 and tracked["spread_scale_mean"] != 1.0
    assert tracked["methods"]["model"] != adapted["methods"]["model"]
    assert fixed["adapt_rate"] == 0.0 and not fixed["adapt_unseen"]  # no scalar, no rate
    assert predict(fc, adapt=3, rate=0.3)["series"][0]["spread_scale"] > 0
    with pytest.raises(Exception, match=r"adapt_rate must lie in \[0, 1\]"):
        ForecastRecipe(adapt_rate=1.5)
