"""The speech model as a :class:`rnnkit.training.TrainingTask`: length-bucketed batches of whole
utterances in a seeded order, SpecAugment, CTC loss per character."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from rnnkit.nn.ctc import ctc_loss
from rnnkit.speech.data import Batch, Example, collate, length_batches
from rnnkit.speech.features import SpecAugment

TASK = "speech"
EVAL_FRAMES = 20000  # padded frames per evaluation batch


class SpeechTask:
    """Batches of up to ``batch_frames`` padded frames; each epoch visits them in an order that
    depends only on (seed, epoch), and SpecAugment draws its masks from the same seed, so a
    resumed run sees the same data as an uninterrupted one."""

    name = TASK

    def __init__(
        self,
        splits: dict[str, Sequence[Example]],
        *,
        batch_frames: int,
        seed: int,
        augment: SpecAugment | None,
        ctc_impl: str = "rnnkit",
    ) -> None:
        self.splits = splits
        self.seed = seed
        self.augment = augment
        self.ctc_impl = ctc_impl
        self.batches = length_batches(splits["train"], batch_frames)

    def steps_per_epoch(self) -> int:
        return len(self.batches)

    def train_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        order = list(range(len(self.batches)))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        train = self.splits["train"]
        for position in range(start, len(order)):
            examples = [train[i] for i in self.batches[order[position]]]
            if self.augment is not None:
                g = torch.Generator().manual_seed(hash((self.seed, epoch, position)) % 2**62)
                examples = [Example(self.augment(e.feats, g), e.labels, e.text) for e in examples]
            yield collate(examples)

    def train_loss(self, model: nn.Module, batch: Batch, carry: object) -> tuple[Tensor, int, None]:
        total, labels = self.batch_loss(model, batch)
        return total / max(labels, 1), labels, None

    def batch_loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        """Summed CTC loss of ``batch`` (utterances too short for their text count 0) and the
        number of target characters."""
        log_probs, lengths = model(batch.feats, batch.lengths)
        nll = ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, reduction="sum",
                       zero_infinity=True, impl=self.ctc_impl)  # fmt: skip
        return nll, int(batch.target_lengths.sum())

    def evaluate(self, model: nn.Module, split: str) -> float:
        total, labels = 0.0, 0
        examples = self.splits[split]
        for index in length_batches(examples, EVAL_FRAMES):
            nll, n = self.batch_loss(model, collate([examples[i] for i in index]))
            total, labels = total + float(nll), labels + n
        return total / max(labels, 1)
