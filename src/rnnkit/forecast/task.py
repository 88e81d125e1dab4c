"""The forecaster as a :class:`rnnkit.training.TrainingTask`: windows cut from the series.

A window is named by a series and an *origin*, the grid index of its first forecast step; it
covers ``max_lag + context`` steps before the origin and ``horizon`` steps from it. Training
windows lie wholly in the training period (origins drawn uniformly over every window that fits,
seeded by (seed, epoch)); validation and test windows start at origins every ``horizon`` steps
in their periods. The loss is the negative log-likelihood in nats per observed value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.errors import DataError
from rnnkit.forecast.data import DAY, SeriesSet, interpolate
from rnnkit.forecast.recipe import LOSS_UNIT
from rnnkit.training.distributed import check_divides, to_device

TASK = "forecast"


class Batch(NamedTuple):
    """Windows as tensors (see :class:`rnnkit.forecast.model.DeepAR` for the shapes)."""

    values: Tensor  # (N, W) values, missing ones filled in by interpolation
    observed: Tensor  # (N, W) 1.0 where observed
    features: Tensor  # (N, W - max_lag, F) known inputs of the RNN steps
    series: Tensor  # (N,) series indices


class Windows:
    """Cuts windows from a :class:`SeriesSet`, covariates standardised by ``cov_stats``.

    Values before a series' first step (when a lag reaches back that far) repeat its first
    value and count as unobserved.
    """

    def __init__(
        self, data: SeriesSet, *, max_lag: int, context: int, horizon: int,
        cov_stats: tuple[list[float], list[float]],
    ) -> None:  # fmt: skip
        self.data, self.max_lag, self.context, self.horizon = data, max_lag, context, horizon
        mean, std = (np.asarray(x, dtype=np.float32) for x in cov_stats)
        self.filled, self.observed, self.features = [], [], []
        for s in data.series:
            pad = max_lag
            filled = interpolate(s.values)
            self.filled.append(np.concatenate([np.full(pad, filled[0]), filled]).astype(np.float32))
            seen = ~np.isnan(s.values)
            self.observed.append(np.concatenate([np.zeros(pad, bool), seen]).astype(np.float32))
            feats = data.features(s, extra=horizon)
            k = feats.shape[1] - len(mean)
            feats[:, k:] = (feats[:, k:] - mean) / std
            self.features.append(feats)

    def available(self, index: int) -> int:
        """Grid index just after the last step of series ``index`` with known features."""
        s = self.data.series[index]
        return s.offset + len(self.features[index])

    def batch(self, picks: list[tuple[int, int]], *, with_future: bool = True) -> Batch:
        """Windows of (series index, origin) pairs; ``with_future=False`` stops at the origin
        (values) while features still cover the horizon."""
        span = self.max_lag + self.context
        values, observed, features = [], [], []
        for index, origin in picks:
            s = self.data.series[index]
            local = origin - s.offset + self.max_lag  # origin in the padded arrays
            stop = local + (self.horizon if with_future else 0)
            values.append(self.filled[index][local - span : stop])
            observed.append(self.observed[index][local - span : stop])
            f0 = origin - s.offset - self.context
            features.append(self.features[index][f0 : f0 + self.context + self.horizon])
        return Batch(
            torch.from_numpy(np.stack(values)),
            torch.from_numpy(np.stack(observed)),
            torch.from_numpy(np.stack(features)),
            torch.tensor([i for i, _ in picks], dtype=torch.long),
        )

    def origins(
        self, first: int, last: int, *, stride: int, midnight: bool = False
    ) -> list[tuple[int, int]]:
        """(series, origin) pairs with origins ``first, first + stride, ...`` whose horizon
        ends by ``last`` and inside the series, with a full context before them. ``midnight``:
        sub-daily data starts at the first midnight at or after ``first``."""
        if midnight and self.data.step < DAY:
            while first < last and self.data.epoch_s(first) % DAY:
                first += 1
        picks = []
        for origin in range(first, last - self.horizon + 1, stride):
            for index, s in enumerate(self.data.series):
                if s.offset + self.context <= origin and origin + self.horizon <= s.end:
                    picks.append((index, origin))
        return picks

    def training_origins(self, last: int) -> list[tuple[int, int]]:
        """Every (series, origin) whose window (horizon included) ends by ``last``."""
        picks = []
        for index, s in enumerate(self.data.series):
            stop = min(s.end, last) - self.horizon
            picks += [(index, o) for o in range(s.offset + self.context, stop + 1)]
        return picks


def covariate_stats(data: SeriesSet, last: int) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each covariate over the steps before ``last``."""
    k = len(data.covariate_names)
    if k == 0:
        return [], []
    rows = [s.covariates[: max(0, last - s.offset)] for s in data.series]
    stacked = np.concatenate(rows) if rows else np.zeros((0, k))
    mean = stacked.mean(axis=0) if len(stacked) else np.zeros(k)
    std = stacked.std(axis=0) if len(stacked) else np.ones(k)
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


