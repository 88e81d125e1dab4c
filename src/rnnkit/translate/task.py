"""Translation as a :class:`rnnkit.training.TrainingTask`: bucketed batches of sentence pairs,
label-smoothed cross-entropy with scheduled teacher forcing, validation loss per target token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import DataError
from rnnkit.training.distributed import check_divides, check_world, rank_rows, to_device
from rnnkit.translate.data import Batch, TranslationData, bucketed_batches, collate
from rnnkit.translate.recipe import TranslateRecipe

TASK = "translate"  # the task name in run directories


class TranslationTask:
    """The translation task for ``rnnkit.training.Trainer`` (its ``TrainingTask`` protocol)."""

    name = TASK

    def __init__(self, data: TranslationData, recipe: TranslateRecipe) -> None:
        if not data.examples["train"]:
            raise DataError(
                f"no training pair has at most max_len={data.max_len} tokens a side; "
                "raise --max-len"
            )
        self.data, self.recipe = data, recipe
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Train on this rank's share of every global batch (the distributed sampler: the batches
        depend only on the seed and the epoch; rank r takes rows r, r + world_size, ...)."""
        check_divides(self.recipe.batch_size, world_size)
        check_world(world_size, len(self.data.examples["train"]), "training pairs")
        self.rank, self.world_size = rank, world_size

    def _batches(self, split: str, epoch: int) -> list[list[int]]:
        examples = self.data.examples[split]
        lengths = [len(s) for s, _ in examples]
        return bucketed_batches(lengths, self.recipe.batch_size, seed=self.recipe.seed, epoch=epoch)

    def steps_per_epoch(self) -> int:
        """Batches in one pass over the training pairs."""
        return -(-len(self.data.examples["train"]) // self.recipe.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of epoch ``epoch``."""
        examples = self.data.examples["train"]
        for indices in self._batches("train", epoch)[start:]:
            mine, counted = rank_rows(indices, self.rank, self.world_size)
            batch = collate([examples[i] for i in mine], self.data.target_vocab)
            yield dataclasses.replace(batch, counted=counted)

    def train_loss(self, model: nn.Module, batch: Batch, carry: Any) -> tuple[Tensor, int, None]:
        """Label-smoothed cross-entropy per target token, with scheduled teacher forcing."""
        logits = model(batch.src, batch.src_lengths, batch.tgt_in, self.recipe.teacher_forcing)
        pad = self.data.target_vocab.pad_index
        loss = token_loss(logits, batch.tgt_out, pad, self.recipe.label_smoothing)
        return loss, int((batch.tgt_out != pad).sum()) if batch.counted else 0, None

    def evaluate(self, model: nn.Module, split: str) -> float:
        """Mean negative log-likelihood per target token on ``split`` (true previous tokens)."""
        examples = self.data.examples[split]
        if not examples:
            raise DataError(f"the {split} split is empty; give a larger corpus")
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for indices in self._batches(split, epoch=0):
            batch = collate([examples[i] for i in indices], self.data.target_vocab)
            batch = to_device(batch, device)
            logits = model(batch.src, batch.src_lengths, batch.tgt_in)
            n = int((batch.tgt_out != self.data.target_vocab.pad_index).sum())
            total += float(token_loss(logits, batch.tgt_out, self.data.target_vocab.pad_index)) * n
            count += n
        return total / count


def token_loss(
    logits: Tensor, targets: Tensor, pad_index: int, label_smoothing: float = 0.0
) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, T, V) against ``targets`` (N, T), padding ignored."""
    flat = logits.reshape(-1, logits.size(-1))
    return F.cross_entropy(
        flat, targets.reshape(-1), ignore_index=pad_index, label_smoothing=label_smoothing
    )
