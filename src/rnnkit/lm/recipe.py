"""The language model's recipe: every default of ``rnnkit lm train`` (and ``rnnkit demo``), once.

Torch-free, so the command line can show the defaults in ``--help`` without importing torch; the
model's config (:class:`rnnkit.lm.model.LMConfig`) takes its defaults from here too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from rnnkit.errors import ConfigError


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
    train_tokens: int | None = None  # train on the first N tokens of the training split only
    max_vocab: int | None = None  # keep the N most frequent training tokens, the rest <unk>
    level: str = "char"  # tokenizer: "char" or "word"
    cell: str = "gru"  # recurrent layer: "rnn", "lstm", "gru", "mingru" or "minlstm"
    embedding_dim: int = 64  # token embedding size
    hidden_size: int = 256  # recurrent state size
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.0  # dropout on the output (and embeddings/between layers, if not set)
    input_dropout: float | None = None  # dropout on the embeddings (None: dropout)
    hidden_dropout: float | None = None  # dropout between the layers (None: dropout)
    locked_dropout: bool = False  # those dropouts with one mask per sequence (LockedDropout)
    embedding_dropout: float = 0.0  # drop whole words' embedding rows (EmbeddingDropout)
    tie_weights: bool = False  # share embedding and output matrices (Press & Wolf 2016)
    impl: str = "auto"  # rnnkit.nn kernels: "rnnkit", "torch" (fused op) or "auto" (faster)
    layer_norm: bool = False  # layer normalization in the rnn/lstm/gru cells (docs/cells.md)
    zoneout: float = 0.0  # zoneout probability of the rnn/lstm/gru states
    recurrent_dropout: float = 0.0  # one dropout mask per sequence on h_{t-1} (rnn/lstm/gru)
    weight_drop: float = 0.0  # DropConnect on the recurrent weights (rnn/lstm/gru)
    embeddings: str | None = None  # word-vector file that starts the embedding layer
    freeze_embeddings: bool = False  # keep those pretrained embeddings fixed
    start_from: str | None = None  # a run whose best weights and vocabulary start the model
    bptt: int = 100  # truncated-BPTT window length (tokens)
    variable_bptt: bool = False  # AWD's random window lengths around bptt (seeded per epoch)
    ar: float = 0.0  # activation regularisation: ar * mean(dropped last-layer output^2)
    tar: float = 0.0  # temporal AR: tar * mean((h_t - h_{t-1})^2) of the last layer
    batch_size: int = 32  # parallel streams (batch columns)
    optimizer: str = "adamw"  # "adamw", "sgd" or "nt-asgd" (SGD, averaged when valid stalls)
    nonmono: int = 5  # nt-asgd: validations to look back before averaging (0: from the start)
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay
    schedule: str = "cosine"  # learning-rate decay over the budget
    warmup_steps: int = 50  # linear warm-up steps
    clip_norm: float = 1.0  # gradient-norm clipping
    ema: float = 0.0  # validate and keep a moving average of the weights (this decay; 0: off)
    epochs: int | None = None  # budget: passes over the training text
    max_steps: int | None = None  # budget: optimizer steps
    max_minutes: float | None = 10.0  # budget: wall-clock minutes
    eval_every: int = 1000  # validate and checkpoint every N steps
    eval_each_epoch: bool = False  # also validate and checkpoint at the end of every pass
    seed: int = 0  # random seed

    def train_config(self) -> Any:
        """The :class:`rnnkit.training.TrainConfig` of this recipe."""
        from rnnkit.training.config import TrainConfig

        return TrainConfig.from_dict(asdict(self))


def awd_lstm(*, full: bool = False) -> LMRecipe:
    """The AWD-LSTM recipe (Merity et al. 2017): a 3-layer LSTM with weight drop on the recurrent
    weights, locked dropout on the embeddings, between layers and on the output, embedding
    dropout, AR/TAR, tied weights, variable BPTT windows and NT-ASGD (the paper's lr 30, clip 0.25).

    ``full``: the values of the paper's code (salesforce/awd-lstm-lm ``main.py`` defaults:
    400/1150 units, bptt 70, batch 80, dropouts .65/.3/.4/.1, weight drop .5, 500 epochs).
    Otherwise scaled to 10 minutes on 2 CPU cores: 200/400 units, bptt 35, batch 20, lighter
    dropout (a short run underfits), and two values that follow from the smaller scale:

    - The SGD rate scales with the tokens per update: 30 x (20 x 35) / (80 x 70) = 3.75. The
      paper's 30 averages 5,600 tokens per step; with 700 the steps are noisier, and at 30 this
      model diverged (validation loss 8.2-14.1 nats/word over 558 steps on 100,000 Shakespeare
      words, above the uniform 8.96), where 7.5 and 3.75 trained (3.75 the better at each of
      its first three validations; docs/cells.md, "NT-ASGD in a short budget").
    - Validation every 100 steps: NT-ASGD can switch at the earliest at validation
      ``nonmono + 2`` (it compares with the best before the last ``nonmono``), which at every
      200 steps is step 1,400, beyond 10 minutes on 2 cores (one thread made 576 steps of the
      whole corpus in 10 CPU-minutes, so two make at most about 1,150); at 100, step 700.
    """
    common = dict(
        level="word", cell="lstm", num_layers=3, tie_weights=True, locked_dropout=True,
        variable_bptt=True, ar=2.0, tar=1.0, optimizer="nt-asgd", lr=30.0, nonmono=5,
        weight_decay=1.2e-6, schedule="constant", warmup_steps=0, clip_norm=0.25,
    )  # fmt: skip
    if full:
        return LMRecipe(
            **common, embedding_dim=400, hidden_size=1150, bptt=70, batch_size=80,
            dropout=0.4, input_dropout=0.65, hidden_dropout=0.3, embedding_dropout=0.1,
            weight_drop=0.5, epochs=500, max_minutes=None, eval_every=500,
        )  # fmt: skip
    bptt, batch_size = 35, 20
    # The paper's rate per token of an update (80 streams x 70 steps), at this update's size.
    lr = common.pop("lr") * (batch_size * bptt) / (80 * 70)
    return LMRecipe(
        **common, lr=lr, embedding_dim=200, hidden_size=400, bptt=bptt, batch_size=batch_size,
        dropout=0.3, input_dropout=0.3, hidden_dropout=0.2, embedding_dropout=0.05,
        weight_drop=0.3, max_minutes=10.0, eval_every=100,
    )  # fmt: skip


#: The default recipe's optimizer: AdamW at 3e-3, 50 warm-up steps, cosine decay, clip 1.
ADAMW = {name: getattr(LMRecipe(), name) for name in (
    "optimizer", "lr", "schedule", "warmup_steps", "clip_norm", "weight_decay",
)}  # fmt: skip


def awd_lstm_adamw() -> LMRecipe:
    """``awd-lstm``'s model and regularisers at half its dropout and weight-drop rates, trained
    with the default recipe's optimizer (:data:`ADAMW`) instead of NT-ASGD, for budgets of
    several passes over a large text. Its budget and vocabulary are those it was measured at
    (docs/cells.md, "Seed 2 at 120 CPU-minutes"): on the whole Shakespeare training split, a
    10,000-word vocabulary and 120 CPU-minutes (7-11 passes), its best validation perplexity was
    0.883, 0.858 and 0.891 of a plain LSTM's of the same size and budget (seeds 0-2), where
    ``awd-lstm`` itself was 1.12-1.18 at 90 CPU-minutes.
    """
    awd = awd_lstm()
    half = {name: getattr(awd, name) / 2 for name in (
        "dropout", "input_dropout", "hidden_dropout", "embedding_dropout", "weight_drop",
    )}  # fmt: skip
    return replace(awd, **ADAMW, **half, max_vocab=10_000, max_minutes=120.0, eval_every=500)


RECIPES: dict[str, LMRecipe] = {
    "default": LMRecipe(),
    "awd-lstm": awd_lstm(),
    "awd-lstm-full": awd_lstm(full=True),
    "awd-lstm-adamw": awd_lstm_adamw(),
}  # the named recipes of ``rnnkit lm train --recipe NAME``


def get_recipe(name: str) -> LMRecipe:
    """A copy of the named recipe (:data:`RECIPES`); an unknown name lists the names."""
    if name not in RECIPES:
        raise ConfigError(f"no recipe {name!r}; the recipes are: {', '.join(RECIPES)}")
    return replace(RECIPES[name])


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
