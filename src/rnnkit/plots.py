"""Every figure rnnkit draws: loss curves, attention maps (matplotlib's Agg canvas through
``Figure``; no pyplot, no GUI, no global figure state)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnkit.errors import DataError
from rnnkit.files import atomic_path, check_output_file

# The first bytes of the image files rnnkit draws.
IMAGE_MAGIC = (b"\x89PNG", b"%PDF", b"<?xml", b"<svg")
# Every figure carries this mark in its metadata (PNG "Software", PDF/SVG "Creator"): how an
# image rnnkit drew is told from a picture of the user's (only the former is replaced unasked).
MARK = "rnnkit"
_METADATA_KEY = {"png": "Software", "pdf": "Creator", "svg": "Creator"}
_MARK_WINDOW = 1 << 16  # the marked metadata lies within this many bytes of either end


def save_figure(fig: Any, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Save ``fig`` to exactly ``path``, atomically, marked as rnnkit's (:data:`MARK`); the
    format is ``format``, else follows the suffix (PNG when there is none; the name is kept as
    given). Returns the path written."""
    path = Path(path)
    kind = format or path.suffix.lstrip(".").lower() or "png"
    key = _METADATA_KEY.get(kind)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=kind, metadata={key: MARK} if key else None)
    return path


def looks_like_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an image rnnkit drew: a PNG, PDF or SVG carrying :data:`MARK`."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MARK_WINDOW)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - _MARK_WINDOW, len(head)))
            tail = handle.read()
    except OSError:
        return False
    mark = MARK.encode()
    return head.startswith(IMAGE_MAGIC) and (mark in head or mark in tail)


def check_image_output(
    path: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    force: bool = False,
    option: str = "--out",
) -> Path:
    """The one overwrite rule (:func:`rnnkit.files.check_output_file`) for a figure: never an
    input or a file in a run directory; an existing file only if rnnkit drew it, or with
    ``force``. The suffix must name a format matplotlib writes (none: PNG), and the folder must
    exist, so that the figure is not refused after the work is done."""
    from matplotlib.backend_bases import FigureCanvasBase

    # The rules that protect the user's files first: `--plot data.csv` is "also an input".
    checked = check_output_file(
        path, inputs=inputs, force=force, ours=looks_like_image, what="image", option=option
    )

    kind = Path(path).suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if kind not in formats:
        raise DataError(
            f"{option} {path}: cannot draw a .{kind} figure; name a .png, .pdf or .svg file "
            f"(or {', '.join('.' + k for k in sorted(formats) if k not in ('png', 'pdf', 'svg'))})"
        )
    if not Path(path).parent.is_dir():
        raise DataError(
            f"{option} {path}: the folder {Path(path).parent} does not exist; create it first"
        )
    return checked


# Losses that span more than this factor (all positive) are drawn on a logarithmic axis: a
# speech run falls from 4 to 0.004 nats/character, and on a linear axis everything after the
# first few hundred steps is a flat line at zero.
LOG_SPAN = 100.0


def plot_losses(records: list[dict[str, Any]], path: Any, unit: str = "nats/token") -> Any:
    """Draw training and validation loss (per ``unit``) against step into a PNG at ``path``;
    returns the figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    losses = []
    for split in ("train", "valid"):
        points = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        if points:
            xs, ys = zip(*points)
            dots = split == "valid" or len(points) == 1  # a single point needs a marker
            ax.plot(xs, ys, marker="o" if dots else None, label=split)
            losses += [y for y in ys if math.isfinite(y)]
    if losses and min(losses) > 0 and max(losses) > LOG_SPAN * min(losses):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({unit})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_attention(
    source: Sequence[str], output: Sequence[str], weights: Any, path: str | os.PathLike
) -> Path:
    """Save an attention matrix ``weights`` (len(output), len(source)) as a labelled heat map.

    ``source`` and ``output`` label the columns and rows; the image format follows the suffix of
    ``path`` (see :func:`save_figure`). Returns the path written.
    """
    from matplotlib.figure import Figure

    height = max(3.0, 0.3 * len(output) + 1.5)
    width = max(4.0, 0.35 * len(source) + 2.0)
    fig = Figure(figsize=(width, height), dpi=120)
    ax = fig.add_subplot()
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), list(source), rotation=60, ha="right")
    ax.set_yticks(range(len(output)), list(output))
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_series(
    series: dict[str, tuple[list[float], list[float]]],
    path: Any,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
) -> Any:
    """Draw named ``(xs, ys)`` lines on one axis into a PNG at ``path`` (benchmark figures) and
    return the figure. Beyond four lines the legend goes right of the axes, where it cannot hide
    a curve."""
    from matplotlib.figure import Figure

    outside = len(series) > 4
    fig = Figure(figsize=(8.5 if outside else 6, 4), dpi=100)
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
    if outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return fig
