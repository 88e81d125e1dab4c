"""Translation's data: the corpus, its fixed 90/5/5 split, vocabularies, ids, length-bucketed
batches.

``load_pairs`` reads a corpus (a file, or git's catalog for a locale); ``TranslationData`` splits
and tokenises it, builds the source and target vocabularies and turns sentence pairs into id
sequences; ``bucketed_batches`` and ``collate`` make the padded batches of the task.

Length bucketing: each epoch shuffles the pairs, cuts them into chunks of ``BUCKET_BATCHES``
batches, sorts each chunk by source length and cuts it into batches, then shuffles the batches. A
batch then holds sentences of similar length (little padding) while the order stays random.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.tokenize import BOS, EOS, PAD, UNK, Vocab
from rnnkit.errors import DataError
from rnnkit.translate.catalog import default_catalog
from rnnkit.translate.formats import Pair, read_parallel
from rnnkit.translate.tokens import tokenize

logger = logging.getLogger(__name__)

SPECIALS = (PAD, UNK, BOS, EOS)  # PAD first: index 0, the models' padding index
BUCKET_BATCHES = 32  # batches per sorting chunk of the length bucketing
# Fixed split of the pairs, by a stable hash of the source string.
SPLITS = ("train", "valid", "test")
_SPLIT_PERCENT = {"train": 90, "valid": 5, "test": 5}

Example = tuple[list[int], list[int]]  # (source ids, target ids); no BOS/EOS


TOY_WORDS = ("red", "green", "blue", "cat", "dog", "big", "small", "file", "open", "read")


def toy_pairs(n: int, seed: int = 0) -> list[Pair]:
    """``n`` generated pairs to try translation on: a few words and a placeholder -> the same
    reversed, words upper-cased (``"red cat %d" -> "%d CAT RED"``); attention learns to read the
    source backwards."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = rng.choices(TOY_WORDS, k=rng.randint(2, 5)) + ["%d"]
        target = [w if w.startswith("%") else w.upper() for w in reversed(words)]
        pairs.append((" ".join(words), " ".join(target)))
    return pairs


def split_of(source: str) -> str:
    """The split (``train``, ``valid``, ``test``) of a pair: 90/5/5 by the SHA-1 of ``source``.

    The hash is stable across runs and machines, and every pair with the same source lands in the
    same split, so no test source is seen in training.
    """
    bucket = int.from_bytes(hashlib.sha1(source.encode("utf-8")).digest()[:8], "big") % 100
    if bucket < _SPLIT_PERCENT["train"]:
        return "train"
    return "valid" if bucket < _SPLIT_PERCENT["train"] + _SPLIT_PERCENT["valid"] else "test"


def split_pairs(pairs: Sequence[Pair]) -> dict[str, list[Pair]]:
    """Group ``pairs`` into the fixed ``train``/``valid``/``test`` splits (see ``split_of``)."""
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[split_of(pair[0])].append(pair)
    return splits


def load_pairs(data: str | None, lang: str, encoding: str = "utf-8") -> list[Pair]:
    """The corpus ``data`` (a .tsv in ``encoding``, or git's catalog for ``lang``), exact
    duplicate pairs removed."""
    path = Path(data) if data else default_catalog(lang)
    pairs = list(dict.fromkeys(read_parallel(path, encoding=encoding)))
    logger.info("read %d sentence pairs from %s", len(pairs), path)
    return pairs


class TranslationData:
    """Tokenised splits of a corpus and the vocabularies built on its training split.

    Args:
        pairs: all ``(source, target)`` pairs; they are split 90/5/5 by ``split_of`` into
            ``self.pairs``; ``self.texts`` and ``self.examples`` (as ids) keep those with at most
            ``max_len`` tokens a side.
        max_len: the longest side kept, in tokens.
        min_freq: tokens seen fewer times in the training split become ``<unk>``.
        vocabs: ``(source, target)`` vocabularies to use (from a run directory); built from the
            training split when None.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        max_len: int,
        min_freq: int,
        vocabs: tuple[Vocab, Vocab] | None = None,
    ) -> None:
        self.max_len = max_len
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
                Vocab.build(source, specials=SPECIALS, min_freq=min_freq),
                Vocab.build(target, specials=SPECIALS, min_freq=min_freq),
            )
        self.source_vocab, self.target_vocab = vocabs
        self.texts: dict[str, list[Pair]] = {}  # the pairs kept, as text
        self.examples: dict[str, list[Example]] = {}  # the same pairs, as ids
        for name in SPLITS:
            kept = [
                i
                for i, (s, t) in enumerate(tokens[name])
                if 0 < len(s) <= max_len and len(t) <= max_len
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
            max_len,
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
    counted: bool = True  # False: a stand-in batch whose loss counts for nothing (see shard)


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
