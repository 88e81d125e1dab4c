"""The language model as a :class:`rnnkit.training.TrainingTask`: B streams of the training text,
truncated-BPTT windows, the hidden state carried from window to window; and the loss of a whole
text read the same way (evaluation).
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import batchify, check_long_enough, get_window, num_windows
from rnnkit.errors import DataError
from rnnkit.lm.model import token_loss
from rnnkit.training.distributed import check_divides

TASK = "lm"  # the task name in run directories
EVAL_BATCH_SIZE = 16  # streams used to evaluate a split (few: little context is lost at starts)
EVAL_BPTT = 256  # window length when evaluating
# An LSTM unit whose cell state passes |c| = 20 is saturated: tanh(c) is +-1 to 1e-17, so h says
# nothing about c and no gradient flows through it. Carried from window to window, such a state
# can grow without bound (docs/language-models.md, "A saturated LSTM").
SATURATED_CELL = 20.0
SATURATED_SHARE = 0.25  # check_health warns when a layer has this share of saturated units


class LanguageModelTask:
    """The LM as a :class:`rnnkit.training.TrainingTask`: B streams, truncated-BPTT windows,
    the hidden state carried from window to window."""

    name = TASK

    def __init__(
        self, splits: dict[str, Tensor], *, batch_size: int, bptt: int,
        variable_bptt: bool = False, ar: float = 0.0, tar: float = 0.0, seed: int = 0,
    ) -> None:  # fmt: skip
        check_long_enough(splits["train"].numel(), batch_size, bptt, what="the training text")
        self.splits = splits
        self.bptt = bptt
        self.variable_bptt = variable_bptt
        self.ar, self.tar, self.seed = ar, tar, seed
        self.streams = batchify(splits["train"], batch_size)  # (T, B)

    def shard(self, rank: int, world_size: int) -> None:
        """Keep this rank's group of streams: the B streams split into ``world_size`` groups of
        B / world_size contiguous columns (``--batch-size`` is the global batch)."""
        share = check_divides(self.streams.size(1), world_size)
        self.streams = self.streams[:, rank * share : (rank + 1) * share]  # (T, B / world_size)

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        """(first row, length) of each training window of ``epoch``: ``bptt`` each, or with
        ``variable_bptt`` random lengths that depend only on (seed, epoch) (exact resume)."""
        rows = self.streams.size(0)
        if not self.variable_bptt:
            return [(i * self.bptt, self.bptt) for i in range(num_windows(self.streams, self.bptt))]
        return variable_windows(rows, self.bptt, random.Random(f"{self.seed}/{epoch}"))

    def steps_per_epoch(self) -> int:
        return len(self.windows(0))  # variable_bptt: the first epoch's count (others are close)

    def train_batches(self, epoch: int, start: int) -> Any:
        # The streams continue from window to window (the state is carried between them).
        for first, length in self.windows(epoch)[start:]:
            length = min(length, self.streams.size(0) - 1 - first)
            yield self.streams[first : first + length], self.streams[first + 1 : first + 1 + length]

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]:
        inputs, targets = batch
        if not (self.ar or self.tar):
            loss, state = model.loss(inputs, targets, carry)
            return loss, targets.numel(), state
        raw, dropped, state = model.features(inputs, carry)
        loss = token_loss(model.output(dropped), targets)
        penalty = activation_penalty(raw, dropped, ar=self.ar, tar=self.tar)
        # The penalty adds its gradient, not its value: the reported loss stays nats/token.
        return loss + (penalty - penalty.detach()), targets.numel(), state

    def evaluate(self, model: nn.Module, split: str) -> float:
        return stream_loss(model, self.splits[split])[0]

    def check_carry(self, model: nn.Module, carry: Any) -> str | None:
        """What is wrong with a carried state read from a checkpoint (None: it fits)."""
        if carry is None:
            return None
        config = model.config
        expected = (config.num_layers, self.streams.size(1), config.hidden_size)
        parts = carry if isinstance(carry, (tuple, list)) else (carry,)
        count = 2 if config.cell == "lstm" else 1
        shapes = [tuple(p.shape) if isinstance(p, Tensor) else None for p in parts]
        if len(parts) != count or any(shape != expected for shape in shapes):
            return f"its hidden state has shape {shapes}, the model needs {count} x {expected}"
        return None

    def check_health(self, model: nn.Module, carry: Any) -> str | None:
        """A warning when an LSTM layer's carried cell state is saturated in a quarter or more
        of its units (|c| > 20), the state in which training stalls; None otherwise."""
        if model.config.cell != "lstm" or carry is None:
            return None
        cell = carry[1]  # the LSTM's (h, c), each (layers, streams, hidden), already detached
        shares = (cell.abs() > SATURATED_CELL).flatten(1).float().mean(1)
        layer = int(shares.argmax())
        if shares[layer] < SATURATED_SHARE:
            return None
        return (
            f"{float(shares[layer]):.0%} of the units of LSTM layer {layer + 1} have a saturated "
            f"cell state (|c| > {SATURATED_CELL:g}, so tanh(c) = +-1 and passes no gradient); "
            "such a model learns little more than how often each token occurs. A longer "
            "--warmup-steps (500) or --layer-norm avoids it (docs/language-models.md, "
            '"A saturated LSTM")'
        )


def variable_windows(rows: int, bptt: int, rng: random.Random) -> list[tuple[int, int]]:
    """AWD-LSTM's variable BPTT (Merity et al. 2017, section 4.1): each window's base length is
    ``bptt`` with probability 0.95, else ``bptt / 2``; its length is drawn from N(base, 5) and
    kept at least min(5, bptt). Returns (first row, length) pairs covering ``rows - 1`` targets."""
    windows, first = [], 0
    while first < rows - 1:
        base = bptt if rng.random() < 0.95 else bptt / 2
        length = min(max(min(5, bptt), int(rng.gauss(base, 5))), rows - 1 - first)
        windows.append((first, length))
        first += length
    return windows


def activation_penalty(raw: Tensor, dropped: Tensor, *, ar: float, tar: float) -> Tensor:
    """AR + TAR (Merity et al. 2017, section 4.6) of the last layer's outputs (T, B, H):
    ``ar * mean(dropped^2) + tar * mean((raw[t] - raw[t-1])^2)`` (``dropped``: after the
    output dropout, ``raw``: before it)."""
    penalty = ar * dropped.pow(2).mean()
    if raw.size(0) > 1:
        penalty = penalty + tar * (raw[1:] - raw[:-1]).pow(2).mean()
    return penalty


def stream_loss(model: nn.Module, ids: Tensor) -> tuple[float, int]:
    """Mean loss (nats/token) of ``model`` predicting every token of ``ids`` from the ones before
    (read as a few parallel streams, state carried); also the number of tokens predicted."""
    if ids.numel() < 2:
        raise DataError(f"the evaluation text has {ids.numel()} tokens; need at least 2")
    ids = ids.to(next(model.parameters()).device)
    streams = batchify(ids, max(1, min(EVAL_BATCH_SIZE, ids.numel() // 2)))
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for index in range(num_windows(streams, EVAL_BPTT)):
            inputs, targets = get_window(streams, index, EVAL_BPTT)
            loss, state = model.loss(inputs, targets, state)
            total += float(loss) * targets.numel()
            count += targets.numel()
    return total / count, count