class ForecastTask:
    """Windows, loss and evaluation for the shared :class:`rnnkit.training.Trainer`."""

    name = TASK
    loss_unit = LOSS_UNIT  # the trainer's progress line and the playground's curves

    def __init__(
        self, windows: Windows, *, batch_size: int, steps_per_epoch: int, seed: int,
        free_running: bool = False, train_until: int | None = None,
    ) -> None:  # fmt: skip
        self.windows = windows
        self.free_running = free_running
        self.batch_size, self.seed = batch_size, seed
        self._steps = steps_per_epoch
        valid_start, test_start = windows.data.cuts()
        # training windows end by the validation period; a refit's (train_until: the test
        # start) by the test period
        self.train_picks = windows.training_origins(train_until or valid_start)
        h = windows.horizon
        self.eval_picks = {
            "valid": windows.origins(valid_start, test_start, stride=h),
            "test": windows.origins(test_start, windows.data.length, stride=h),
        }
        if not self.train_picks or not self.eval_picks["valid"]:
            raise DataError(
                f"{windows.data.source} is too short to split: its validation period (10%) "
                f"needs a window of context + horizon = {windows.context + h} steps after a "
                "full context; give more data or a smaller --context/--horizon"
            )
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Train on this rank's share of every global batch: the windows of an epoch are drawn
        from (seed, epoch) alone, and rank r takes windows r, r + world_size, ... of each."""
        check_divides(self.batch_size, world_size)
        self.rank, self.world_size = rank, world_size

    def steps_per_epoch(self) -> int:
        return self._steps

    def train_batches(self, epoch: int, start: int) -> Any:
        rng = np.random.default_rng([self.seed, epoch])
        draws = rng.integers(0, len(self.train_picks), size=(self._steps, self.batch_size))
        for row in draws[start:, self.rank :: self.world_size]:
            yield self.windows.batch([self.train_picks[i] for i in row])

    def train_loss(self, model: nn.Module, batch: Batch, carry: Any) -> tuple[Tensor, int, Any]:
        mask = batch.observed[:, model.config.max_lag :]
        loss = model.nll_free_running if self.free_running else model.nll
        total, count = loss(
            batch.values, batch.observed, mask, batch.features, batch.series,
            self.windows.context,
        )  # fmt: skip
        n = max(int(count), 1)
        return total / n, n, None

    def evaluate(self, model: nn.Module, split: str) -> float:
        """Mean NLL (nats per observed value) of the horizon steps of the split's windows."""
        picks = self.eval_picks[split] or self.eval_picks["valid"]  # a short test period
        total, count = 0.0, 0.0
        device = next(model.parameters()).device
        for i in range(0, len(picks), 256):
            batch = to_device(self.windows.batch(picks[i : i + 256]), device)
            mask = batch.observed[:, model.config.max_lag :].clone()
            mask[:, : self.windows.context] = 0  # score the forecast steps only
            t, c = model.nll(
                batch.values, batch.observed, mask, batch.features, batch.series,
                self.windows.context,
            )  # fmt: skip
            total, count = total + float(t), count + float(c)
        return total / max(count, 1.0)
