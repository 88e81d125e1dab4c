"""Time series for forecasting: CSV files (wide or long) on a regular time grid, split by time.

Layouts (the header decides; ``--time-column``/``--id-column``/``--target`` override the names):

- **wide**: a time column (``time``, ``timestamp``, ``date``, ``datetime`` or ``ds``; else the
  first column) and one column per series::

      time,north,south
      2024-01-01 00:00,12.5,7.1

- **long**: a series column (``series_id``, ``series``, ``id``, ``unique_id`` or ``item_id``),
  a time column and a value column (``value``, ``y`` or ``target``), one row per observation.

Columns named by ``covariates`` are inputs known in advance (in the wide layout shared by every
series); any other extra column of a long file is an error, so nothing is silently ignored.

Times are ISO dates or date-times (``2010-01-31``, ``2010/01/31 13:00``, ``2010-01-31T13:00:00``;
offsets are converted to UTC). Rows may come in any order. The step is the most common time
difference (or ``freq``); every difference must be a whole number of steps.

Missing values: empty cells (or ``NA``, ``nan``, ``null``) and steps absent from the time column
become missing values. The model is fed linearly interpolated values with an "observed" flag
and never trained or scored on them; the count is reported (:attr:`SeriesSet.missing`).
Missing covariates are interpolated the same way. Rows after a series' last value that carry
covariates are its *future*: the covariates :func:`rnnkit.forecast.api.predict` needs.

Split (by time, on the grid shared by all series): the first 80% of the steps train, the
next 10% validate, the last 10% test (:meth:`SeriesSet.cuts`); or, with ``split``, two times:
the first of the validation period and the first of the test period (:func:`set_split`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from rnnkit.data.datasets import read_text_file
from rnnkit.errors import DataError

TIME_NAMES = ("time", "timestamp", "date", "datetime", "ds")
ID_NAMES = ("series_id", "series", "id", "unique_id", "item_id")
VALUE_NAMES = ("value", "y", "target")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test: shares of the time grid
DAY, WEEK = 86400, 7 * 86400
_UNITS = {"s": 1, "sec": 1, "min": 60, "t": 60, "h": 3600, "d": DAY, "w": WEEK}
_EPOCH = datetime(1970, 1, 1)


@dataclass
class Series:
    """One series on the grid of its :class:`SeriesSet`."""

    name: str
    offset: int  # grid index of its first value
    values: np.ndarray  # (T,) float64 from the first to the last value; NaN where missing
    covariates: np.ndarray  # (T + F, C) float64, F future rows after the last value

    @property
    def end(self) -> int:
        """Grid index just after its last value."""
        return self.offset + len(self.values)


@dataclass
class SeriesSet:
    """Series that share one time grid: ``start + k * step`` for grid index ``k``."""

    series: list[Series]
    start: datetime  # time of grid index 0 (naive, UTC)
    step: int  # seconds between grid points
    covariate_names: list[str]
    source: str  # file path or dataset name
    missing: int  # missing values inside the series (gaps and empty cells)
    gaps: int  # of those, steps absent from the time column
    bounds: tuple[int, int] | None = None  # grid indices where validation and test start
    # (None: at 80% and 90% of the grid; see set_split)

    @property
    def length(self) -> int:
        """Grid steps from the first value of any series to the last value of any."""
        return max(s.end for s in self.series)

    @property
    def season(self) -> int:
        """The seasonal period in steps (MASE, seasonal naive): see :func:`seasonal_period`."""
        return seasonal_period(self.step)

    def cuts(self) -> tuple[int, int]:
        """Grid indices where validation and test start (80% and 90% of the grid, or the
        ``bounds`` :func:`set_split` set)."""
        if self.bounds is not None:
            return self.bounds
        n = self.length
        return int(SPLIT_FRACTIONS[0] * n), int((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * n)

    def time_at(self, index: int) -> datetime:
        """The time of grid index ``index``."""
        return datetime.fromtimestamp(self.epoch_s(index), tz=timezone.utc).replace(tzinfo=None)

    def epoch_s(self, index: int) -> float:
        return (self.start - _EPOCH).total_seconds() + index * self.step

    def features(self, series: Series, *, extra: int = 0) -> np.ndarray:
        """(T + F, K) float32 inputs known in advance: calendar features, then covariates;
        without covariates, ``extra`` more rows of calendar features after the last value."""
        n = len(series.covariates) + (0 if self.covariate_names else extra)
        seconds = self.epoch_s(series.offset) + np.arange(n, dtype=np.float64) * self.step
        cal = calendar_features(seconds, self.step)
        covs = series.covariates if self.covariate_names else np.zeros((n, 0))
        return np.concatenate([cal, covs], axis=1).astype(np.float32)


def seasonal_period(step: int) -> int:
    """Steps in one season: a day for sub-daily data, a week for daily, a year for weekly."""
    if step == DAY:
        return 7
    if step == WEEK:
        return 52
    if step < DAY and DAY % step == 0:
        return DAY // step
    return 1


def calendar_features(seconds: np.ndarray, step: int) -> np.ndarray:
    """(N, K) sine/cosine of the time of day (sub-daily data), day of week (below weekly) and
    day of year (daily and longer steps) at the given UTC epoch seconds."""
    phases = []
    if step < DAY:
        phases.append((seconds % DAY) / DAY)
    if step < WEEK:
        phases.append(((seconds / DAY + 3) % 7) / 7)  # 1970-01-01 was a Thursday: Monday is 0
    if step >= DAY:
        phases.append((seconds % 31556952) / 31556952)  # mean Gregorian year
    angles = 2 * np.pi * np.stack(phases, axis=1)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def calendar_size(step: int) -> int:
    """Number of calendar features for data of this step."""
    return calendar_features(np.zeros(1), step).shape[1]


def parse_freq(text: str) -> int:
    """Seconds of a frequency such as ``30min``, ``h``, ``1h``, ``d``, ``w`` or ``15s``."""
    match = re.fullmatch(r"\s*(\d*)\s*(s|sec|min|t|h|d|w)\s*", text.lower())
    if not match or match.group(1) == "0":
        raise DataError(
            f"cannot read the frequency {text!r}; give a number and a unit: "
            "s, min, h, d or w (e.g. 30min, 1h, d)"
        )
    return int(match.group(1) or 1) * _UNITS[match.group(2)]


def format_freq(step: int) -> str:
    """``step`` seconds written as ``1w``, ``1d``, ``1h``, ``30min`` or ``15s``."""
    for unit, size in (("w", WEEK), ("d", DAY), ("h", 3600), ("min", 60)):
        if step % size == 0:
            return f"{step // size}{unit}"
    return f"{step}s"


def parse_time(text: str, where: str) -> datetime:
    """A naive UTC datetime from an ISO date or date-time (``/`` between date parts allowed)."""
    cleaned = text.strip()
    date, _, rest = cleaned.partition(" ") if "T" not in cleaned else cleaned.partition("T")
    try:
        value = datetime.fromisoformat(date.replace("/", "-") + (" " + rest if rest else ""))
    except ValueError:
        raise DataError(
            f"{where}: cannot read the time {text!r}; write times as YYYY-MM-DD or "
            "YYYY-MM-DD HH:MM[:SS]"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def parse_number(text: str, where: str, column: str) -> float:
    """A float, NaN for a missing cell; a one-line :class:`DataError` otherwise."""
    if text.strip().lower() in MISSING:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        value = float("inf")
    if not np.isfinite(value):
        comma = re.fullmatch(r"\s*[-+]?\d+,\d+\s*", text)
        raise DataError(
            f"{where}: {text!r} in column {column!r} is not a number; "
            + ("write decimals with a point (1.5, not 1,5)" if comma else "fix the value or leave "
               "the cell empty to mark it missing")
        )  # fmt: skip
    return value


def _pick(header: list[str], given: str | None, names: tuple[str, ...], path: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    if given is not None:
        if given.lower() not in lowered:
            raise DataError(f"{path} has no column {given!r} (columns: {', '.join(header)})")
        return lowered.index(given.lower())
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


@dataclass
class _Row:
    time: datetime
    line: int
    value: float
    covariates: list[float]


def read_csv(
    path: str | os.PathLike,
    *,
    freq: str | None = None,
    covariates: tuple[str, ...] = (),
    time_column: str | None = None,
    id_column: str | None = None,
    target: str | None = None,
    source: str | None = None,
    encoding: str = "utf-8",
) -> SeriesSet:
    """Read a wide or long CSV file of time series (see the module docstring).

    Args:
        path: the CSV file.
        freq: the step (``"1h"``, ``"30min"``, ...); default: the most common time difference.
        covariates: columns that are inputs known in advance, not series to forecast.
        time_column, id_column, target: column names, if not the usual ones.
        source: the name to record (default: ``path``).
        encoding: the file's text encoding (a byte-order mark decides over utf-8).

    Raises:
        DataError: naming ``file:line`` for unreadable times and values, duplicate times and
            irregular steps, and the series for one without values.
    """
    name = os.fspath(path)
    text = read_text_file(path, encoding=encoding)
    first = text.split("\n", 1)[0]
    # Spreadsheets in many locales export ';' (their decimal mark is the comma), and tools
    # write tab-separated files: a header without a comma says which separator the file uses.
    delimiter = next((d for d in ";\t" if "," not in first and d in first), ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header or len(header) < 2:
        raise DataError(
            f"{name}: the first line should name a time column and value columns, separated by "
            f"commas (or ';' or tabs); it reads {first[:60]!r}"
        )
    t_col = _pick(header, time_column, TIME_NAMES, name)
    t_col = 0 if t_col is None else t_col
    id_col = _pick(header, id_column, ID_NAMES, name)
    cov_cols = []
    for cov in covariates:
        index = _pick(header, cov, (), name)
        assert index is not None  # _pick raises for a given name it cannot find
        cov_cols.append(index)
    if id_col is None:  # wide: every other column is a series
        value_cols = [i for i in range(len(header)) if i != t_col and i not in cov_cols]
    else:
        v_col = _pick(header, target, VALUE_NAMES, name)
        if v_col is None:
            raise DataError(
                f"{name} has a series column {header[id_col]!r} but no value column; "
                "name it value (or pass --target COLUMN)"
            )
        value_cols = [v_col]
        used = {t_col, id_col, v_col, *cov_cols}
        extra = [header[i] for i in range(len(header)) if i not in used]
        if extra:
            raise DataError(
                f"{name}: column {extra[0]!r} is neither time, series, value nor a covariate; "
                f"pass --covariates {','.join(extra)} to use it, or remove it"
            )
    if not value_cols:
        raise DataError(f"{name} has no value column besides the time and covariates")
    rows: dict[str, list[_Row]] = {}
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        where = f"{name}:{line}"
        if len(fields) != len(header):
            raise DataError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        time = parse_time(fields[t_col], where)
        covs = [parse_number(fields[i], where, header[i]) for i in cov_cols]
        for col in value_cols:
            key = fields[id_col].strip() if id_col is not None else header[col].strip()
            value = parse_number(fields[col], where, header[col])
            rows.setdefault(key, []).append(_Row(time, line, value, covs))
    if not rows:
        raise DataError(f"{name} has a header but no rows")
    return _on_grid(rows, name, source or name, freq, [header[i].strip() for i in cov_cols])


def _on_grid(
    rows: dict[str, list[_Row]], path: str, source: str, freq: str | None, cov_names: list[str]
) -> SeriesSet:
    for key, series_rows in rows.items():
        series_rows.sort(key=lambda r: r.time)
        for a, b in zip(series_rows, series_rows[1:]):
            if a.time == b.time:
                what = f" of series {key!r}" if len(rows) > 1 else ""
                raise DataError(
                    f"{path}:{b.line}: duplicate time {b.time}{what} (also on line {a.line}); "
                    "keep one row per time"
                )
    if freq is not None:
        step = parse_freq(freq)
    else:
        diffs = Counter(
            int((b.time - a.time).total_seconds())
            for series_rows in rows.values()
            for a, b in zip(series_rows, series_rows[1:])
        )
        if not diffs:
            raise DataError(f"{path}: every series has a single row; nothing to forecast")
        step = diffs.most_common(1)[0][0]
    start = min(r[0].time for r in rows.values())
    series, missing, gaps = [], 0, 0
    for key, series_rows in rows.items():
        index = []
        for r in series_rows:
            seconds = (r.time - start).total_seconds()
            if seconds % step:
                raise DataError(
                    f"{path}:{r.line}: the time {r.time} is off the {format_freq(step)} grid "
                    f"that starts at {start}; the time column is irregular (fix the time, "
                    "or pass --freq with the real step)"
                )
            index.append(int(seconds // step))
        covs = np.full((index[-1] - index[0] + 1, len(cov_names)), np.nan)
        values = np.full(len(covs), np.nan)
        for k, r in zip(index, series_rows):
            values[k - index[0]] = r.value
            covs[k - index[0]] = r.covariates
        observed = np.flatnonzero(~np.isnan(values))
        if len(observed) == 0:
            raise DataError(f"series {key!r} in {path} has no values")
        first, last = observed[0], observed[-1] + 1
        gaps += last - first - sum(1 for k in index if index[0] + first <= k < index[0] + last)
        missing += int(np.isnan(values[first:last]).sum())
        covs = covs[first:]
        for c, column in enumerate(cov_names):
            if np.isnan(covs[:, c]).all():
                raise DataError(f"covariate {column!r} of series {key!r} in {path} is empty")
            covs[:, c] = interpolate(covs[:, c])
        series.append(Series(key, int(index[0] + first), values[first:last], covs))
    return SeriesSet(series, start, step, cov_names, source, int(missing), int(gaps))


def interpolate(values: np.ndarray) -> np.ndarray:
    """``values`` with NaNs filled linearly between neighbours (held flat at the ends)."""
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    positions = np.arange(len(values))
    out = values.copy()
    out[missing] = np.interp(positions[missing], positions[~missing], values[~missing])
    return out


def check_series(data: SeriesSet, *, context: int, horizon: int) -> None:
    """Refuse series a model cannot learn from or be scored on, naming the series.

    Raises:
        DataError: a series is shorter than ``context + horizon`` steps, or constant; or the
            training period leaves no window of ``context + horizon`` steps.
    """
    for s in data.series:
        if len(s.values) < context + horizon:
            raise DataError(
                f"series {s.name!r} in {data.source} has {len(s.values)} steps, fewer than "
                f"context + horizon = {context + horizon}; give a longer series or pass a "
                "smaller --context/--horizon"
            )
        observed = s.values[~np.isnan(s.values)]
        if np.ptp(observed) == 0:
            raise DataError(
                f"series {s.name!r} in {data.source} is constant ({observed[0]:g} throughout); "
                "there is nothing to learn from it, leave it out"
            )
    valid_start, _ = data.cuts()
    if all(valid_start - s.offset < context + horizon for s in data.series):
        raise DataError(
            f"the training period of {data.source} (its first 80%, {valid_start} steps) holds no "
            f"window of context + horizon = {context + horizon} steps; give more data or a "
            "smaller --context/--horizon"
        )


def set_split(data: SeriesSet, split: list[str] | None) -> SeriesSet:
    """``data`` split at two times instead of 80%/90%: ``split = [first validation time,
    first test time]`` (ISO, on the grid; the test period may be empty: a time at the end).

    Raises:
        DataError: a time that cannot be read, is off the grid, or outside the data, or two
            times out of order.
    """
    if split is None:
        return data
    if len(split) != 2:
        raise DataError(
            f"split takes two times (the first of validation and of test), got {len(split)}"
        )
    bounds = []
    for text in split:
        seconds = (parse_time(text, "split") - data.start).total_seconds()
        if seconds % data.step:
            raise DataError(
                f"split time {text!r} is off the {format_freq(data.step)} grid of "
                f"{data.source} (it starts at {data.start}); give a time on the grid"
            )
        index = int(seconds // data.step)
        if not 0 < index <= data.length:
            raise DataError(
                f"split time {text!r} lies outside {data.source} ({data.start} to "
                f"{data.time_at(data.length - 1)}); give a time inside the data"
            )
        bounds.append(index)
    if bounds[0] >= bounds[1]:
        raise DataError(f"split times must increase: {split[0]!r} is not before {split[1]!r}")
    data.bounds = (bounds[0], bounds[1])
    return data


def load_series(
    data: str,
    *,
    freq: str | None = None,
    covariates: tuple[str, ...] = (),
    time_column: str | None = None,
    id_column: str | None = None,
    target: str | None = None,
    encoding: str = "utf-8",
) -> SeriesSet:
    """A named dataset (downloaded once, then cached; see :mod:`.sources`) or a CSV file in
    ``encoding`` (named datasets are always UTF-8)."""
    from rnnkit.forecast.sources import SERIES, fetch_series

    options = dict(freq=freq, covariates=covariates, time_column=time_column)
    options.update(id_column=id_column, target=target)
    if data in SERIES and not os.path.exists(data):
        return read_csv(fetch_series(SERIES[data]), source=data, **options)
    if not os.path.exists(data):
        raise DataError(
            f"no such file: {data} (give a CSV file or a dataset name: {', '.join(SERIES)})"
        )
    return read_csv(data, encoding=encoding, **options)
