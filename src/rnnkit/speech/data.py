"""Speech corpora, transcripts, the character alphabet, features and batches.

A corpus is a list of :class:`Item` (audio path, transcript) per split. Sources:

- ``synth-digits`` (default): connected digits spoken by espeak-ng, plus a flite test set
  (:mod:`rnnkit.speech.synth`), cached under ``<cache>/speech/``;
- ``synth-text``: lines of a text file (the Shakespeare corpus by default) spoken by espeak-ng;
- a transcript TSV (``path<TAB>text`` per line, paths relative to the TSV's folder);
- a LibriSpeech-style folder (``*.trans.txt`` files of ``ID text`` lines beside ``ID.flac``).

Your own data is split 90/5/5 into train/valid/test by a hash of each file's name (stable when
files are added). Transcripts are normalised (:func:`normalize_text`: Unicode NFC, typographic
apostrophes and quotes as ASCII, lowercase, single spaces).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.datasets import read_text_file
from rnnkit.data.text import canonical_text
from rnnkit.errors import DataError
from rnnkit.speech import synth
from rnnkit.speech.audio import read_audio
from rnnkit.speech.features import FeatureConfig, log_mel, normalize

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
BLANK = "<blank>"


@dataclass(frozen=True)
class Item:
    """One utterance of a corpus."""

    path: str  # audio file
    text: str  # normalised transcript


def normalize_text(text: str) -> str:
    """The form transcripts are trained and scored in: one spelling per word
    (:func:`rnnkit.data.text.canonical_text`: NFC, so "é" is one character whether the file wrote
    it composed or not; "don’t" as "don't"), lowercase, single spaces."""
    return " ".join(canonical_text(text).lower().split())


class Alphabet:
    """The output classes: the CTC blank (class 0), then the characters."""

    def __init__(self, chars: Sequence[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Alphabet:
        return cls(sorted(set("".join(texts))))

    def __len__(self) -> int:
        return len(self.chars) + 1

    @property
    def symbols(self) -> list[str]:
        """The text of each class ('' for the blank)."""
        return ["", *self.chars]

    def encode(self, text: str, *, where: str = "") -> list[int]:
        """Class ids of ``text``; a DataError names the characters the alphabet lacks."""
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise DataError(
                f"{where or 'the transcript'} has characters outside the model's alphabet: "
                f"{''.join(unknown)!r}; the model knows {''.join(self.chars)!r}"
            )
        return [self.index[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i - 1] for i in ids if i > 0)


# ---------------------------------------------------------------------------------------------
# Corpora


def speech_cache() -> Path:
    from rnnkit.data.datasets import cache_dir

    return cache_dir() / "speech"


def synth_corpus(
    name: str,
    *,
    counts: dict[str, int],
    seed: int,
    text_file: str | None = None,
    encoding: str = "utf-8",
    festival_share: float = 0.0,
    extra_share: float = 0.0,
    workers: int | None = None,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, list[Item]]:
    """Build (or extend) and read a synthesized corpus; ``counts`` per split (train, valid, test,
    flite, flite-valid); ``festival_share`` of the digits' training utterances spoken by
    festival (synth-text is espeak-ng's alone; its ``text_file`` is read in ``encoding``),
    ``extra_share`` of those by its HTS and unit-selection voices."""
    if name == "synth-digits":
        texts = synth.digit_text
        root = speech_cache() / f"synth-digits-v{synth.PLAN_VERSION}-seed{seed}"
    elif name == "synth-text":
        lines, digest = sentence_lines(text_file, encoding)
        texts = _line_picker(lines)
        root = speech_cache() / f"synth-text-{digest[:12]}-v{synth.PLAN_VERSION}-seed{seed}"
        festival_share = 0.0
    else:
        raise DataError(f"unknown synthetic corpus {name!r}; use synth-digits or synth-text")
    plans = [u for split, n in counts.items() if n > 0
             for u in synth.plan(split, n, seed=seed, texts=texts,
                                 festival_share=festival_share,
                                 extra_share=extra_share)]  # fmt: skip
    records = synth.build(root, plans, workers=workers, progress=progress, report=report)
    return {
        split: [Item(str(root / r["path"]), normalize_text(r["text"])) for r in records
                if r["split"] == split]
        for split in counts
    }  # fmt: skip


def sentence_lines(text_file: str | None, encoding: str = "utf-8") -> tuple[list[str], str]:
    """Lines of 3-12 words of a text (default: the Shakespeare corpus; a file in ``encoding``),
    letters, apostrophes and spaces only, and the text's sha256."""
    from rnnkit.data import load_corpus

    text = load_corpus(text_file or "shakespeare", encoding=encoding)
    lines = []
    for line in text.splitlines():
        clean = normalize_text(re.sub(r"[^A-Za-z' ]+", " ", canonical_text(line)))
        if 3 <= len(clean.split()) <= 12:
            lines.append(clean)
    if len(lines) < 10:
        raise DataError(f"{text_file} has {len(lines)} usable lines (3-12 words); need 10 or more")
    return lines, hashlib.sha256(text.encode()).hexdigest()


def _line_picker(lines: list[str]) -> Any:
    def pick(rng: Any) -> str:
        return rng.choice(lines)

    return pick


def read_tsv(path: str | Path, *, encoding: str = "utf-8") -> list[Item]:
    """Items of a transcript TSV: ``audio path<TAB>transcript`` per line (blank lines skipped),
    the file in ``encoding``."""
    path = Path(path)
    lines = read_text_file(path, encoding=encoding).splitlines()
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DataError(
                f"{path}:{number}: expected 'audio path<TAB>transcript', got {line[:60]!r}"
            )
        audio = (path.parent / parts[0].strip()).resolve()
        if not audio.is_file():
            raise DataError(
                f"{path}:{number}: no such audio file {parts[0].strip()!r} (relative paths are "
                f"read from {path.parent}); fix the path or drop the line"
            )
        items.append(Item(str(audio), normalize_text(parts[1])))
    if not items:
        raise DataError(f"{path} holds no utterances; give path<TAB>text lines")
    return items


def read_librispeech(folder: str | Path, *, encoding: str = "utf-8") -> list[Item]:
    """Items of a LibriSpeech-style folder: every ``*.trans.txt`` (``ID TEXT`` lines, in
    ``encoding``) with the audio ``ID.flac`` (or ``.wav``) beside it."""
    folder = Path(folder)
    items = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        lines = read_text_file(trans, encoding=encoding).splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            ident, _, text = line.partition(" ")
            if not text.strip():
                raise DataError(f"{trans}:{number}: expected 'ID transcript', got {line[:60]!r}")
            audio = next(
                (trans.parent / f"{ident}{ext}" for ext in (".flac", ".wav", ".ogg")
                 if (trans.parent / f"{ident}{ext}").exists()),
                None,
            )  # fmt: skip
            if audio is None:
                raise DataError(
                    f"{trans}:{number}: no audio {ident}.flac, .wav or .ogg beside the "
                    "transcript; restore the file or drop the line"
                )
            items.append(Item(str(audio), normalize_text(text)))
    if not items:
        raise DataError(
            f"{folder} holds no *.trans.txt transcripts; give a LibriSpeech-style folder or a "
            "path<TAB>text TSV"
        )
    return items


def user_corpus(source: str, *, encoding: str = "utf-8") -> dict[str, list[Item]]:
    """A TSV or LibriSpeech folder (transcripts in ``encoding``), split 90/5/5 by a hash of
    each audio file's name."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"no such corpus or file: {source}; give synth-digits, synth-text, a "
                        "transcript TSV or a LibriSpeech folder")  # fmt: skip
    reader = read_librispeech if path.is_dir() else read_tsv
    items = reader(path, encoding=encoding)
    splits: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for item in items:
        bucket = int(hashlib.sha256(Path(item.path).name.encode()).hexdigest(), 16) % 100
        splits["train" if bucket < 90 else "valid" if bucket < 95 else "test"].append(item)
    for split in SPLITS:  # tiny corpora: every split gets something
        if not splits[split]:
            splits[split] = list(items[: max(1, len(items) // 20)])
    return splits


def read_lexicon(path: str | os.PathLike, *, encoding: str = "utf-8") -> list[str]:
    """The words of a lexicon file (whitespace-separated, one a line as a rule) in
    ``encoding``: what ``lexicon=`` of the decoders takes."""
    words = read_text_file(path, encoding=encoding).split()
    if not words:
        raise DataError(f"{path} holds no words; give one word per line")
    return words


# ---------------------------------------------------------------------------------------------
# Features and batches


@dataclass
class Example:
    """An utterance ready for the model."""

    feats: Tensor  # (frames, n_mels), normalised
    labels: Tensor  # (U,) class ids
    text: str


def file_features(path: str | os.PathLike, config: FeatureConfig) -> Tensor:
    """Log-mel features (frames, n_mels) of the audio file ``path``; a file too short for one
    frame is named in the error (one of thousands in a transcript)."""
    wave = read_audio(path, sample_rate=config.sample_rate)
    try:
        return log_mel(wave, config)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def featurize(
    items: Sequence[Item],
    alphabet: Alphabet,
    config: FeatureConfig,
    *,
    stats: tuple[Tensor, Tensor] | None = None,
    progress: bool = False,
    what: str = "",
) -> list[Example]:
    """Examples of ``items``: audio read and resampled, log-mel features normalised (per
    utterance, or with the global ``stats`` (mean, std))."""
    from tqdm import tqdm

    examples = []
    for item in tqdm(items, disable=not progress, unit="utt", desc=f"features {what}".strip()):
        labels = alphabet.encode(item.text, where=f"the transcript of {item.path}")
        feats = file_features(item.path, config)
        feats = normalize(feats) if stats is None else normalize(feats, *stats)
        examples.append(Example(feats, torch.tensor(labels, dtype=torch.long), item.text))
    return examples


@dataclass
class Batch:
    """Padded features and targets of a few utterances, longest first."""

    feats: Tensor  # (B, T, n_mels)
    lengths: Tensor  # (B,) frames
    targets: Tensor  # (B, U) padded class ids
    target_lengths: Tensor  # (B,)
    texts: list[str]
    counted: bool = True  # False: a stand-in whose loss counts for nothing (SpeechTask.shard)


def collate(examples: Sequence[Example]) -> Batch:
    order = sorted(range(len(examples)), key=lambda i: -examples[i].feats.shape[0])
    chosen = [examples[i] for i in order]
    feats = torch.nn.utils.rnn.pad_sequence([e.feats for e in chosen], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([e.labels for e in chosen], batch_first=True)
    return Batch(
        feats,
        torch.tensor([e.feats.shape[0] for e in chosen]),
        targets,
        torch.tensor([e.labels.numel() for e in chosen]),
        [e.text for e in chosen],
    )


def length_batches(examples: Sequence[Example], max_frames: int) -> list[list[int]]:
    """Indices of ``examples`` grouped by similar length, each group at most ``max_frames``
    padded frames (but at least one utterance)."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].feats.shape[0])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = examples[i].feats.shape[0]  # sorted: the newest is the longest
        if current and longest * (len(current) + 1) > max_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def iterate(examples: Sequence[Example], batches: list[list[int]]) -> Iterator[Batch]:
    for index in batches:
        yield collate([examples[i] for i in index])
