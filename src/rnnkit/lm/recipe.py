"""The language model's recipe: every default of ``rnnkit lm train`` (and ``rnnkit demo``), once.

Torch-free, so the command line can show the defaults in ``--help`` without importing torch; the
model's config (:class:`rnnkit.lm.model.LMConfig`) takes its defaults from here too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class LMRecipe:
    """Everything ``rnnkit lm train`` decides: data, model shape and training settings.

    The defaults are the default recipe, chosen for a 10-minute budget on 2 CPU cores, where
    throughput decides (``benchmarks/lm.py`` measures it): a character-level 2x256 GRU (rnnkit's
    GRU kernels train faster than its LSTM ones and than torch's fused GRU on the CPU; a GRU step
    costs 3/4 of an LSTM step), no dropout (it cost 0.02 nats/char in 3,700 steps), N(0, 1)
    embeddings, 32 streams (more updates beat bigger batches in this budget), AdamW at 3e-3 with a
    cosine decay to zero at the end of the budget (8e-3 wins short runs, 3e-3 the ~4,000 steps of
    10 minutes). docs/language-models.md shows the comparison.
    """

    data: str = "shakespeare"  # corpus name or path of a text file
    encoding: str = "utf-8"  # encoding of a text file
    level: str = "char"  # tokenizer: "char" or "word"
    cell: str = "gru"  # recurrent layer: "rnn", "lstm", "gru", "mingru" or "minlstm"
    embedding_dim: int = 64  # token embedding size
    hidden_size: int = 256  # recurrent state size
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.0  # dropout (embeddings, between layers, output)
    tie_weights: bool = False  # share embedding and output matrices (Press & Wolf 2016)
    impl: str = "auto"  # rnnkit.nn kernels: "rnnkit", "torch" (fused op) or "auto" (faster)
    layer_norm: bool = False  # layer normalization in the rnn/lstm/gru cells (docs/cells.md)
    zoneout: float = 0.0  # zoneout probability of the rnn/lstm/gru states
    recurrent_dropout: float = 0.0  # one dropout mask per sequence on h_{t-1} (rnn/lstm/gru)
    weight_drop: float = 0.0  # DropConnect on the recurrent weights (rnn/lstm/gru)
    embeddings: str | None = None  # word-vector file that starts the embedding layer
    freeze_embeddings: bool = False  # keep those pretrained embeddings fixed
    bptt: int = 100  # truncated-BPTT window length (tokens)
    batch_size: int = 32  # parallel streams (batch columns)
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay
    schedule: str = "cosine"  # learning-rate decay over the budget
    warmup_steps: int = 50  # linear warm-up steps
    clip_norm: float = 1.0  # gradient-norm clipping
    epochs: int | None = None  # budget: passes over the training text
    max_steps: int | None = None  # budget: optimizer steps
    max_minutes: float | None = 10.0  # budget: wall-clock minutes
    eval_every: int = 1000  # validate and checkpoint every N steps
    seed: int = 0  # random seed

    def train_config(self) -> Any:
        """The :class:`rnnkit.training.TrainConfig` of this recipe."""
        from rnnkit.training.config import TrainConfig

        return TrainConfig.from_dict(asdict(self))


@dataclass
class GenerateRecipe:
    """How ``rnnkit lm generate`` and :func:`rnnkit.lm.generate` continue a text by default."""

    prime: str = "\n"  # the text to continue
    length: int = 500  # tokens to generate
    temperature: float = 0.8  # sampling: below 1 safer text, above 1 more surprising
    beam: int = 1  # > 1: beam search of this width (the most likely text) instead of sampling


@dataclass
class DemoRecipe:
    """What ``rnnkit demo`` does by default (the model is :class:`LMRecipe`'s)."""

    minutes: float = 2.0  # training time
    length: int = 600  # characters generated afterwards
