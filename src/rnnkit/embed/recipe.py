"""The word-embedding recipe: word2vec's settings and the default corpus, once (torch-free, so
the command line can show the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.errors import ConfigError

DEFAULT_DATA = "shakespeare"  # the corpus `rnnkit embed train` reads unless given --data
MODELS = ("sgns", "cbow")
IMPLS = ("auto", "native", "torch")
# Default centre words per step: the largest that lost no accuracy on the Shakespeare corpus.
BATCH_SIZES = {"sgns": 128, "cbow": 256}


@dataclass
class Word2VecConfig:
    """Hyperparameters of :func:`train_word_vectors` (defaults are gensim's, with skip-gram)."""

    model: str = "sgns"  # "sgns": skip-gram with negative sampling; "cbow": continuous bag of words
    dim: int = 100  # vector size
    window: int = 5  # largest distance between a centre word and a context word
    negative: int = 5  # negative samples per prediction
    min_count: int = 5  # ignore words seen fewer times than this
    sample: float = 1e-3  # subsampling threshold for frequent words (0 turns subsampling off)
    lr: float = 0.025  # starting learning rate, decayed linearly to min_lr
    min_lr: float = 1e-4  # learning rate at the end of the last epoch
    epochs: int = 5  # passes over the corpus
    batch_size: int | None = None  # centre words per PyTorch step; None: BATCH_SIZES[model]
    workers: int = 2  # threads training concurrently, one core each
    seed: int = 0  # seeds initialisation, subsampling, windows and negatives
    impl: str = "auto"  # "native": the C loops; "torch": PyTorch steps; "auto": C if it builds

    def validate(self) -> None:
        """Raise :class:`~rnnkit.errors.ConfigError` naming the first field that is out of range."""
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; expected one of {MODELS}")
        if self.impl not in IMPLS:
            raise ConfigError(f"unknown impl {self.impl!r}; expected one of {IMPLS}")
        for name in ("dim", "window", "negative", "min_count", "epochs", "batch_size", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sample < 0:
            raise ConfigError(f"sample must be >= 0 (0 turns subsampling off), got {self.sample}")
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError(f"need 0 < min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
