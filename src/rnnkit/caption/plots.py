"""The attention figure of Show, Attend and Tell: the image once per word, its attention over it."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from rnnkit.plots import save_figure

COLUMNS = 6  # panels per row


def plot_attention(
    image: np.ndarray, words: Sequence[str], attention: np.ndarray, path: str | os.PathLike
) -> None:
    """Draw ``image`` (H, W, 3) once plainly and once per word with that step's attention.

    ``attention`` is ``(T, L)``: row t is where the decoder looked when it emitted word t (the
    last row may be the end token's); the L cells form a square grid stretched over the image.
    The PNG is written atomically.
    """
    from matplotlib.figure import Figure

    labels = list(words) + (["<end>"] if len(attention) > len(words) else [])
    panels = 1 + len(labels)
    rows = math.ceil(panels / COLUMNS)
    fig = Figure(figsize=(2.0 * min(panels, COLUMNS), 2.2 * rows), dpi=100)
    height, width = image.shape[:2]
    side = int(round(math.sqrt(attention.shape[1])))
    for k in range(rows * COLUMNS):
        if k >= panels:
            break
        ax = fig.add_subplot(rows, COLUMNS, k + 1)
        ax.imshow(image, interpolation="nearest")
        if k == 0:
            ax.set_title("picture", fontsize=11)
        else:
            grid = attention[k - 1].reshape(side, side)
            ax.imshow(
                grid / max(float(grid.max()), 1e-12),
                cmap="inferno",
                alpha=0.6,
                extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                interpolation="bilinear",
                vmin=0.0,
                vmax=1.0,
            )
            ax.set_title(labels[k - 1], fontsize=11)
        ax.axis("off")
    fig.suptitle(" ".join(words), fontsize=12)
    fig.tight_layout()
    save_figure(fig, path, format="png")
