"""A recurrent language model: embedding -> RNN/LSTM/GRU layers -> softmax over the vocabulary.

It reads a (T, B) block of token ids and predicts, at every position, the next token. The
recurrent state it returns continues the same B streams in the next block (truncated BPTT).
For decoding (:mod:`rnnkit.search`) it implements the decoder contract
``step(tokens (N,), state) -> (log_probs (N, V), state)`` and ``reorder(state, index)``.

Example::

    config = LMConfig(vocab_size=len(vocab), cell="lstm", hidden_size=256, num_layers=2)
    model = RNNLanguageModel(config)
    logits, state = model(tokens)             # tokens (T, B) -> logits (T, B, V)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The one import point of the recurrent layers: rnnkit's own, drop-ins for torch.nn's.
from rnnkit.errors import ConfigError
from rnnkit.limits import FLOAT_BYTES, TRAINING_COPIES, check_fits, recurrent_parameters
from rnnkit.lm.recipe import LMRecipe
from rnnkit.nn import GRU, LSTM, RNN, EmbeddingDropout, LockedDropout, MinGRU, MinLSTM
from rnnkit.nn.layers import IMPLS

RECURRENT_LAYERS: dict[str, type[nn.Module]] = {
    "rnn": RNN, "lstm": LSTM, "gru": GRU,
    "mingru": MinGRU, "minlstm": MinLSTM,  # parallel scans (Feng et al. 2024); no impl= choice
}  # fmt: skip
LAYER_OPTIONS = ("layer_norm", "zoneout", "recurrent_dropout", "weight_drop")


@dataclass
class LMConfig:
    """Shape of an :class:`RNNLanguageModel`; stored in ``config.json`` under ``"model"``.

    The defaults are the default recipe's (:class:`rnnkit.lm.recipe.LMRecipe`, their one source).
    """

    vocab_size: int  # number of tokens (the Vocab's size, specials included)
    cell: str = LMRecipe.cell  # recurrent layer: "rnn" (tanh), "lstm", "gru", "mingru", "minlstm"
    embedding_dim: int = LMRecipe.embedding_dim  # size of the token embeddings
    hidden_size: int = LMRecipe.hidden_size  # size of each recurrent layer's state
    num_layers: int = LMRecipe.num_layers  # stacked recurrent layers
    dropout: float = LMRecipe.dropout  # before the output layer (and the two below if None)
    input_dropout: float | None = LMRecipe.input_dropout  # on the embeddings
    hidden_dropout: float | None = LMRecipe.hidden_dropout  # between the recurrent layers
    locked_dropout: bool = LMRecipe.locked_dropout  # one dropout mask per sequence (AWD)
    embedding_dropout: float = LMRecipe.embedding_dropout  # drop whole words' embeddings
    tie_weights: bool = LMRecipe.tie_weights  # output layer shares the embedding (Press & Wolf)
    impl: str = LMRecipe.impl  # rnnkit.nn kernels: "rnnkit" (own BPTT), "torch" or "auto"
    layer_norm: bool = LMRecipe.layer_norm  # layer options of rnnkit.nn's RNN/LSTM/GRU ...
    zoneout: float = LMRecipe.zoneout  # ... (docs/cells.md); not for mingru/minlstm
    recurrent_dropout: float = LMRecipe.recurrent_dropout
    weight_drop: float = LMRecipe.weight_drop
    freeze_embedding: bool = False  # keep the embedding matrix fixed (pretrained word vectors)

    def __post_init__(self) -> None:
        if self.cell not in RECURRENT_LAYERS:
            raise ConfigError(f"cell must be one of {sorted(RECURRENT_LAYERS)}, got {self.cell!r}")
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.impl not in IMPLS:
            raise ConfigError(f"impl must be one of {IMPLS}, got {self.impl!r}")
        for name in ("dropout", "input_dropout", "hidden_dropout", "embedding_dropout"):
            p = getattr(self, name)
            if p is not None and not 0.0 <= p < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {p}")
        for name in ("zoneout", "recurrent_dropout", "weight_drop"):
            p, top = getattr(self, name), "]" if name == "zoneout" else ")"
            if not (0.0 <= p <= 1.0 if name == "zoneout" else 0.0 <= p < 1.0):
                raise ConfigError(f"{name} must be in [0, 1{top}, got {p}")
        used = [n for n in LAYER_OPTIONS if getattr(self, n)]
        if used and self.cell.startswith("min"):
            raise ConfigError(
                f"{', '.join(used)} apply to the rnn, lstm and gru cells, not {self.cell}"
            )
        in_cell = [n for n in used if n != "weight_drop"]  # torch's operator runs weight drop
        if in_cell and self.impl == "torch":
            raise ConfigError(
                f"{', '.join(in_cell)} need rnnkit's kernels: impl 'rnnkit' or 'auto'"
            )
        params = recurrent_parameters(
            self.cell, self.vocab_size, self.embedding_dim, self.hidden_size, self.num_layers
        )
        check_fits(
            params * FLOAT_BYTES * TRAINING_COPIES,
            f"a {self.num_layers}x{self.hidden_size} {self.cell.upper()} with "
            f"{self.embedding_dim}-dim embeddings ({params:,} parameters, trained)",
            hint="choose a smaller --hidden, --embedding or --layers",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMConfig:
        """A config from ``asdict`` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_recipe(cls, recipe: LMRecipe, vocab_size: int) -> LMConfig:
        """The model settings of ``recipe`` for ``vocab_size`` tokens."""
        return cls(
            vocab_size=vocab_size,
            cell=recipe.cell,
            embedding_dim=recipe.embedding_dim,
            hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers,
            dropout=recipe.dropout,
            input_dropout=recipe.input_dropout,
            hidden_dropout=recipe.hidden_dropout,
            locked_dropout=recipe.locked_dropout,
            embedding_dropout=recipe.embedding_dropout,
            tie_weights=recipe.tie_weights,
            impl=recipe.impl,
            layer_norm=recipe.layer_norm,
            zoneout=recipe.zoneout,
            recurrent_dropout=recipe.recurrent_dropout,
            weight_drop=recipe.weight_drop,
            freeze_embedding=recipe.freeze_embeddings and recipe.embeddings is not None,
        )


