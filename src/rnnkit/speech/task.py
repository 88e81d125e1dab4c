"""The speech model as a :class:`rnnkit.training.TrainingTask`: length-bucketed batches of whole
utterances in a seeded order, SpecAugment, CTC loss per character.

With ``selection`` (featurized validation utterances), the trainer keeps the weights with the
lowest greedy WER on them (:meth:`SpeechTask.selection_score`) instead of the lowest CTC loss;
the loss is validated and logged either way."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from rnnkit.nn.ctc import ctc_loss
from rnnkit.speech.data import Alphabet, Batch, Example, collate, length_batches
from rnnkit.speech.decode import greedy_decode
from rnnkit.speech.features import SpecAugment
from rnnkit.speech.metrics import wer
from rnnkit.speech.recipe import LOSS_UNIT
from rnnkit.training.distributed import check_world, rank_rows, to_device
from rnnkit.training.loop import Score

TASK = "speech"
EVAL_FRAMES = 20000  # padded frames per evaluation batch


class SpeechTask:
    """Batches of up to ``batch_frames`` padded frames; each epoch visits them in an order that
    depends only on (seed, epoch), and SpecAugment draws each utterance's masks from the seed,
    the epoch, the batch and the utterance's place in it, so a resumed run sees the same data as
    an uninterrupted one, and a rank the same as one process (see :meth:`shard`)."""

    name = TASK
    loss_unit = LOSS_UNIT  # the trainer's progress line and the playground's curves

    def __init__(
        self,
        splits: dict[str, Sequence[Example]],
        *,
        batch_frames: int,
        seed: int,
        augment: SpecAugment | None,
        ctc_impl: str = "rnnkit",
        selection: Sequence[Example] | None = None,
        alphabet: Alphabet | None = None,
    ) -> None:
        if selection is not None and (not selection or alphabet is None):
            raise ValueError("selection needs at least one utterance and the alphabet")
        self.selection, self.alphabet = selection, alphabet
        self.splits = splits
        self.seed = seed
        self.augment = augment
        self.ctc_impl = ctc_impl
        self.batches = length_batches(splits["train"], batch_frames)
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Train on this rank's share of every global batch (the distributed sampler: the
        batches and their order depend only on the seed and the epoch; rank r takes the
        utterances r, r + world_size, ... of each)."""
        check_world(world_size, len(self.splits["train"]), "training utterances")
        self.rank, self.world_size = rank, world_size

    def steps_per_epoch(self) -> int:
        return len(self.batches)

    def train_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        order = list(range(len(self.batches)))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        train = self.splits["train"]
        for position in range(start, len(order)):
            batch = list(enumerate(self.batches[order[position]]))
            mine, counted = rank_rows(batch, self.rank, self.world_size)
            examples = [train[i] for _, i in mine]
            if self.augment is not None:
                examples = [self._augmented(e, (self.seed, epoch, position, j))
                            for e, (j, _) in zip(examples, mine)]  # fmt: skip
            batch = collate(examples)
            batch.counted = counted
            yield batch

    def _augmented(self, example: Example, key: tuple[int, ...]) -> Example:
        """``example`` under SpecAugment masks drawn from ``key`` alone."""
        g = torch.Generator().manual_seed(hash(key) % 2**62)
        return Example(self.augment(example.feats, g), example.labels, example.text)

    def train_loss(self, model: nn.Module, batch: Batch, carry: object) -> tuple[Tensor, int, None]:
        total, labels = self.batch_loss(model, batch, training=True)
        return total / max(labels, 1), labels if batch.counted else 0, None

    def batch_loss(
        self, model: nn.Module, batch: Batch, training: bool = False
    ) -> tuple[Tensor, int]:
        """Summed CTC loss of ``batch`` (utterances too short for their text count 0) and the
        number of target characters. ``training``, for a self-conditioned model
        (``AcousticConfig.self_condition`` = w): ``(1 - w)`` times the loss of its output plus
        ``w`` times that of its first layer's predictions; validation scores the output alone."""
        log_probs, inner, lengths = model.forward_all(batch.feats, batch.lengths)
        nll = self._ctc(log_probs, batch, lengths)
        if training and inner is not None:
            w = model.config.self_condition
            nll = (1.0 - w) * nll + w * self._ctc(inner, batch, lengths)
        return nll, int(batch.target_lengths.sum())

    def _ctc(self, log_probs: Tensor, batch: Batch, lengths: Tensor) -> Tensor:
        return ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, reduction="sum",
                        zero_infinity=True, impl=self.ctc_impl)  # fmt: skip

    def evaluate(self, model: nn.Module, split: str) -> float:
        total, labels = 0.0, 0
        examples = self.splits[split]
        device = next(model.parameters()).device
        for index in length_batches(examples, EVAL_FRAMES):
            batch = to_device(collate([examples[i] for i in index]), device)
            nll, n = self.batch_loss(model, batch)
            total, labels = total + float(nll), labels + n
        return total / max(labels, 1)

    def selection_score(self, model: nn.Module) -> Score | None:
        """Greedy WER (:func:`rnnkit.speech.metrics.wer`, as ``api.evaluate`` reports it) of the
        ``selection`` utterances; lower is better. None without them (the loss chooses).

        Deterministic (eval mode, best path), so a resumed run scores its weights as the
        uninterrupted run does. Called by the trainer under ``torch.no_grad()``."""
        examples = self.selection
        if examples is None:
            return None
        device = next(model.parameters()).device
        hyps = [""] * len(examples)
        for index in length_batches(examples, EVAL_FRAMES):
            index = sorted(index, key=lambda i: -examples[i].feats.shape[0])  # collate's order
            batch = to_device(collate([examples[i] for i in index]), device)
            log_probs, lengths = model(batch.feats, batch.lengths)  # (T', B, C), (B,)
            log_probs, lengths = log_probs.float().cpu(), lengths.cpu()
            for row, i in enumerate(index):
                tokens = greedy_decode(log_probs[: int(lengths[row]), row]).tokens
                hyps[i] = " ".join(self.alphabet.decode(tokens).split())
        return Score("WER", wer([e.text for e in examples], hyps), higher_is_better=False)
