"""The Python API: exact resume, several series with covariates, counts, calibration,
refusals."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from forecast_series import sinusoid_rows, write_wide

from rnnkit.errors import ConfigError, DataError
from rnnkit.forecast import ForecastRecipe, backtest, load, predict, train
from rnnkit.forecast.api import calibrate
from rnnkit.runs import RunDir

# refit off: these tests are about the first stage; the refit has test_forecast_refit.py
TINY = dict(
    horizon=6, context=24, lags=[1, 24], hidden_size=8, num_layers=1, batch_size=8,
    steps_per_epoch=10, eval_every=10, max_minutes=None, num_samples=20, refit=False,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weights(run):
    return RunDir.open(run, "forecast").load_tensors("last.safetensors")[0]


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    recipe = ForecastRecipe(data=str(data), max_steps=24, **TINY)
    train(tmp_path / "whole", recipe=recipe)
    train(tmp_path / "parts", recipe=ForecastRecipe(data=str(data), max_steps=12, **TINY))
    train(tmp_path / "parts", resume=True, budget={"max_steps": 24})
    whole, parts = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    for name in (n for n in whole if n.startswith("model.")):
        torch.testing.assert_close(parts[name], whole[name], rtol=0, atol=0)
    data.write_text(data.read_text().replace("2024-01-01 00:00,", "2024-01-01 00:00,9"))
    with pytest.raises(DataError, match="changed since the run started"):
        train(tmp_path / "parts", resume=True, budget={"max_steps": 30})


def test_long_file_with_covariates_needs_future_rows_to_predict(tmp_path):
    rows = ["series_id,time,value,temp"]
    for name, seed in (("north", 1), ("south", 2)):
        for t, v in sinusoid_rows(200, seed=seed):
            rows.append(f"{name},{t:%Y-%m-%d %H:%M},{v:.3f},{v / 2:.3f}")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(rows) + "\n")
    recipe = ForecastRecipe(data=str(path), covariates=["temp"], max_steps=3, **TINY)
    train(tmp_path / "run", recipe=recipe)
    model = load(tmp_path / "run")
    assert model.model.config.embedding_dim == 8 and model.model.config.num_series == 2
    with pytest.raises(DataError, match="series 'north' .* has 0: add 6 more rows after its last"):
        predict(model)
    partial = tmp_path / "partial.csv"  # two of the six rows: the message counts what is missing
    partial.write_text(path.read_text() + "north,2024-01-09 08:00,,1\nnorth,2024-01-09 09:00,,2\n")
    with pytest.raises(DataError, match="series 'north' .* has 2: add 4 more rows"):
        predict(model, data=str(partial))
    future = [f"{n},2024-01-09 {h:02d}:00,,{h}" for n in ("north", "south") for h in range(8, 14)]
    path.write_text(path.read_text() + "\n".join(future) + "\n")
    result = predict(model, data=str(path), seed=0)
    assert [s["name"] for s in result["series"]] == ["north", "south"]
    assert result["series"][0]["times"][0] == "2024-01-09T08:00:00"
    stranger = tmp_path / "other.csv"
    stranger.write_text(path.read_text().replace("south", "east"))
    with pytest.raises(DataError, match="series 'east' .* was not in the training data"):
        predict(model, data=str(stranger))


def test_negative_binomial_takes_counts_only(tmp_path):
    rng = np.random.default_rng(0)
    counts = [
        (t, float(rng.poisson(5 + 3 * np.sin(i / 4))))
        for i, (t, _) in enumerate(sinusoid_rows(200))
    ]
    path = write_wide(tmp_path / "counts.csv", ["visits"], [counts])
    train(
        tmp_path / "nb",
        recipe=ForecastRecipe(data=str(path), likelihood="negbin", max_steps=2, **TINY),
    )
    assert load(tmp_path / "nb").spread == 1.0  # counts: no spread to calibrate
    assert not (tmp_path / "nb" / "calibration.json").exists()
    result = predict(load(tmp_path / "nb"), quantiles=(0.5,), num_samples=21, seed=1)
    medians = result["series"][0]["quantiles"]["0.5"]  # the 11th of 21 draws: a draw itself
    assert all(v >= 0 and v == int(v) for v in medians)  # draws are counts
    real = write_wide(tmp_path / "real.csv", ["load"], [sinusoid_rows(200)])
    with pytest.raises(DataError, match="series 'load' has values that are not counts"):
        train(
            tmp_path / "bad",
            recipe=ForecastRecipe(data=str(real), likelihood="negbin", max_steps=2, **TINY),
        )


def test_spread_per_step_is_chosen_on_every_validation_hour(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    train(tmp_path / "run", recipe=ForecastRecipe(data=str(data), max_steps=6, **TINY))
    fc = load(tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "calibration.json").read_text())
    # validation hours 240-269: an origin at every hour whose 6 steps end by hour 270
    assert (stored["origins"], stored["stride"]) == (25, 1)
    assert fc.spread == tuple(stored["spread"]) and len(fc.spread) == 6
    assert stored["valid_crps"] == calibrate(fc, seed=0)["valid_crps"]  # seeded: the same draws
    valid = backtest(fc, period="valid", seed=0, adapt=0)  # the calibrated factors alone
    trained = backtest(fc, period="valid", seed=0, spread=1.0)
    widened = backtest(fc, period="valid", seed=0, spread=tuple(2 * f for f in fc.spread))
    for m in ("mae", "mase", "smape"):  # widening about the median keeps the point forecast
        assert valid["methods"]["model"][m] == pytest.approx(trained["methods"]["model"][m])
    assert widened["methods"]["model"]["coverage_95"] >= valid["methods"]["model"]["coverage_95"]
    # 300 hours: validation from hour 240 (a midnight), test from 270, so from midnight 288.
    assert (valid["origins"], valid["first_origin"]) == (5, "2024-01-11T00:00:00")
    test = backtest(fc, seed=0, adapt=0)
    assert (test["origins"], test["first_origin"]) == (2, "2024-01-13T00:00:00")
    # the calibrated factors are the default spread (before any per-origin scalar)
    assert backtest(fc, seed=0, spread=fc.spread)["methods"] == test["methods"]
    wide = backtest(fc, seed=0, spread=4.0)["methods"]["model"]
    assert wide["coverage_95"] >= test["methods"]["model"]["coverage_95"]
    with pytest.raises(ConfigError, match="period must be one of test, valid"):
        backtest(fc, period="train")


def test_an_ensemble_pools_the_paths_of_its_members(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    for seed in (0, 1):
        recipe = ForecastRecipe(data=str(data), max_steps=6, seed=seed, **TINY)
        train(tmp_path / f"run{seed}", recipe=recipe)
    first, second = load(tmp_path / "run0"), load(tmp_path / "run1")
    medians = lambda result: np.array(  # noqa: E731  # (origins, steps)
        [e["forecasts"]["model"]["0.5"] for e in result["examples"]]
    )
    one = medians(backtest(first, seed=0, spread=1.0, examples=9))
    two = medians(backtest(second, seed=1, spread=1.0, examples=9))
    pooled = backtest(first, members=(second,), seed=0, spread=1.0, examples=9)
    # the median of two pooled sets of 20 draws lies between the medians of the two sets
    both = medians(pooled)
    assert both.shape == (2, 6)
    assert np.all(np.minimum(one, two) - 1e-9 <= both) and np.all(
        both <= np.maximum(one, two) + 1e-9
    )
    assert not np.allclose(both, one)
    other = first._replace(recipe=dataclasses.replace(first.recipe, context=12))
    with pytest.raises(ConfigError, match="an ensemble needs runs of the same window"):
        backtest(first, members=(other,))


def test_a_snapshot_ensemble_keeps_the_checkpoints_of_lowest_validation_loss(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    tiny = {**TINY, "eval_every": 4, "snapshots": 3}
    train(tmp_path / "whole", recipe=ForecastRecipe(data=str(data), max_steps=24, **tiny))
    run = RunDir.open(tmp_path / "whole", "forecast")
    tensors, meta = run.load_tensors("snapshots.safetensors")
    logged = [r for r in run.read_jsonl("metrics.jsonl") if r["split"] == "valid"]
    lowest = sorted((r["loss"], r["step"]) for r in logged if r["step"] % 4 == 0)[:3]
    assert list(zip(meta["valid_loss"], meta["steps"])) == lowest
    best = run.load_tensors("model.safetensors")[0]
    assert run.read_json("trainer.json")["best_step"] == lowest[0][1]
    for name, value in best.items():  # snapshot 0 is the best checkpoint
        torch.testing.assert_close(tensors[f"0.{name}"], value, rtol=0, atol=0)
    # a resumed run keeps the same snapshots as an uninterrupted one
    train(tmp_path / "parts", recipe=ForecastRecipe(data=str(data), max_steps=12, **tiny))
    train(tmp_path / "parts", resume=True, budget={"max_steps": 24})
    parts, parts_meta = RunDir.open(tmp_path / "parts", "forecast").load_tensors(
        "snapshots.safetensors"
    )
    assert parts_meta == meta and parts.keys() == tensors.keys()
    for name, value in tensors.items():
        torch.testing.assert_close(parts[name], value, rtol=0, atol=0)

    fc = load(tmp_path / "whole")
    assert len(fc.members) == 2
    for member, i in zip(fc.members, (1, 2)):
        for name, value in member.state_dict().items():
            torch.testing.assert_close(value, tensors[f"{i}.{name}"], rtol=0, atol=0)
    # 20 paths shared 7, 7, 6: the first 7 are the best checkpoint's own draws
    from rnnkit.forecast.api import _prepare, _sample

    _, windows = _prepare(fc, None, 6)
    picks = windows.origins(240, 300, stride=6)
    torch.manual_seed(5)
    pooled = _sample(fc, windows, picks, num_samples=20, spread=1.0)
    torch.manual_seed(5)
    alone = _sample(fc._replace(members=()), windows, picks, num_samples=7, spread=1.0)
    assert pooled.shape == (len(picks), 20, 6)
    np.testing.assert_array_equal(pooled[:, :7], alone)
    assert not np.allclose(pooled[:, 7:14].mean(1), alone.mean(1))
    assert predict(fc, seed=3) == predict(fc, seed=3)

    # a run of an older version (no "snapshots" in its recipe) loads as the best alone
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    del config["recipe"]["snapshots"]
    (tmp_path / "whole" / "config.json").write_text(json.dumps(config))
    assert load(tmp_path / "whole").members == ()
    with pytest.raises(ConfigError, match="snapshots must be >= 1"):
        ForecastRecipe(snapshots=0)


def test_baselines_fit_on_a_week_of_sub_daily_data_by_default(tmp_path):
    from rnnkit.forecast.api import default_baseline_history

    assert default_baseline_history(72, 3600) == 168  # hourly: a week, whatever the context
    assert default_baseline_history(336, 1800) == 336  # half-hourly, a week of context
    assert default_baseline_history(400, 3600) == 400  # longer contexts are kept
    assert default_baseline_history(28, 86400) == 28  # daily and longer: the context
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    train(tmp_path / "run", recipe=ForecastRecipe(data=str(data), max_steps=2, **TINY))
    fc = load(tmp_path / "run")  # context 24 of hourly data
    methods = lambda history: backtest(  # noqa: E731
        fc, baselines=True, seed=0, baseline_history=history
    )["methods"]["arima"]
    assert methods(None) == methods(168) != methods(24)


def test_snapshots_of_a_run_with_ema_are_the_averaged_weights_they_were_validated_as(tmp_path):
    data = write_wide(tmp_path / "s.csv", ["a"], [sinusoid_rows(300)])
    tiny = {**TINY, "eval_every": 4, "snapshots": 2, "ema": 0.8}
    train(tmp_path / "r", recipe=ForecastRecipe(data=str(data), max_steps=16, **tiny))
    run = RunDir.open(tmp_path / "r", "forecast")
    tensors, meta = run.load_tensors("snapshots.safetensors")
    best, _ = run.load_tensors("model.safetensors")
    assert meta["steps"][0] == run.read_json("trainer.json")["best_step"]
    for name, value in best.items():  # snapshot 0 is the kept (averaged) checkpoint
        torch.testing.assert_close(tensors[f"0.{name}"], value, rtol=0, atol=0)
    last, _ = run.load_tensors("last.safetensors")
    assert any(not torch.equal(last[f"model.{n}"], v) for n, v in best.items())  # not the raw ones
