"""Sequence-to-sequence translation: a recurrent encoder and an attentional recurrent decoder.

The encoder reads the source tokens with a (bidirectional) GRU or LSTM over a packed batch, so
padding never enters a recurrence. A *bridge* maps its final state to the decoder's initial state.
The decoder writes one target token per step (Luong et al. 2015, section 3)::

    h_t = RNN([E y_{t-1}; h~_{t-1}], h_{t-1})      the recurrent step, with input feeding
    c_t, a_t = attend(h_t, encoder states, mask)   context vector and attention weights
    h~_t = tanh(W_c [c_t; h_t])                    the attentional vector
    p(y_t) = softmax(W_o h~_t)

Feeding ``h~_{t-1}`` back into the input is *input feeding*: the decoder knows what it
attended to at the previous step. The attention score is any of ``rnnkit.nn.attention.SCORES``;
``attention="none"`` drops ``c_t`` and ``h~_t = h_t``: the plain encoder-decoder of
Sutskever et al. (2014) with a bridge, for comparison.

The decoder follows the contract of ``rnnkit.search``: ``step(tokens, state) -> (log_probs, state)``
and ``reorder(state, index)``. The state (``DecoderState``) carries the encoder states and the
padding mask, so beam search reorders them together with the recurrent state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.errors import ConfigError
from rnnkit.limits import FLOAT_BYTES, TRAINING_COPIES, check_fits, recurrent_parameters
from rnnkit.nn import GRU, LSTM
from rnnkit.nn.attention import SCORES, Attention
from rnnkit.translate.recipe import DEFAULT_EMBEDDING_DIM
from rnnkit.translate.recipe import TranslateRecipe as R

CELLS = {"gru": GRU, "lstm": LSTM}
ATTENTIONS = ("none", *SCORES)


@dataclass
class Seq2SeqConfig:
    """Shape of a ``Seq2Seq`` model; stored in ``config.json`` under ``"model"``.

    The defaults are the recipe's (:class:`rnnkit.translate.recipe.TranslateRecipe`).
    """

    src_vocab_size: int  # number of source tokens, special tokens included
    tgt_vocab_size: int  # number of target tokens, special tokens included
    embedding_dim: int = DEFAULT_EMBEDDING_DIM  # size of the source and target token embeddings
    hidden_size: int = R.hidden_size  # size of the decoder state and of the encoder states
    num_layers: int = R.num_layers  # stacked recurrent layers, in the encoder and the decoder
    cell: str = R.cell  # "gru" or "lstm"
    bidirectional: bool = R.bidirectional  # read the source in both directions
    attention: str = R.attention  # "none", "additive", "dot", "general" or "concat"
    # Feed the previous attentional vector to the decoder's input (Luong et al. 2015). Off by
    # default: without it training runs the whole target at once, and under a CPU time budget that
    # reached clearly better models (docs/translation.md, Benchmark).
    input_feeding: bool = R.input_feeding
    dropout: float = R.dropout  # dropout on embeddings, between layers and before the output
    pad_index: int = 0  # index of the padding token in both vocabularies
    impl: str = R.impl  # recurrent kernels: "rnnkit" (own BPTT), "torch" (fused) or "auto"
    freeze_src_embedding: bool = False  # keep the source embeddings fixed (pretrained vectors)
    freeze_tgt_embedding: bool = False  # keep the target embeddings fixed (pretrained vectors)

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "embedding_dim", "hidden_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be positive")
        if self.bidirectional and self.hidden_size % 2:
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be even for a bidirectional encoder "
                "(each direction gets half)"
            )
        if self.num_layers < 1:
            raise ConfigError(f"num_layers={self.num_layers!r} must be at least 1")
        if self.cell not in CELLS:
            raise ConfigError(f"cell={self.cell!r} is not one of {', '.join(CELLS)}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention={self.attention!r} is not one of {', '.join(ATTENTIONS)}")
        if self.impl not in ("rnnkit", "torch", "auto"):
            raise ConfigError(f"impl={self.impl!r} is not one of rnnkit, torch, auto")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r} must be in [0, 1)")
        # Encoder and decoder, each about an embedding, a recurrent stack and an output layer.
        params = sum(
            recurrent_parameters(
                self.cell, vocab, self.embedding_dim, self.hidden_size, self.num_layers
            )
            for vocab in (self.src_vocab_size, self.tgt_vocab_size)
        )
        check_fits(
            params * FLOAT_BYTES * TRAINING_COPIES,
            f"a {self.num_layers}x{self.hidden_size} {self.cell.upper()} encoder-decoder with "
            f"{self.embedding_dim}-dim embeddings (about {params:,} parameters, trained)",
            hint="choose a smaller --hidden-size, --embedding-dim or --layers",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Seq2SeqConfig:
        """A config from ``asdict`` output (as stored in ``config.json``)."""
        return cls(**data)

    @classmethod
    def from_recipe(
        cls,
        recipe: R,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        pad_index: int = 0,
        vector_dim: int | None = None,
    ) -> Seq2SeqConfig:
        """The model settings of ``recipe``; ``vector_dim``, the size of the word vectors given,
        is the embedding size unless the recipe sets one."""
        return cls(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            embedding_dim=recipe.embedding_dim or vector_dim or DEFAULT_EMBEDDING_DIM,
            hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers,
            cell=recipe.cell,
            bidirectional=recipe.bidirectional,
            attention=recipe.attention,
            input_feeding=recipe.input_feeding,
            dropout=recipe.dropout,
            pad_index=pad_index,
            impl=recipe.impl,
            freeze_src_embedding=recipe.freeze_embeddings and recipe.embeddings is not None,
            freeze_tgt_embedding=recipe.freeze_embeddings and recipe.target_embeddings is not None,
        )


@dataclass
class DecoderState:
    """Everything the decoder needs for its next step; batch rows can be reordered together."""

    hidden: Tensor  # (L, N, H) decoder hidden state
    cell: Tensor | None  # (L, N, H) LSTM cell state, None for a GRU
    feed: Tensor  # (N, H) attentional vector of the previous step (zeros at the start)
    memory: Tensor  # (N, S, H) encoder states, both directions side by side
    projected: Tensor | None  # (N, S, *) query-independent part of the attention scores
    mask: Tensor  # (N, S) True at real source positions
    weights: Tensor | None = None  # (N, S) attention weights of the last step


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention; see the module docstring for the equations.

    Args:
        config: a ``Seq2SeqConfig``.

    Inputs of ``forward``: src, src_lengths, tgt_in, teacher_forcing
        * **src**: ``(N, S)`` source token indices, padded with ``config.pad_index``.
        * **src_lengths**: ``(N,)`` number of real tokens in each source row (at least 1).
        * **tgt_in**: ``(N, T)`` decoder inputs: BOS followed by the target without its end.
        * **teacher_forcing**: probability of feeding the true previous token rather than the
          model's own best guess, drawn per row and step (1.0: always the true one).

    Output: logits ``(N, T, V_tgt)``.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        directions = 2 if c.bidirectional else 1
        rnn = CELLS[c.cell]
        between = c.dropout if c.num_layers > 1 else 0.0
        self.src_embedding = nn.Embedding(
            c.src_vocab_size, c.embedding_dim, padding_idx=c.pad_index
        )
        # Each direction has hidden_size / D units, so the encoder states (the attention keys) have
        # the decoder's size, as dot attention needs.
        self.encoder = rnn(
            c.embedding_dim,
            c.hidden_size // directions,
            c.num_layers,
            batch_first=True,
            dropout=between,
            bidirectional=c.bidirectional,
            impl=c.impl,
        )
        memory_size = c.hidden_size
        # The bridge: final encoder state (both directions) -> initial decoder state, per layer.
        self.bridge = nn.Linear(memory_size, c.hidden_size)
        self.bridge_cell = nn.Linear(memory_size, c.hidden_size) if c.cell == "lstm" else None
        feeding = c.attention != "none" and c.input_feeding
        self.tgt_embedding = nn.Embedding(
            c.tgt_vocab_size, c.embedding_dim, padding_idx=c.pad_index
        )
        self.src_embedding.weight.requires_grad_(not c.freeze_src_embedding)
        self.tgt_embedding.weight.requires_grad_(not c.freeze_tgt_embedding)
        self.decoder = rnn(
            c.embedding_dim + (c.hidden_size if feeding else 0),
            c.hidden_size,
            c.num_layers,
            batch_first=True,
            dropout=between,
            impl=c.impl,
        )
        if c.attention == "none":
            self.attention = self.combine = None
        else:
            self.attention = Attention(c.hidden_size, memory_size, score=c.attention)
            self.combine = nn.Linear(memory_size + c.hidden_size, c.hidden_size, bias=False)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.hidden_size, c.tgt_vocab_size)

    # -- encoder -------------------------------------------------------------------------------

    def start(self, src: Tensor, src_lengths: Tensor) -> DecoderState:
        """Encode a padded source batch into the decoder's initial state."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(
                f"expected src (N, S) and src_lengths (N,), got {tuple(src.shape)} "
                f"and {tuple(src_lengths.shape)}"
            )
        if int(src_lengths.min()) < 1:
            raise ValueError("every source sentence needs at least one token")
        c = self.config
        embedded = self.dropout(self.src_embedding(src))  # (N, S, E)
        packed = pack_padded_sequence(
            embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        hidden, cell = final if c.cell == "lstm" else (final, None)
        hidden = torch.tanh(self.bridge(self._join_directions(hidden)))  # (L, N, H)
        if cell is not None:
            cell = torch.tanh(self.bridge_cell(self._join_directions(cell)))
        positions = torch.arange(src.size(1), device=src.device)
        mask = positions.unsqueeze(0) < src_lengths.to(src.device).unsqueeze(1)  # (N, S)
        projected = self.attention.precompute(memory) if self.attention is not None else None
        feed = memory.new_zeros(src.size(0), c.hidden_size)
        return DecoderState(hidden, cell, feed, memory, projected, mask)

    def _join_directions(self, final: Tensor) -> Tensor:
        """``(L*D, N, H/D)`` final states -> ``(L, N, H)``, both directions side by side."""
        layers, directions = self.config.num_layers, 2 if self.config.bidirectional else 1
        final = final.view(layers, directions, final.size(1), final.size(2))
        return torch.cat([final[:, d] for d in range(directions)], dim=2)

    # -- decoder -------------------------------------------------------------------------------

    def advance(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoder step up to the attentional vector ``h~_t`` ``(N, H)``, before the output."""
        inputs = self.dropout(self.tgt_embedding(tokens))  # (N, E)
        if self.attention is not None and self.config.input_feeding:
            inputs = torch.cat([inputs, state.feed], dim=1)
        hx = state.hidden if state.cell is None else (state.hidden, state.cell)
        output, hx = self.decoder(inputs.unsqueeze(1), hx)
        hidden, cell = hx if state.cell is not None else (hx, None)
        top = output[:, 0]  # (N, H)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(top, state.memory, state.mask, state.projected)
            top = torch.tanh(self.combine(torch.cat([context, top], dim=1)))  # (N, H)
        return top, replace(state, hidden=hidden, cell=cell, feed=top, weights=weights)

    def step_logits(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoder step: previous tokens ``(N,)`` -> logits ``(N, V_tgt)`` and the new state."""
        top, state = self.advance(tokens, state)
        return self.output(self.dropout(top)), state

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """The decoding contract: previous tokens ``(N,)`` -> log-probabilities ``(N, V_tgt)``."""
        logits, state = self.step_logits(tokens, state)
        return F.log_softmax(logits, dim=-1), state

    @staticmethod
    def reorder(state: DecoderState, index: Tensor) -> DecoderState:
        """Select (and repeat) batch rows of ``state``: row ``i`` of the result is ``index[i]``."""
        changes = {}
        for field in fields(state):
            value = getattr(state, field.name)
            if value is not None:
                dim = 1 if field.name in ("hidden", "cell") else 0
                changes[field.name] = value.index_select(dim, index)
        return replace(state, **changes)

    def align(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Attention weights ``(N, T, S)`` while reading the given decoder inputs ``tgt_in``.

        Row ``t`` of a sentence is where the decoder looks when it predicts the token after
        ``tgt_in[:, t]``. Needs a model with attention.
        """
        if self.attention is None:
            raise ValueError("this model was trained with --attention none; it has no attention")
        state = self.start(src, src_lengths)
        rows = []
        for t in range(tgt_in.size(1)):
            _, state = self.advance(tgt_in[:, t], state)
            rows.append(state.weights)
        return torch.stack(rows, dim=1)

    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        state = self.start(src, src_lengths)
        if teacher_forcing >= 1.0:
            if self.attention is None or not self.config.input_feeding:
                # Every input is known and no step needs the previous step's attention: one call
                # of the recurrent layer over all steps, then attention for all steps at once.
                hx = state.hidden if state.cell is None else (state.hidden, state.cell)
                tops, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), hx)  # (N, T, H)
                if self.attention is not None:
                    context, _ = self.attention(tops, state.memory, state.mask, state.projected)
                    tops = torch.tanh(self.combine(torch.cat([context, tops], dim=2)))
                return self.output(self.dropout(tops))  # (N, T, V)
            tops = []
            for t in range(tgt_in.size(1)):
                top, state = self.advance(tgt_in[:, t], state)
                tops.append(top)
            return self.output(self.dropout(torch.stack(tops, dim=1)))  # (N, T, V), one product
        tokens = tgt_in[:, 0]
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state = self.step_logits(tokens, state)
            steps.append(logits)
            if t + 1 < tgt_in.size(1):
                # Scheduled sampling (Bengio et al. 2015): per row, the true previous token with
                # probability `teacher_forcing`, else the model's own best guess.
                own = logits.argmax(dim=1)
                use_true = torch.rand(own.shape, device=own.device) < teacher_forcing
                tokens = torch.where(use_true, tgt_in[:, t + 1], own)
        return torch.stack(steps, dim=1)  # (N, T, V)
