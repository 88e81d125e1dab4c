"""The Python example of docs/forecasting.md runs, on a month of generated hourly temperatures
cached as the default dataset and with a budget of a few steps instead of two minutes."""

import dataclasses
import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch

import rnnkit.forecast
from rnnkit.forecast import ForecastRecipe

DOC = Path(__file__).resolve().parents[2] / "docs" / "forecasting.md"
HOURS = 720  # 30 days: the test period (its last 72 hours) holds three 24-hour origins
SMALL = dict(max_minutes=None, max_steps=6, hidden_size=8, num_layers=1, batch_size=8,
             eval_every=3, num_samples=20)  # fmt: skip


def _seattle_like_csv(path: Path) -> None:
    """The cached CSV's layout (``date,temp``, ``2010/01/01 00:00``), a daily cycle in 0.1 F."""
    start = datetime(2010, 1, 1)
    lines = ["date,temp"]
    for t in range(HOURS):
        temp = 42 + 4 * math.sin(2 * math.pi * (t - 9) / 24) - t / 200
        lines.append(f"{(start + timedelta(hours=t)):%Y/%m/%d %H:%M},{temp:.1f}")
    path.write_text("\n".join(lines) + "\n")


def test_python_example_runs_and_forecasts_after_the_last_value(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache" / "rnnkit"
    cache.mkdir(parents=True)
    _seattle_like_csv(cache / "seattle-temps-0.9.0.csv")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    small = lambda **kw: dataclasses.replace(ForecastRecipe(**kw), **SMALL)  # noqa: E731
    monkeypatch.setattr(rnnkit.forecast, "ForecastRecipe", small)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
        namespace: dict = {}
        exec(compile(block, str(DOC), "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    forecast_line, scores_line = capsys.readouterr().out.splitlines()
    first_time, median = forecast_line.split(maxsplit=1)  # a time and a list of three values
    model_mase, naive_mase = scores_line.split()
    last = datetime(2010, 1, 1) + timedelta(hours=HOURS - 1)
    assert first_time == (last + timedelta(hours=1)).isoformat()
    assert namespace["model"].recipe.horizon == 24 and namespace["model"].recipe.context == 168
    assert all(30 < float(v) < 50 for v in re.findall(r"[\d.]+", median))  # three temperatures
    scores = namespace["scores"]
    assert scores["origins"] == 3 and set(scores["methods"]) == {
        "model", "seasonal-naive", "holt-winters", "arima"
    }  # fmt: skip
    assert float(naive_mase) == pytest.approx(scores["methods"]["seasonal-naive"]["mase"])
    assert math.isfinite(float(model_mase))
