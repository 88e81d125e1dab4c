"""Plots of training runs (matplotlib's Agg canvas; no pyplot, no GUI, no global figure state)."""

from __future__ import annotations

from typing import Any


def plot_losses(records: list[dict[str, Any]], path: Any) -> None:
    """Draw training and validation loss against step into a PNG at ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for split in ("train", "valid"):
        points = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if split == "valid" else None, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def plot_series(
    series: dict[str, tuple[list[float], list[float]]],
    path: Any,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
) -> None:
    """Draw named ``(xs, ys)`` lines on one axis into a PNG at ``path`` (benchmark figures)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
