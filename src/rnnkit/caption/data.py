"""Captioning corpora: images with reference captions, in three splits.

Sources (``data=``):

* ``"synth-scenes"`` (default): generated from a seed, see :mod:`rnnkit.caption.scenes`; its
  validation and test images hold compositions the training images never show.
* a **Karpathy split JSON** (``dataset_coco.json``, ``dataset_flickr8k.json``, ...):
  ``{"images": [{"filename", "split", "sentences": [{"raw"}], "filepath"?}]}``; the images are in
  ``images_dir`` (default: the JSON's folder), under ``filepath/`` when an entry has one. Splits
  ``train`` and ``restval`` train, ``val`` validates, ``test`` tests.
* a **TSV** file: ``image_path<TAB>caption`` a line (several lines per image allowed; paths
  relative to the file's folder; blank lines and ``#`` comments skipped). The images are split
  90/5/5 by a fixed shuffle.

Captions are cut into lower-cased words of letters, marks and digits of any script, with inner
apostrophes ("café", "don't"; punctuation dropped) by :func:`rnnkit.data.text.words`. Images
are read once with :func:`rnnkit.caption.images.load_image` into ``(N, size, size, 3)`` uint8
arrays. Every problem is one :class:`DataError` line naming the file (and line). Torch-free.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.caption import scenes
from rnnkit.caption.images import load_image
from rnnkit.data.datasets import read_text_file
from rnnkit.data.text import words
from rnnkit.data.tokenize import BOS, EOS, PAD, UNK, Vocab
from rnnkit.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SPECIALS = (PAD, UNK, BOS, EOS)  # PAD first: index 0
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "valid", "test": "test"}


def tokenize(caption: str) -> list[str]:
    """The words of a caption, lower-cased, punctuation dropped: the one tokenization of the
    training captions (so of the vocabulary and every generated caption) and of the reference
    captions BLEU and CIDEr-D compare them with. Letters and digits of any script count
    ("café", "naïve"); typographic apostrophes read as ``'`` (:func:`rnnkit.data.text.words`)."""
    return words(caption)


@dataclass
class Split:
    """One split of a corpus: images and, per image, its name, captions and object boxes."""

    images: np.ndarray  # (N, S, S, 3) uint8
    names: list[str]  # file path, or "synth-scenes/test/12"
    captions: list[list[list[str]]]  # per image, its reference captions as words
    objects: list[list[scenes.SceneObject]] | None  # per image (synthetic scenes only)

    def __len__(self) -> int:
        return len(self.names)


def load_corpus(
    data: str,
    *,
    image_size: int = 64,
    seed: int = 0,
    counts: tuple[int, int, int] = (6000, 500, 500),
    images_dir: str | None = None,
    encoding: str = "utf-8",
) -> dict[str, Split]:
    """The three splits of ``data`` (see the module docstring).

    Args:
        data: ``"synth-scenes"``, a Karpathy ``.json`` or a ``.tsv`` file.
        image_size: side of the square images the models see.
        seed: the synthetic scenes' seed.
        counts: images per split of the synthetic scenes.
        images_dir: the image folder of a Karpathy JSON (default: the JSON's folder).
        encoding: the text encoding of the caption file (a byte-order mark decides over utf-8).
    """
    if data == scenes.NAME:
        return {
            name: _scene_split(name, count, seed, image_size) for name, count in zip(SPLITS, counts)
        }
    path = Path(data)
    if path.is_dir():
        raise DataError(
            f"{path} is a directory; give the caption file in it (a Karpathy .json or an "
            "image<TAB>caption .tsv)"
        )
    if not path.is_file():
        raise DataError(
            f"no such caption file: {path} (give {scenes.NAME}, a Karpathy .json or a .tsv)"
        )
    if images_dir is not None and not Path(images_dir).is_dir():
        raise DataError(f"--images-dir {images_dir} is not a folder; give the pictures' folder")
    if path.suffix.lower() == ".json":
        folder = Path(images_dir) if images_dir else path.parent
        entries = read_karpathy(path, folder, encoding=encoding)
    else:
        entries = read_tsv(path, encoding=encoding)
    return {name: _image_split(entries[name], image_size) for name in SPLITS}


