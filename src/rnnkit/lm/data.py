"""The language model's data: a corpus split 90/5/5, tokenised and turned into id tensors."""

from __future__ import annotations

import hashlib
import os

from torch import Tensor

from rnnkit.data import Tokenizer, Vocab, get_tokenizer, load_corpus, split_text
from rnnkit.data.batching import as_tensor
from rnnkit.lm.recipe import LMRecipe

SPLITS = ("train", "valid", "test")


def prepare_text(recipe: LMRecipe) -> tuple[str, Tokenizer, dict[str, str]]:
    """The corpus text, the tokenizer and the three split texts of ``recipe``."""
    text = load_corpus(recipe.data, encoding=recipe.encoding)
    tokenizer = get_tokenizer(recipe.level)
    return text, tokenizer, dict(zip(SPLITS, split_text(text)))


def encode_splits(tokenizer: Tokenizer, vocab: Vocab, texts: dict[str, str]) -> dict[str, Tensor]:
    """Token-id tensors of the split texts."""
    return {name: as_tensor(vocab.encode(tokenizer.tokenize(t))) for name, t in texts.items()}


def data_source(data: str) -> str:
    """``data`` as stored in a run: a corpus name as is, a file as an absolute path."""
    return data if not os.path.exists(data) else os.path.abspath(data)


def fingerprint(text: str) -> dict[str, object]:
    """What a run records of its text, so a resume can tell the text changed."""
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "characters": len(text)}
