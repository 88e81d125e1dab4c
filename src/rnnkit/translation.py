"""Translation as a training task: corpus, vocabularies, length-bucketed batches, loss.

``load_pairs`` reads a corpus (a file, or git's catalog for a locale); ``TranslationData`` splits
and tokenises it, builds the source and target vocabularies and turns sentence pairs into id
sequences; ``TranslationTask`` gives the shared trainer (``rnnkit.training.Trainer``) its batches
and its loss (teacher forcing with a ratio, label smoothing). Everything a later command needs is
written to the run directory by ``save_run_files``; ``rnnkit.translator`` reads it back.

Length bucketing: each epoch shuffles the pairs, cuts them into chunks of ``BUCKET_BATCHES``
batches, sorts each chunk by source length and cuts it into batches, then shuffles the batches. A
batch then holds sentences of similar length (little padding) while the order stays random.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checkpoint import RunDir
from rnnkit.data.parallel import (
    SPLITS,
    Pair,
    default_catalog,
    read_parallel,
    split_pairs,
    tokenize,
)
from rnnkit.data.tokenize import BOS, EOS, PAD, UNK, Vocab
from rnnkit.errors import DataError
from rnnkit.training import TrainConfig, config_dict

logger = logging.getLogger(__name__)

TASK = "translate"
SPECIALS = (PAD, UNK, BOS, EOS)  # PAD first: index 0, the models' padding index
BUCKET_BATCHES = 32  # batches per sorting chunk of the length bucketing


@dataclass
class DataConfig:
    """Where the pairs come from and how they become ids; stored in ``config.json``."""

    data: str | None = None  # corpus file (.tsv, .mo, .po); None: git's catalog for `lang`
    lang: str = "fr"  # target language (selects git's catalog; picks sacrebleu's tokenizer)
    max_len: int = 50  # drop training/validation pairs with a side longer than this (tokens)
    min_freq: int = 2  # tokens seen fewer times in training become <unk>


@dataclass
class TaskConfig:
    """How batches are made and scored; stored in ``config.json``."""

    batch_size: int = 32  # sentence pairs per batch
    teacher_forcing: float = 1.0  # probability of feeding the true previous target token
    label_smoothing: float = 0.1  # mass spread over the vocabulary in the training loss

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} must be at least 1")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing={self.teacher_forcing!r} must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")


def load_pairs(config: DataConfig) -> list[Pair]:
    """The corpus named by ``config``, exact duplicate pairs removed (order kept)."""
    path = Path(config.data) if config.data else default_catalog(config.lang)
    pairs = list(dict.fromkeys(read_parallel(path)))
    logger.info("read %d sentence pairs from %s", len(pairs), path)
    return pairs


Example = tuple[list[int], list[int]]  # (source ids, target ids); no BOS/EOS


class TranslationData:
    """Tokenised splits of a corpus and the vocabularies built on its training split.

    Args:
        pairs: all ``(source, target)`` pairs; they are split 90/5/5 by ``split_of`` into
            ``self.pairs``; ``self.texts`` and ``self.examples`` (as ids) keep those with at most
            ``config.max_len`` tokens a side.
        config: a ``DataConfig``.
        vocabs: ``(source, target)`` vocabularies to use (from a run directory); built from the
            training split when None.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        config: DataConfig,
        vocabs: tuple[Vocab, Vocab] | None = None,
    ) -> None:
        self.config = config
        self.pairs = split_pairs(pairs)
        tokens = {
            name: [(tokenize(s), tokenize(t)) for s, t in split]
            for name, split in self.pairs.items()
        }
        if vocabs is None:
            train = tokens["train"]
            if not train:
                raise DataError("the corpus has no training pairs; give a larger corpus")
            source = (t for s, _ in train for t in s)
            target = (t for _, t in train for t in t)
            vocabs = (
                Vocab.build(source, specials=SPECIALS, min_freq=config.min_freq),
                Vocab.build(target, specials=SPECIALS, min_freq=config.min_freq),
            )
        self.source_vocab, self.target_vocab = vocabs
        self.texts: dict[str, list[Pair]] = {}  # the pairs kept, as text
        self.examples: dict[str, list[Example]] = {}  # the same pairs, as ids
        for name in SPLITS:
            kept = [
                i
                for i, (s, t) in enumerate(tokens[name])
                if 0 < len(s) <= config.max_len and len(t) <= config.max_len
            ]
            self.texts[name] = [self.pairs[name][i] for i in kept]
            self.examples[name] = [
                (
                    self.source_vocab.encode(tokens[name][i][0]),
                    self.target_vocab.encode(tokens[name][i][1]),
                )
                for i in kept
            ]
        logger.info(
            "pairs per split (at most %d tokens a side): %s; vocabularies: %d source, %d target",
            config.max_len,
            {name: len(self.examples[name]) for name in SPLITS},
            len(self.source_vocab),
            len(self.target_vocab),
        )


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int
) -> list[list[int]]:
    """Batches of indices into ``lengths``, length-bucketed (see the module docstring).

    The result depends only on ``(lengths, batch_size, seed, epoch)``.
    """
    rng = random.Random(f"{seed}/{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    """Padded tensors of one batch of examples."""

    src: Tensor  # (N, S) source ids, padded
    src_lengths: Tensor  # (N,) real source lengths
    tgt_in: Tensor  # (N, T) BOS + target: the decoder's inputs
    tgt_out: Tensor  # (N, T) target + EOS: what it must predict (padding is ignored)


def collate(examples: Sequence[Example], vocab: Vocab) -> Batch:
    """Pad a list of ``(source ids, target ids)`` into a ``Batch`` (``vocab``: the target's)."""
    pad, bos, eos = vocab.pad_index, vocab.bos_index, vocab.eos_index
    n = len(examples)
    src_len = max(len(s) for s, _ in examples)
    tgt_len = max(len(t) for _, t in examples) + 1
    src = torch.full((n, src_len), pad, dtype=torch.long)
    tgt_in = torch.full((n, tgt_len), pad, dtype=torch.long)
    tgt_out = torch.full((n, tgt_len), pad, dtype=torch.long)
    for i, (s, t) in enumerate(examples):
        src[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        tgt_in[i, : len(t) + 1] = torch.tensor([bos, *t], dtype=torch.long)
        tgt_out[i, : len(t) + 1] = torch.tensor([*t, eos], dtype=torch.long)
    lengths = torch.tensor([len(s) for s, _ in examples], dtype=torch.long)
    return Batch(src, lengths, tgt_in, tgt_out)


class TranslationTask:
    """The translation task for ``rnnkit.training.Trainer`` (its ``TrainingTask`` protocol)."""

    name = TASK

    def __init__(self, data: TranslationData, config: TaskConfig, *, seed: int = 0) -> None:
        if not data.examples["train"]:
            raise DataError(
                f"no training pair has at most max_len={data.config.max_len} tokens a side; "
                "raise --max-len"
            )
        self.data, self.config, self.seed = data, config, seed

    def _batches(self, split: str, epoch: int) -> list[list[int]]:
        examples = self.data.examples[split]
        lengths = [len(s) for s, _ in examples]
        return bucketed_batches(lengths, self.config.batch_size, seed=self.seed, epoch=epoch)

    def steps_per_epoch(self) -> int:
        """Batches in one pass over the training pairs."""
        return -(-len(self.data.examples["train"]) // self.config.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of epoch ``epoch``."""
        examples = self.data.examples["train"]
        for indices in self._batches("train", epoch)[start:]:
            yield collate([examples[i] for i in indices], self.data.target_vocab)

    def train_loss(self, model: nn.Module, batch: Batch, carry: Any) -> tuple[Tensor, int, None]:
        """Label-smoothed cross-entropy per target token, with scheduled teacher forcing."""
        logits = model(batch.src, batch.src_lengths, batch.tgt_in, self.config.teacher_forcing)
        pad = self.data.target_vocab.pad_index
        loss = token_loss(logits, batch.tgt_out, pad, self.config.label_smoothing)
        return loss, int((batch.tgt_out != pad).sum()), None

    def evaluate(self, model: nn.Module, split: str) -> float:
        """Mean negative log-likelihood per target token on ``split`` (true previous tokens)."""
        examples = self.data.examples[split]
        if not examples:
            raise DataError(f"the {split} split is empty; give a larger corpus")
        total, count = 0.0, 0
        for indices in self._batches(split, epoch=0):
            batch = collate([examples[i] for i in indices], self.data.target_vocab)
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


def config_json(
    model: Any, data: DataConfig, task: TaskConfig, train: TrainConfig
) -> dict[str, Any]:
    """The ``config.json`` of a translation run."""
    return {
        "task": TASK,
        "model": asdict(model),
        "data": asdict(data),
        "translate": asdict(task),
        "train": config_dict(train),
    }


def create_run(
    path: str | os.PathLike,
    model: Any,
    data: TranslationData,
    task: TaskConfig,
    train: TrainConfig,
) -> RunDir:
    """A new translation run directory holding ``config.json`` and both vocabularies."""
    run = RunDir.create(path, TASK)
    run.write_json("config.json", config_json(model, data.config, task, train))
    vocabs = {"source": data.source_vocab.to_dict(), "target": data.target_vocab.to_dict()}
    run.write_json("vocab.json", vocabs)
    return run
