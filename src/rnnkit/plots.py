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
