"""The language model as a :class:`rnnkit.training.TrainingTask`: B streams of the training text,
truncated-BPTT windows, the hidden state carried from window to window; and the loss of a whole
text read the same way (evaluation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import batchify, check_long_enough, get_window, num_windows
from rnnkit.errors import DataError
from rnnkit.training.distributed import check_divides

TASK = "lm"  # the task name in run directories
EVAL_BATCH_SIZE = 16  # streams used to evaluate a split (few: little context is lost at starts)
EVAL_BPTT = 256  # window length when evaluating


class LanguageModelTask:
    """The LM as a :class:`rnnkit.training.TrainingTask`: B streams, truncated-BPTT windows,
    the hidden state carried from window to window."""

    name = TASK

    def __init__(self, splits: dict[str, Tensor], *, batch_size: int, bptt: int) -> None:
        check_long_enough(splits["train"].numel(), batch_size, bptt, what="the training text")
        self.splits = splits
        self.bptt = bptt
        self.streams = batchify(splits["train"], batch_size)  # (T, B)

    def shard(self, rank: int, world_size: int) -> None:
        """Keep this rank's group of streams: the B streams split into ``world_size`` groups of
        B / world_size contiguous columns (``--batch-size`` is the global batch)."""
        share = check_divides(self.streams.size(1), world_size)
        self.streams = self.streams[:, rank * share : (rank + 1) * share]  # (T, B / world_size)

    def steps_per_epoch(self) -> int:
        return num_windows(self.streams, self.bptt)

    def train_batches(self, epoch: int, start: int) -> Any:
        # The same order every epoch: the streams must continue from window to window.
        for index in range(start, self.steps_per_epoch()):
            yield get_window(self.streams, index, self.bptt)

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]:
        inputs, targets = batch
        loss, state = model.loss(inputs, targets, carry)
        return loss, targets.numel(), state

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
