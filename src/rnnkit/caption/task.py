"""Captioning as a training task for the shared loop (:class:`rnnkit.training.Trainer`).

An epoch visits every training image once, in an order fixed by ``(seed, epoch)``, and pairs each
with one of its reference captions, drawn anew every epoch (so all references are seen over the
epochs). The loss is the cross-entropy per caption word (teacher forcing) plus, for the attention
decoder, the doubly stochastic attention penalty of Xu et al. (2015, eq. 14),
``lambda * (1 - sum_t alpha_ti)^2``, averaged over the cells and the batch as common
implementations do (summed over 64 cells it would outweigh the words). Optionally (the recipe's
``word_dropout`` and ``scheduled_sampling``) a previous word is replaced by ``<unk>`` or by the
model's own best guess. With ``consensus_references`` k > 0, the reference caption of an
image is drawn with probability proportional to ``exp(k * c_j)``, ``c_j`` its consensus with the
image's other references (the mean n-gram Dice similarity of :mod:`rnnkit.search.consensus`), so
training leans toward the phrasing the references agree on. Validation reports the
cross-entropy alone, over every reference caption of the split, in nats per word. Given
``selection_references`` (the words of the references of the first n validation pictures), the
task also scores the greedy captions of those pictures with CIDEr-D
(:meth:`CaptionTask.selection_score`), and the trainer keeps the weights with the best such
score instead of the lowest loss.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.caption import metrics
from rnnkit.caption.decoding import decode_inputs
from rnnkit.caption.recipe import LOSS_UNIT, SAMPLING_RAMP_EPOCHS
from rnnkit.data.tokenize import Vocab
from rnnkit.errors import DataError
from rnnkit.search import SearchOptions
from rnnkit.search.consensus import ngram_counts, similarity
from rnnkit.training.distributed import check_divides, check_world, rank_rows, to_device
from rnnkit.training.loop import Score

TASK = "caption"
EVAL_BATCH = 128  # captions per evaluation batch


@dataclass
class Batch:
    """Images (or features) and their captions, padded."""

    inputs: Tensor  # (N, S, S, 3) uint8 images, or (N, L, F) features
    tgt_in: Tensor  # (N, T) <bos> + caption
    tgt_out: Tensor  # (N, T) caption + <eos>, padding after
    counted: bool = True  # False: a stand-in whose loss counts for nothing (CaptionTask.shard)
    words_per_image: float | None = None  # of the global batch (None: of this one); see shard
    sampling: float = 0.0  # scheduled sampling's rate at this batch (CaptionTask)


def encode_captions(
    captions: Sequence[Sequence[Sequence[str]]], vocab: Vocab, max_length: int
) -> list[list[list[int]]]:
    """Word ids of every reference caption, cut to ``max_length - 1`` words (room for eos)."""
    return [[vocab.encode(c[: max_length - 1]) for c in refs] for refs in captions]


def consensus_weights(references: Sequence[Sequence[int]], sharpness: float) -> list[float]:
    """Drawing weights of an image's references: ``exp(k (c_j - max c))``, ``c_j`` the mean
    n-gram Dice similarity of reference ``j`` to the image's other references (orders 1-4, as
    the consensus re-ranking of beam search scores them); all 1 for a single reference.

    Why: the scenes' grammar makes greedy search's choice a coin toss where two phrasings part
    ("a small red circle" goes on with "left of" in one reference phrasing and with "and" in
    another); weighting the references by their agreement moves each step's most likely word to
    the phrasing the references share (minimum Bayes risk, as in ``rerank``, at training time).
    """
    if len(references) < 2:
        return [1.0] * len(references)
    grams = [ngram_counts(r) for r in references]
    agree = [
        sum(similarity(g, h) for k, h in enumerate(grams) if k != j) / (len(grams) - 1)
        for j, g in enumerate(grams)
    ]
    top = max(agree)
    return [math.exp(sharpness * (c - top)) for c in agree]


def collate(inputs: Tensor, captions: Sequence[Sequence[int]], vocab: Vocab) -> Batch:
    """A :class:`Batch` of ``inputs`` (already the batch's rows) and one caption each."""
    pad, bos, eos = vocab.pad_index, vocab.bos_index, vocab.eos_index
    length = max(len(c) for c in captions) + 1
    tgt_in = torch.full((len(captions), length), pad, dtype=torch.long)
    tgt_out = torch.full((len(captions), length), pad, dtype=torch.long)
    for i, c in enumerate(captions):
        tgt_in[i, : len(c) + 1] = torch.tensor([bos, *c], dtype=torch.long)
        tgt_out[i, : len(c) + 1] = torch.tensor([*c, eos], dtype=torch.long)
    return Batch(inputs, tgt_in, tgt_out)


class CaptionTask:
    """The captioning task for ``Trainer`` (its ``TrainingTask`` protocol).

    Args:
        inputs: per split, the images ``(N, S, S, 3)`` uint8 or precomputed features ``(N, L, F)``.
        captions: per split, per image, its reference captions as word ids.
        vocab: the vocabulary (for the special tokens).
        batch_size: images per batch.
        attention_penalty: lambda of the doubly stochastic penalty.
        scheduled_sampling: the rate of feeding the model's own guess (reached over 2 epochs).
        word_dropout: the probability of replacing a previous word by ``<unk>``.
        consensus_references: k of the references' drawing weights (:func:`consensus_weights`);
            0 draws them uniformly.
        selection_references: the reference captions (words, as the split has them) of the
            first n validation pictures: the CIDEr-D of greedy captions of those pictures
            chooses the checkpoint kept as best (:meth:`selection_score`); None: the loss.
        max_length: the longest caption the selection decodes, the end token included.
        seed: with the epoch, fixes the order of the images and the captions drawn.
    """

    name = TASK
    loss_unit = LOSS_UNIT  # the trainer's progress line and the playground's curves

    def __init__(
        self,
        inputs: dict[str, Tensor],
        captions: dict[str, list[list[list[int]]]],
        vocab: Vocab,
        *,
        batch_size: int,
        attention_penalty: float = 1.0,
        scheduled_sampling: float = 0.0,
        word_dropout: float = 0.0,
        consensus_references: float = 0.0,
        selection_references: Sequence[Sequence[Sequence[str]]] | None = None,
        max_length: int = 20,
        seed: int = 0,
    ) -> None:
        if not captions["train"]:
            raise DataError("the corpus has no training images; give a larger corpus")
        self.inputs, self.captions, self.vocab = inputs, captions, vocab
        self.batch_size, self.penalty, self.seed = batch_size, attention_penalty, seed
        self.sampling, self.word_dropout = scheduled_sampling, word_dropout
        # per training image, its references' drawing weights (None: uniform, as rng.randrange)
        self.weights = (
            [consensus_weights(refs, consensus_references) for refs in captions["train"]]
            if consensus_references > 0
            else None
        )
        if selection_references is not None and not selection_references:
            raise DataError("the valid split is empty; give a larger corpus")
        self.selection_references, self.max_length = selection_references, max_length
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Train on this rank's share of every global batch (the distributed sampler: images and
        captions depend only on the seed and the epoch; rank r takes rows r, r + world_size, ...
        of each batch). The attention penalty is a mean over the global batch's images, which
        each rank's loss carries through the global batch's words per image."""
        check_divides(self.batch_size, world_size)
        check_world(world_size, len(self.captions["train"]), "training images")
        self.rank, self.world_size = rank, world_size

    def steps_per_epoch(self) -> int:
        return -(-len(self.captions["train"]) // self.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        rng = random.Random(f"{self.seed}/{epoch}")
        captions = self.captions["train"]
        order = list(range(len(captions)))
        rng.shuffle(order)
        if self.weights is None:  # drawn for the whole epoch
            chosen = [rng.randrange(len(captions[i])) for i in order]
        else:
            chosen = [rng.choices(range(len(captions[i])), self.weights[i])[0] for i in order]
        for b in range(start, self.steps_per_epoch()):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size]
            picks = chosen[b * self.batch_size : (b + 1) * self.batch_size]
            texts = [captions[i][j] for i, j in zip(rows, picks)]
            words = sum(len(t) + 1 for t in texts)  # the global batch's words, <eos> included
            mine, counted = rank_rows(range(len(rows)), self.rank, self.world_size)
            batch = collate(self.inputs["train"][[rows[k] for k in mine]],
                            [texts[k] for k in mine], self.vocab)  # fmt: skip
            step = epoch * self.steps_per_epoch() + b
            ramp = min(1.0, step / (SAMPLING_RAMP_EPOCHS * self.steps_per_epoch()))
            yield replace(batch, counted=counted, words_per_image=words / len(rows),
                          sampling=self.sampling * ramp)  # fmt: skip

    def train_loss(self, model: nn.Module, batch: Batch, carry: Any) -> tuple[Tensor, int, None]:
        tgt_in = batch.tgt_in
        if self.word_dropout > 0 and self.vocab.unk_index is not None:
            drop = torch.rand(tgt_in.shape, device=tgt_in.device) < self.word_dropout
            drop[:, 0] = False  # the start token stays
            tgt_in = tgt_in.masked_fill(drop & (tgt_in != self.vocab.pad_index),
                                        self.vocab.unk_index)  # fmt: skip
        own = {"sampling": batch.sampling} if batch.sampling > 0 else {}
        logits, alphas = model(batch.inputs, tgt_in, **own)
        mask = batch.tgt_out != self.vocab.pad_index  # (N, T)
        loss = word_loss(logits, batch.tgt_out, self.vocab.pad_index)
        words = int(mask.sum())
        if alphas is not None and self.penalty > 0:
            attended = (alphas * mask.unsqueeze(2)).sum(dim=1)  # (N, L) attention over the caption
            per_image = ((1.0 - attended) ** 2).mean(dim=1)  # (N,)
            # The mean over the global batch's images, written per word of this batch: the
            # trainer weighs each rank's loss by its words, which turns this back into the mean.
            per_word = batch.words_per_image or words / len(per_image)
            loss = loss + self.penalty * per_image.sum() * per_word / words
        return loss, words if batch.counted else 0, None

    def evaluate(self, model: nn.Module, split: str) -> float:
        """Mean cross-entropy per word (teacher forcing) over all references of ``split``."""
        pairs = [(i, c) for i, refs in enumerate(self.captions[split]) for c in refs]
        if not pairs:
            raise DataError(f"the {split} split is empty; give a larger corpus")
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for start in range(0, len(pairs), EVAL_BATCH):
            part = pairs[start : start + EVAL_BATCH]
            rows = [i for i, _ in part]
            batch = collate(self.inputs[split][rows], [c for _, c in part], self.vocab)
            batch = to_device(batch, device)
            logits, _ = model(batch.inputs, batch.tgt_in)
            n = int((batch.tgt_out != self.vocab.pad_index).sum())
            total += float(word_loss(logits, batch.tgt_out, self.vocab.pad_index)) * n
            count += n
        return total / count

    def selection_score(self, model: nn.Module) -> Score | None:
        """CIDEr-D (x1, as :func:`rnnkit.caption.metrics.cider_d`) of the greedy captions of the
        first validation pictures against all their references, ``selection_references`` (the
        document frequencies are those pictures'); None without them.

        Deterministic (the model is in eval mode; greedy search), so a resumed run scores its
        weights as the uninterrupted run does. Called by the trainer under ``torch.no_grad()``.
        """
        refs = self.selection_references
        if refs is None:
            return None
        device = next(model.parameters()).device
        inputs = self.inputs["valid"][: len(refs)]
        found = decode_inputs(model, inputs, self.vocab, self.max_length,
                              SearchOptions(beam_size=1), device=device)  # fmt: skip
        hyps = [self.vocab.decode(h[0].tokens) for h in found]
        return Score("CIDEr-D", metrics.cider_d(hyps, refs), higher_is_better=True)


def word_loss(logits: Tensor, targets: Tensor, pad_index: int) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, T, V) against ``targets`` (N, T), padding ignored."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=pad_index
    )
