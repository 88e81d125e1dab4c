"""The translation recipe: every default of ``rnnkit translate train``, once.

Torch-free, so the command line can show the defaults in ``--help`` without importing torch; the
model's config (:class:`rnnkit.translate.model.Seq2SeqConfig`) takes its defaults from here too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rnnkit.errors import ConfigError

ATTENTIONS = ("none", "additive", "dot", "general", "concat")  # rnnkit.nn.attention's, or none
DEFAULT_EMBEDDING_DIM = 128  # when no word vectors give the size


@dataclass
class TranslateRecipe:
    """Everything ``rnnkit translate train`` decides: corpus, model shape, batches, training.

    The defaults: git's catalog English -> French, a 1-layer bidirectional GRU encoder and a GRU
    decoder with additive (Bahdanau) attention, 256 hidden units, 10 minutes of AdamW at 3e-3
    (``docs/translation.md`` compares the attention variants).
    """

    # data
    data: str | None = None  # corpus file (.tsv, .mo, .po); None: git's catalog for `lang`
    encoding: str = "utf-8"  # of a .tsv corpus (catalogs name theirs; a byte-order mark decides)
    lang: str = "fr"  # target language (selects git's catalog; picks sacrebleu's tokenizer)
    max_len: int = 50  # drop training/validation pairs with a side longer than this (tokens)
    min_freq: int = 2  # tokens seen fewer times in training become <unk>
    # model
    attention: str = "additive"  # "none", "additive", "dot", "general" or "concat"
    cell: str = "gru"  # "gru" or "lstm"
    embedding_dim: int | None = None  # token embedding size (None: the word vectors', else 128)
    hidden_size: int = 256  # decoder state size (the encoder's directions share it)
    num_layers: int = 1  # recurrent layers in the encoder and in the decoder
    dropout: float = 0.2  # on embeddings, between layers and before the output layer
    impl: str = "rnnkit"  # recurrent kernels: rnnkit's own BPTT, torch's fused ones, or auto
    bidirectional: bool = True  # read the source in both directions
    input_feeding: bool = False  # feed the last attentional vector back (slower to train)
    embeddings: str | None = None  # word vectors that start the source embedding layer
    target_embeddings: str | None = None  # word vectors that start the target embedding layer
    freeze_embeddings: bool = False  # keep the embeddings started from vectors fixed
    # batches and loss
    batch_size: int = 32  # sentence pairs per batch
    teacher_forcing: float = 1.0  # probability of feeding the true previous target token
    label_smoothing: float = 0.1  # mass spread over the vocabulary in the training loss
    # training
    lr: float = 3e-3  # peak learning rate (AdamW, cosine decay over the budget)
    ema: float = 0.0  # validate and keep a moving average of the weights (this decay; 0: off)
    eval_every: int = 200  # validate and checkpoint every N steps
    epochs: int | None = None  # budget: passes over the training pairs
    max_steps: int | None = None  # budget: optimizer steps
    max_minutes: float | None = 10.0  # budget: wall-clock minutes
    seed: int = 0  # random seed (weights, batch order)

    def __post_init__(self) -> None:
        # The model's settings are checked by its config (see ``model_config``).
        for name in ("max_len", "min_freq", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be at least 1")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ConfigError(f"teacher_forcing={self.teacher_forcing!r} must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranslateRecipe:
        """A recipe from ``asdict`` output (as stored in ``config.json``)."""
        return cls(**data)

    def train_config(self) -> Any:
        """The :class:`rnnkit.training.TrainConfig` of this recipe."""
        from rnnkit.training.config import TrainConfig

        return TrainConfig.from_dict(asdict(self))