class RNNLanguageModel(nn.Module):
    """Embedding, ``num_layers`` recurrent layers (:mod:`rnnkit.nn`), and a linear layer to
    vocabulary logits.

    With ``tie_weights`` the output layer reuses the embedding matrix (Press & Wolf 2016, "Using
    the Output Embedding to Improve Language Models"): fewer parameters and, for word models,
    usually lower perplexity. When ``hidden_size != embedding_dim`` a linear projection maps the
    last hidden state to the embedding size first.

    Args:
        config: the model's shape (:class:`LMConfig`).

    Inputs: tokens, state
        - tokens: LongTensor (T, B) of token ids.
        - state: the recurrent state from the previous block, or ``None`` for zeros.
          LSTM: a tuple ``(h, c)``, each (num_layers, B, hidden_size); others: ``h``.

    Outputs: logits, state
        - logits: (T, B, vocab_size), unnormalised scores of the next token.
        - state: the state after the last position, same layout as the input state.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        # Embedding dropout drops whole rows in training; otherwise it is nn.Embedding.
        self.embedding = EmbeddingDropout(
            c.vocab_size, c.embedding_dim, dropout=c.embedding_dropout
        )
        # Frozen pretrained vectors; with tie_weights the output layer shares (and keeps) them.
        self.embedding.weight.requires_grad_(not c.freeze_embedding)
        drop = LockedDropout if c.locked_dropout else nn.Dropout
        self.input_dropout = drop(c.dropout if c.input_dropout is None else c.input_dropout)
        self.dropout = drop(c.dropout)
        hidden_p = c.dropout if c.hidden_dropout is None else c.hidden_dropout
        hidden_p = hidden_p if c.num_layers > 1 else 0.0
        # rnn/lstm/gru: the implementation and the layer options; mingru/minlstm have neither.
        kw = {"impl": c.impl, **{name: getattr(c, name) for name in LAYER_OPTIONS}}
        kw = {} if c.cell.startswith("min") else kw
        layer = RECURRENT_LAYERS[c.cell]
        if c.locked_dropout and c.num_layers > 1:
            self.rnn: nn.Module = LockedStack(
                [layer(c.embedding_dim if i == 0 else c.hidden_size, c.hidden_size, 1, **kw)
                 for i in range(c.num_layers)],
                hidden_p,
            )  # fmt: skip
        else:  # dropout between layers is the recurrent layer's own (torch.nn semantics)
            self.rnn = layer(c.embedding_dim, c.hidden_size, c.num_layers, dropout=hidden_p, **kw)
        out_dim = c.hidden_size
        self.projection: nn.Linear | None = None
        if c.tie_weights and c.hidden_size != c.embedding_dim:
            self.projection = nn.Linear(c.hidden_size, c.embedding_dim, bias=False)
            out_dim = c.embedding_dim
        self.decoder = nn.Linear(out_dim, c.vocab_size)
        if c.tie_weights:
            self.decoder.weight = self.embedding.weight  # (V, E), shared
        self._init_weights()

    def _init_weights(self) -> None:
        # Untied: N(0, 1) embeddings (torch's default) give the recurrent layer a strong input
        # signal; measured on Shakespeare, 200 steps of a char LSTM reached 2.14 nats/char against
        # 2.30 with U(-0.1, 0.1). Tied: the matrix is also the output layer, where N(0, 1) would
        # start with huge logits, so it gets the small uniform init of Press & Wolf's setup.
        nn.init.zeros_(self.decoder.bias)
        if self.config.tie_weights:
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        else:
            nn.init.normal_(self.embedding.weight)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        raw, dropped, state = self.features(tokens, state)
        return self.output(dropped), state

    def features(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Tensor, Any]:
        """The last layer's outputs (T, B, H) before and after the output dropout, and the state
        (what activation regularisation needs; :meth:`output` turns the second into logits)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, B), got shape {tuple(tokens.shape)}")
        x = self.input_dropout(self.embedding(tokens))  # (T, B, E)
        raw, state = self.rnn(x, state)  # (T, B, H)
        return raw, self.dropout(raw), state

    def output(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits (T, B, V) of last-layer outputs (T, B, H)."""
        if self.projection is not None:
            hidden = self.projection(hidden)  # (T, B, E)
        return self.decoder(hidden)

    def loss(self, inputs: Tensor, targets: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Mean cross-entropy (nats/token) of predicting ``targets`` (T, B) from ``inputs``."""
        logits, state = self(inputs, state)
        return token_loss(logits, targets), state

    # ------------------------------------------------------------- decoder contract (search)
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed one token per sequence: tokens (N,) -> log-probabilities (N, V) of the next."""
        logits, state = self(tokens.unsqueeze(0), state)  # (1, N, V)
        return torch.log_softmax(logits[0], dim=-1), state

    def reorder(self, state: Any, index: Tensor) -> Any:
        """The state whose sequence ``i`` is sequence ``index[i]`` of ``state`` (batch dim 1)."""
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def prime(self, tokens: Tensor, state: Any = None) -> Any:
        """The state after reading ``tokens`` (T, N); used to start generation from a prompt."""
        if tokens.numel() == 0:
            return state
        return self(tokens, state)[1]


def token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy (nats/token) of logits (T, B, V) against targets (T, B)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class LockedStack(nn.Module):
    """One-layer recurrent layers in a stack with :class:`LockedDropout` between them (AWD-LSTM's
    between-layer dropout: one mask per sequence). Its state has the layout of a multi-layer
    layer's: ``h`` or ``(h, c)``, each (num_layers, B, H)."""

    def __init__(self, layers: list[nn.Module], dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = LockedDropout(dropout)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        states = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            x, layer_state = layer(x, None if state is None else layer_slice(state, i))
            states.append(layer_state)
        if isinstance(states[0], tuple):
            return x, tuple(torch.cat(parts) for parts in zip(*states))
        return x, torch.cat(states)


def layer_slice(state: Any, i: int) -> Any:
    """Layer ``i``'s part (1, B, H) of a stacked state ``h`` or ``(h, c)``."""
    if isinstance(state, tuple):
        return tuple(s[i : i + 1] for s in state)
    return state[i : i + 1]