def _scene_split(name: str, count: int, seed: int, size: int) -> Split:
    made = scenes.load_scenes(name, count, seed=seed, size=size)
    names = [f"{scenes.NAME}/{name}/{i}" for i in range(count)]
    captions = [[tokenize(c) for c in refs] for refs in made.captions]
    return Split(made.images, names, captions, made.objects)


# An image and its captions, with where each came from (for error messages).
Entry = tuple[Path, list[list[str]], str]


def _image_split(entries: list[Entry], size: int) -> Split:
    if not entries:
        return Split(np.zeros((0, size, size, 3), np.uint8), [], [], None)
    images = []
    for image_path, _, where in entries:
        try:
            images.append(load_image(image_path, size))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    names = [str(p) for p, _, _ in entries]
    return Split(np.stack(images), names, [c for _, c, _ in entries], None)


def read_tsv(path: Path, *, encoding: str = "utf-8") -> dict[str, list[Entry]]:
    """``image<TAB>caption`` lines (in ``encoding``) grouped by image and split 90/5/5 (fixed
    shuffle)."""
    lines = read_text_file(path, encoding=encoding).splitlines()
    grouped: OrderedDict[Path, Entry] = OrderedDict()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if "\t" not in line:
            raise DataError(f"{where}: expected image_path<TAB>caption, found no tab")
        name, caption = line.split("\t", 1)
        words = tokenize(caption)
        if not words:
            raise DataError(f"{where}: the caption is empty; give at least one word")
        image = (path.parent / name.strip()).resolve()
        if not image.is_file():
            raise DataError(f"{where}: image {name.strip()} not found (looked for {image})")
        grouped.setdefault(image, (image, [], where))[1].append(words)
    if len(grouped) < 3:
        raise DataError(f"{path} names {len(grouped)} images; need at least 3 (train/valid/test)")
    entries = list(grouped.values())
    random.Random(0).shuffle(entries)
    n_held = max(1, len(entries) // 20)
    return {
        "train": entries[: len(entries) - 2 * n_held],
        "valid": entries[len(entries) - 2 * n_held : len(entries) - n_held],
        "test": entries[len(entries) - n_held :],
    }


def read_karpathy(
    path: Path, images_dir: Path, *, encoding: str = "utf-8"
) -> dict[str, list[Entry]]:
    """The images of a Karpathy split JSON (in ``encoding``), per split (see the module
    docstring)."""
    layout = (
        'expected the Karpathy split layout {"images": [{"filename", "split", '
        '"sentences": [{"raw"}]}]}'
    )
    try:
        data = json.loads(read_text_file(path, encoding=encoding))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); {layout}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path} has no list 'images'; {layout}")
    out: dict[str, list[Entry]] = {name: [] for name in SPLITS}
    for i, item in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        ok = isinstance(item, dict) and isinstance(item.get("filename"), str)
        if not ok or not isinstance(item.get("sentences"), list) or "split" not in item:
            raise DataError(f"{where} lacks filename, split or sentences; {layout}")
        split = KARPATHY_SPLITS.get(item["split"])
        if split is None:
            raise DataError(f"{where}: unknown split {item['split']!r}; use train/restval/val/test")
        captions = []
        for j, sentence in enumerate(item["sentences"]):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(raw, str):
                raise DataError(f"{where}.sentences[{j}] has no 'raw' text; {layout}")
            words = tokenize(raw)
            if not words:
                raise DataError(f"{where}.sentences[{j}]: the caption is empty")
            captions.append(words)
        if not captions:
            raise DataError(f"{where} ({item['filename']}) has no sentences")
        image = images_dir / item.get("filepath", "") / item["filename"]
        if not image.is_file():
            raise DataError(f"{where}: image {item['filename']} not found (looked for {image})")
        out[split].append((image, captions, f"{where} ({item['filename']})"))
    for name in SPLITS:
        if not out[name]:
            raise DataError(f"{path} has no {name} images; every split needs some")
    return out


def build_vocab(train: Split, *, min_freq: int = 1) -> Vocab:
    """The vocabulary of the training captions (rarer words become ``<unk>``)."""
    words = (w for refs in train.captions for caption in refs for w in caption)
    return Vocab.build(words, specials=SPECIALS, min_freq=min_freq)


def source_key(data: str) -> str:
    """How a run remembers its data: the name, or the absolute path of a file."""
    return data if data == scenes.NAME or not os.path.exists(data) else os.path.abspath(data)
