"""Generated series for the forecasting tests (as CSV files) and the small CLI settings."""

import math
import random
from datetime import datetime, timedelta

# A small model and window that train in seconds.
SMALL = ["--hidden", "16", "--layers", "1", "--context", "48", "--horizon", "12"]
SMALL += [
    "--lags",
    "1,2,24",
    "--batch-size",
    "16",
    "--eval-every",
    "40",
    "--quiet",
    "--threads",
    "1",
]


def sinusoid_rows(n, *, period=24, noise=0.3, seed=0, level=10.0, start=datetime(2024, 1, 1)):
    """(time, value) rows of an hourly daily cycle with Gaussian noise."""
    rng = random.Random(seed)
    wave = [level + 3 * math.sin(2 * math.pi * t / period) for t in range(n)]
    return [(start + timedelta(hours=t), w + rng.gauss(0, noise)) for t, w in enumerate(wave)]


def write_wide(path, columns, rows_by_column, *, fmt="%Y-%m-%d %H:%M"):
    """A wide CSV: time plus one column per entry of ``rows_by_column`` (same times)."""
    times = [t for t, _ in rows_by_column[0]]
    lines = ["time," + ",".join(columns)]
    for i, t in enumerate(times):
        cells = [_cell(rows[i][1]) for rows in rows_by_column]
        lines.append(t.strftime(fmt) + "," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell(value):
    return "" if value is None else f"{value:.4f}"
