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
from rnnkit.nn import GRU, LSTM, RNN, MinGRU, MinLSTM
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
    dropout: float = LMRecipe.dropout  # on embeddings, between layers, before the output layer
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
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("zoneout", "recurrent_dropout", "weight_drop"):
            p, top = getattr(self, name), "]" if name == "zoneout" else ")"
            if not (0.0 <= p <= 1.0 if name == "zoneout" else 0.0 <= p < 1.0):
                raise ConfigError(f"{name} must be in [0, 1{top}, got {p}")
        used = [n for n in LAYER_OPTIONS if getattr(self, n)]
        if used and self.cell.startswith("min"):
            raise ConfigError(
                f"{', '.join(used)} apply to the rnn, lstm and gru cells, not {self.cell}"
            )
        if used and self.impl == "torch":
            raise ConfigError(f"{', '.join(used)} need rnnkit's kernels: impl 'rnnkit' or 'auto'")
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
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        # Frozen pretrained vectors; with tie_weights the output layer shares (and keeps) them.
        self.embedding.weight.requires_grad_(not c.freeze_embedding)
        self.dropout = nn.Dropout(c.dropout)
        # Dropout between layers is the recurrent layer's own (torch.nn semantics).
        layer_dropout = c.dropout if c.num_layers > 1 else 0.0
        # rnn/lstm/gru: the implementation and the layer options; mingru/minlstm have neither.
        kw = {"impl": c.impl, **{name: getattr(c, name) for name in LAYER_OPTIONS}}
        kw = {} if c.cell.startswith("min") else kw
        self.rnn = RECURRENT_LAYERS[c.cell](
            c.embedding_dim, c.hidden_size, c.num_layers, dropout=layer_dropout, **kw
        )
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
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, B), got shape {tuple(tokens.shape)}")
        x = self.dropout(self.embedding(tokens))  # (T, B, E)
        out, state = self.rnn(x, state)  # (T, B, H)
        out = self.dropout(out)
        if self.projection is not None:
            out = self.projection(out)  # (T, B, E)
        return self.decoder(out), state  # (T, B, V)

    def loss(self, inputs: Tensor, targets: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Mean cross-entropy (nats/token) of predicting ``targets`` (T, B) from ``inputs``."""
        logits, state = self(inputs, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return loss, state

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
