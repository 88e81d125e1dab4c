"""Forecast pictures (matplotlib's Agg canvas, written atomically): a forecast with its bands,
and a backtest's example origins with the error per horizon step."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from rnnkit.files import atomic_path

COLORS = {"model": "C0", "seasonal-naive": "C2", "holt-winters": "C1", "arima": "C3"}


def _save(fig: Any, path: str | os.PathLike) -> None:
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)


def _bands(ax: Any, xs: list, q: dict[str, list[float]], color: str, label: str) -> None:
    ax.fill_between(xs, q["0.025"], q["0.975"], color=color, alpha=0.15, lw=0, label=f"{label} 95%")
    ax.fill_between(xs, q["0.1"], q["0.9"], color=color, alpha=0.3, lw=0, label=f"{label} 80%")
    ax.plot(xs, q["0.5"], color=color, lw=1.5, label=f"{label} median")


def plot_forecast(result: dict[str, Any], path: str | os.PathLike, *, max_series: int = 4) -> None:
    """History, median forecast and 80%/95% bands of (up to ``max_series``) series of a
    :func:`rnnkit.forecast.api.predict` result."""
    from matplotlib.figure import Figure

    shown = result["series"][:max_series]
    fig = Figure(figsize=(9, 2.8 * len(shown)), dpi=100)
    for i, item in enumerate(shown):
        ax = fig.add_subplot(len(shown), 1, i + 1)
        hist_x = [datetime.fromisoformat(t) for t in item["history"]["times"]]
        ax.plot(hist_x, item["history"]["values"], color="k", lw=1, label="history")
        xs = [datetime.fromisoformat(t) for t in item["times"]]
        _bands(ax, xs, item["bands"], "C0", "forecast")
        ax.set_title(f"{item['name']}: {len(xs)} steps from {item['times'][0]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    _save(fig, path)


def plot_backtest(result: dict[str, Any], path: str | os.PathLike) -> None:
    """A few origins of a :func:`rnnkit.forecast.api.backtest` result (truth, each method's
    median, the model's bands) and every method's MAE per horizon step."""
    from matplotlib.figure import Figure

    examples = result["examples"]
    fig = Figure(figsize=(4 * (len(examples) + 1), 3.6), dpi=100)
    for i, ex in enumerate(examples):
        ax = fig.add_subplot(1, len(examples) + 1, i + 1)
        before = ex["steps_before"]
        ax.plot(range(-before, 0), ex["history"], color="k", lw=1, label="history")
        steps = list(range(len(ex["truth"])))
        ax.plot(steps, ex["truth"], color="k", lw=1, ls="--", label="truth")
        _bands(ax, steps, ex["forecasts"]["model"], COLORS["model"], "model")
        for name, q in ex["forecasts"].items():
            if name != "model":
                ax.plot(steps, q["0.5"], color=COLORS.get(name), lw=1, label=name)
        ax.set_title(f"{ex['series']} from {ex['origin']}", fontsize=9)
        ax.set_xlabel("steps from the origin")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    ax = fig.add_subplot(1, len(examples) + 1, len(examples) + 1)
    for name, per in result["per_step"].items():
        ax.plot(range(1, len(per["mae"]) + 1), per["mae"], color=COLORS.get(name), label=name)
    ax.set_title(f"MAE per horizon step ({result['origins']} origins)", fontsize=9)
    ax.set_xlabel("horizon step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
