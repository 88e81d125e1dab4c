"""Image captioning models: a CNN encoder and an LSTM decoder (nn.Modules only).

The encoder turns an image into a grid of L feature vectors ``a_1..a_L`` (Xu et al. 2015 call
them annotation vectors). The decoder is an :class:`rnnkit.nn.LSTMCell` that emits one word per
step; three kinds share all the rest (``CaptionConfig.decoder``):

* ``"attention"``: Show, Attend and Tell (Xu et al. 2015, section 3.1.2 and 4.2.1): at step t the
  previous hidden state scores every cell with additive attention, ``alpha_t = softmax(...)``
  over the L cells, the context ``z_t = beta_t * sum_i alpha_ti a_i`` with the gating scalar
  ``beta_t = sigmoid(f_beta(h_{t-1}))`` feeds the LSTM beside the previous word's embedding; the
  doubly stochastic penalty ``sum_i (1 - sum_t alpha_ti)^2`` (eq. 14) is added to the loss by the
  task. With ``deep_output`` (the default) the words are ``softmax(L_o (h_t + L_z z_t))`` (eq. 7
  without its embedding term): the attended context reaches the word distribution directly, which
  lets the model name a colour-shape pair that never occurs in training (without it, the LSTM's
  prior of which shape follows which colour wins).
  ``glimpse_positions`` (default ``"memory"``): where the attention looks, the expected cell
  coordinates ``p_t = sum_i alpha_ti (x_i, y_i)``, and a remembered place ``m_t = g_t p_{t-1} +
  (1 - g_t) m_{t-1}`` (``g_t`` set by the word just emitted) feed the LSTM and the output layer,
  so a relation word can compare where the named object is; ``glimpses`` > 1 adds attention heads.
* ``"mean"``: no attention (Show and Tell with the image at every step): the context is the mean
  feature ``z = mean_i a_i`` at every step; with ``deep_output`` it reaches the words the same way,
  ``softmax(L_o (h_t + L_z z))``, so the two image decoders differ by the attention alone.
* ``"text"``: no image at all: a language model over captions (the floor any image model must beat).

The initial state comes from the mean feature (``h_0 = tanh(W_h mean(a))``, ``c_0 = W_c mean(a)``,
Xu et al. section 3.1.2), zeros for ``"text"``. The decoder implements :mod:`rnnkit.search`'s
contract: ``step(tokens, state) -> (log_probs, state)`` and ``reorder(state, index)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.caption.recipe import CaptionRecipe, check_glimpses
from rnnkit.errors import ConfigError
from rnnkit.nn import LSTMCell
from rnnkit.nn.attention import Attention

DECODERS = ("attention", "mean", "text")


@dataclass
class CaptionConfig:
    """The shape of a captioning model (defaults: the recipe's); stored in ``config.json``."""

    vocab_size: int  # words, specials included
    decoder: str = CaptionRecipe.decoder  # "attention", "mean" (no attention), "text" (no image)
    encoder: str = CaptionRecipe.encoder  # "cnn" (trained here) or "efficientnet-lite0"
    image_size: int = CaptionRecipe.image_size  # side of the square input images (pixels)
    channels: int = CaptionRecipe.channels  # the CNN's first layer (doubling at the next two)
    feature_size: int = CaptionRecipe.feature_size  # size F of a feature (320: efficientnet)
    embedding_dim: int = CaptionRecipe.embedding_dim  # word embedding size
    hidden_size: int = CaptionRecipe.hidden_size  # LSTM state size
    attention_size: int = CaptionRecipe.attention_size  # additive attention's hidden size
    dropout: float = CaptionRecipe.dropout  # on the embeddings and before the output layer
    deep_output: bool = CaptionRecipe.deep_output  # the context feeds the output layer
    # False only for mean-pooling runs saved before that decoder had the deep output
    mean_deep_output: bool = True
    cell_positions: str = CaptionRecipe.cell_positions  # attention: "learned", "coordinates"
    glimpses: int = CaptionRecipe.glimpses  # attention: heads (glimpses) per step
    glimpse_positions: str = CaptionRecipe.glimpse_positions  # attention: "none", "current", ...

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder={self.decoder!r} is not one of {', '.join(DECODERS)}")
        if self.image_size % 8 or self.image_size < 32:
            raise ConfigError(f"image_size={self.image_size} must be a multiple of 8, >= 32")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")
        check_glimpses(self.glimpses, self.glimpse_positions)

    @classmethod
    def from_recipe(cls, recipe: CaptionRecipe, vocab_size: int) -> CaptionConfig:
        """The model settings of ``recipe`` for ``vocab_size`` tokens."""
        from rnnkit.caption.encoders import ENCODERS

        names = {f.name for f in fields(cls)} - {"vocab_size"}
        options = {k: v for k, v in asdict(recipe).items() if k in names}
        if recipe.encoder != "cnn":
            options["feature_size"] = ENCODERS[recipe.encoder].feature_size
        return cls(vocab_size=vocab_size, **options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionConfig:
        names = {f.name for f in fields(cls)}
        # Runs saved before an option existed were trained without it.
        old = {"deep_output": False, "cell_positions": "none", "glimpses": 1,
               "mean_deep_output": False}  # fmt: skip
        data = {**old, "glimpse_positions": "none", **data}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def context_to_output(self) -> bool:
        """Whether the step's context also feeds the output layer (the deep output, ``L_z``)."""
        if self.decoder == "mean":
            return self.deep_output and self.mean_deep_output
        return self.deep_output and self.decoder == "attention"

    @property
    def grid_cells(self) -> int:
        """The number L of feature cells the decoder attends over."""
        if self.encoder == "cnn":
            return (self.image_size // 8) ** 2
        from rnnkit.caption.encoders import ENCODERS

        return ENCODERS[self.encoder].grid_cells

    @property
    def annotation_size(self) -> int:
        """The size of the vectors attention reads: the features, with coordinates 2 more."""
        return self.feature_size + 2 * (self.cell_positions == "coordinates")

    @property
    def position_size(self) -> int:
        """The size of the glimpses' expected coordinates fed to the decoder (0: none)."""
        steps = {"none": 0, "current": 1, "previous": 2, "memory": 2}[self.glimpse_positions]
        return 2 * self.glimpses * steps


def cell_coordinates(features: Tensor) -> Tensor:
    """The (x, y) in [-1, 1] of every cell of a square grid ``(N, L, F)``, as ``(L, 2)``; the
    cells are row by row (the flatten of ``(H, W)``), x grows to the right, y downwards."""
    side = math.isqrt(features.size(1))
    if side * side != features.size(1):
        raise ValueError(f"cell positions need a square grid of cells, got {features.size(1)}")
    axis = torch.linspace(-1, 1, side, device=features.device, dtype=features.dtype)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")  # (side, side) each
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)  # (L, 2)


class CNNEncoder(nn.Module):
    """A small CNN from scratch: ``(N, S, S, 3)`` uint8 images -> ``(N, (S/8)^2, F)`` features.

    Two coordinate channels (x and y in [-1, 1]) join the colour channels (CoordConv, Liu et al.
    2018), so the features say where they are: the captions speak of "left of" and "above".
    Four 3x3 convolutions, the first three with stride 2, each with batch normalisation and ReLU.
    """

    def __init__(self, *, channels: int = 32, feature_size: int = 128) -> None:
        super().__init__()
        sizes = [5, channels, 2 * channels, 4 * channels, feature_size]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(sizes[i], sizes[i + 1], 3, stride=2 if i < 3 else 1, padding=1),
                nn.BatchNorm2d(sizes[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        n, height, width, _ = images.shape
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, 3, S, S) in [-1, 1]
        ys = torch.linspace(-1, 1, height, device=x.device).view(1, 1, height, 1)
        xs = torch.linspace(-1, 1, width, device=x.device).view(1, 1, 1, width)
        coords = torch.cat([xs.expand(n, 1, height, width), ys.expand(n, 1, height, width)], 1)
        grid = self.net(torch.cat([x, coords], dim=1))  # (N, F, S/8, S/8)
        return grid.flatten(2).transpose(1, 2)  # (N, L, F)


@dataclass
class CaptionState:
    """The decoder state of N captions in progress (rows of every tensor)."""

    hidden: Tensor  # (N, H)
    cell: Tensor  # (N, H)
    features: Tensor | None  # (N, L, F) the image's feature grid (None: text only)
    projected: Tensor | None  # (N, L, A) key part of the attention score, computed once
    weights: Tensor | None = None  # (N, L) attention of the last step (mean over glimpses)
    where: Tensor | None = None  # (N, 2G) the last step's glimpses' expected (x, y), per glimpse
    memory: Tensor | None = None  # (N, 2G) the remembered place ("memory" positions)


class CaptionModel(nn.Module):
    """Encoder + decoder (see the module docstring).

    Inputs (``forward``): images ``(N, S, S, 3)`` uint8 (or features ``(N, L, F)`` for a frozen
    encoder), decoder inputs ``tgt_in (N, T)`` (``<bos>`` + caption).
    Outputs: logits ``(N, T, V)`` and attention weights ``(N, T, L)`` (None without attention).
    """

    def __init__(self, config: CaptionConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = (
            CNNEncoder(channels=c.channels, feature_size=c.feature_size)
            if c.encoder == "cnn" and c.decoder != "text"
            else None
        )
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        context = {"text": 0, "mean": c.feature_size, "attention": c.annotation_size}[c.decoder]
        if c.decoder != "text":
            self.init_hidden = nn.Linear(c.feature_size, c.hidden_size)
            self.init_cell = nn.Linear(c.feature_size, c.hidden_size)
        if c.decoder == "mean" and c.context_to_output:
            self.context_output = nn.Linear(context, c.hidden_size)  # L_z of eq. 7
        extra = 0  # LSTM inputs besides the word and the context(s): glimpse coordinates
        if c.decoder == "attention":
            self.attention = Attention(
                c.hidden_size, context, score="additive", attention_size=c.attention_size
            )
            self.gate = nn.Linear(c.hidden_size, context)  # f_beta
            # Glimpses 2.. (heads with their own scores and gates), named apart so that runs
            # with one glimpse keep their parameter names.
            self.more_attention = nn.ModuleList(
                Attention(c.hidden_size, context, score="additive", attention_size=c.attention_size)
                for _ in range(c.glimpses - 1)
            )
            self.more_gates = nn.ModuleList(
                nn.Linear(c.hidden_size, context) for _ in range(c.glimpses - 1)
            )
            context *= c.glimpses
            if c.context_to_output:
                self.context_output = nn.Linear(context, c.hidden_size)  # L_z of eq. 7
            if c.cell_positions == "learned":  # zeros: training starts from the model without
                self.positions = nn.Parameter(torch.zeros(c.grid_cells, c.feature_size))
            if c.position_size:
                extra = c.position_size
                self.position_output = nn.Linear(extra, c.hidden_size)  # where -> the word
            if c.glimpse_positions == "memory":  # how much the last word's place is kept
                self.memory_gate = nn.Linear(c.embedding_dim, 1)
        self.cell = LSTMCell(c.embedding_dim + context + extra, c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.hidden_size, c.vocab_size)

    def encode(self, images: Tensor) -> Tensor | None:
        """The feature grid ``(N, L, F)`` of images (features pass through; None: text only)."""
        if self.config.decoder == "text":
            return None
        if self.encoder is None:
            return images.to(self.output.weight.dtype)  # a frozen encoder's features
        return self.encoder(images)

    def start(self, images: Tensor) -> CaptionState:
        """The initial decoder state for a batch of images (or features)."""
        features = self.encode(images)
        n, size = images.size(0), self.config.hidden_size
        if features is None:
            zeros = self.output.weight.new_zeros(n, size)
            return CaptionState(zeros, zeros, None, None)
        mean = features.mean(dim=1)  # (N, F)
        hidden, cell = torch.tanh(self.init_hidden(mean)), self.init_cell(mean)
        projected, where = None, None
        if self.config.decoder == "attention":
            features = self.place(features)  # (N, L, F'): where each cell is, for attention
            heads = [self.attention, *self.more_attention]
            projected = torch.cat([a.precompute(features) for a in heads], dim=2)  # (N, L, G*A)
            if self.config.glimpse_positions in ("previous", "memory"):  # at first: the centre
                where = features.new_zeros(n, 2 * self.config.glimpses)
        memory = where if self.config.glimpse_positions == "memory" else None
        return CaptionState(hidden, cell, features, projected, where=where, memory=memory)

    def place(self, features: Tensor) -> Tensor:
        """The annotation vectors with their cells' positions (``cell_positions``)."""
        if self.config.cell_positions == "learned":
            return features + self.positions  # (N, L, F)
        if self.config.cell_positions == "coordinates":
            coords = cell_coordinates(features)  # (L, 2)
            return torch.cat([features, coords.expand(features.size(0), -1, -1)], dim=2)
        return features

    def glimpse(self, state: CaptionState) -> tuple[Tensor, Tensor, Tensor]:
        """Every glimpse of one step: the gated contexts ``(N, G*F')``, the mean attention
        weights ``(N, L)`` and the glimpses' expected coordinates ``(N, 2G)``."""
        size = self.config.attention_size
        heads = zip([self.attention, *self.more_attention], [self.gate, *self.more_gates])
        contexts, weights = [], []
        for k, (attention, gate) in enumerate(heads):
            context, alpha = attention(
                state.hidden,
                state.features,
                projected=state.projected[..., k * size : (k + 1) * size],
            )  # (N, F'), (N, L)
            contexts.append(torch.sigmoid(gate(state.hidden)) * context)  # the gating scalar beta
            weights.append(alpha)
        alphas = torch.stack(weights, dim=1)  # (N, G, L)
        where = (alphas @ cell_coordinates(state.features)).flatten(1)  # (N, G*2): x, y each
        return torch.cat(contexts, dim=1), alphas.mean(dim=1), where

    def advance(self, tokens: Tensor, state: CaptionState) -> tuple[Tensor, CaptionState]:
        """One step: previous words ``(N,)`` -> logits ``(N, V)`` and the new state."""
        embedded = self.embedding(tokens)  # (N, E)
        inputs = self.dropout(embedded)
        context, weights, where, places, memory = None, None, None, None, None
        if self.config.decoder == "attention":
            context, weights, where = self.glimpse(state)  # (N, G*F'), (N, L), (N, 2G)
            inputs = torch.cat([inputs, context], dim=1)
            mode = self.config.glimpse_positions
            if mode != "none":  # where the glimpses look (and looked one step before)
                places = where if mode == "current" else torch.cat([where, state.where], dim=1)
                if mode == "memory":  # keep the place where the last word was read, as its
                    keep = torch.sigmoid(self.memory_gate(embedded))  # word says: (N, 1)
                    memory = keep * state.where + (1 - keep) * state.memory  # (N, 2G)
                    places = torch.cat([where, memory], dim=1)
                inputs = torch.cat([inputs, places], dim=1)
        elif self.config.decoder == "mean":
            context = state.features.mean(dim=1)  # (N, F)
            inputs = torch.cat([inputs, context], dim=1)
        hidden, cell = self.cell(inputs, (state.hidden, state.cell))
        top = hidden
        if self.config.context_to_output:  # the word also sees the context (attended or mean)
            top = top + self.context_output(context)
        if places is not None:  # ... and where: a relation word compares two places linearly
            top = top + self.position_output(places)
        logits = self.output(self.dropout(top))  # (N, V)
        if self.config.glimpse_positions not in ("previous", "memory"):
            where = None
        state = replace(state, hidden=hidden, cell=cell, weights=weights, where=where)
        return logits, replace(state, memory=memory)

    def step(self, tokens: Tensor, state: CaptionState) -> tuple[Tensor, CaptionState]:
        """The decoding contract: previous words ``(N,)`` -> log-probabilities ``(N, V)``."""
        logits, state = self.advance(tokens, state)
        return F.log_softmax(logits, dim=-1), state

    @staticmethod
    def reorder(state: CaptionState, index: Tensor) -> CaptionState:
        """Row ``i`` of the result is row ``index[i]`` of ``state``."""
        changes = {}
        for name in ("hidden", "cell", "features", "projected", "weights", "where", "memory"):
            value = getattr(state, name)
            if value is not None:
                changes[name] = value.index_select(0, index)
        return replace(state, **changes)

    def forward(
        self, images: Tensor, tgt_in: Tensor, *, sampling: float = 0.0
    ) -> tuple[Tensor, Tensor | None]:
        """Logits ``(N, T, V)`` of every step and the attention ``(N, T, L)`` (None without).

        ``sampling``: the probability, per row and step, of feeding the model's own best guess
        for the previous word instead of ``tgt_in``'s (scheduled sampling, Bengio et al. 2015).
        """
        state = self.start(images)
        logits, weights = [], []
        tokens = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state = self.advance(tokens, state)
            logits.append(step_logits)
            weights.append(state.weights)
            if t + 1 < tgt_in.size(1):
                tokens = tgt_in[:, t + 1]
                if sampling > 0:
                    own = step_logits.detach().argmax(dim=1)  # (N,)
                    use_own = torch.rand(own.shape, device=own.device) < sampling
                    tokens = torch.where(use_own, own, tokens)
        alphas = torch.stack(weights, dim=1) if self.config.decoder == "attention" else None
        return torch.stack(logits, dim=1), alphas  # (N, T, V), (N, T, L)
