"""The acoustic model: frame stacking (or a small convolution), a bidirectional recurrent stack,
a linear layer to the characters plus the CTC blank.

Frame stacking (Sak et al. 2015) joins ``stack`` consecutive 10 ms frames into one input of
``stack * n_mels`` values: the recurrence then runs ``stack`` times fewer steps, which is most of
the cost, and CTC still has more frames than characters. The recurrent layers are rnnkit's own
(:mod:`rnnkit.nn`) and read packed batches, so padding costs nothing and the backward direction
starts at each utterance's own end.

With ``self_condition`` > 0 the stack is self-conditioned (Nozaki & Komatsu 2021): the first
layer's output ``x`` also predicts the characters through the same output layer, ``z =
softmax(W_o x + b_o)``, and the layers above read ``x + W_c z``, so they see what was already
recognised and the per-frame outputs are no longer independent given the audio alone (CTC's
weakness behind misspellings); the training loss is ``(1 - w) CTC(final) + w CTC(z)`` with ``w =
self_condition`` (:class:`rnnkit.speech.task.SpeechTask`).

Example::

    config = AcousticConfig(n_mels=40, num_classes=len(alphabet))
    model = AcousticModel(config)
    log_probs, lengths = model(feats, feat_lengths)   # (B, T, 40) -> (T', B, C), (B,)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.errors import ConfigError
from rnnkit.nn import GRU, LSTM
from rnnkit.speech.recipe import check_self_condition

RECURRENT = {"lstm": LSTM, "gru": GRU}


@dataclass
class AcousticConfig:
    """Shape of an :class:`AcousticModel`; stored in ``config.json`` under ``"model"``."""

    n_mels: int  # feature channels per frame
    num_classes: int  # characters + 1 (the blank, class 0)
    stack: int = 3  # frames joined into one step (time subsampling factor)
    frontend: str = "stack"  # "stack" (frame stacking) or "conv" (two small 2-D convolutions)
    channels: int = 32  # conv front end: feature maps of each convolution
    cell: str = "gru"  # "lstm" or "gru"
    hidden_size: int = 160  # per direction
    num_layers: int = 2  # bidirectional layers
    dropout: float = 0.1  # between layers and before the output layer
    impl: str = "auto"  # rnnkit.nn kernels
    self_condition: float = 0.0  # weight of the first layer's CTC loss; > 0: self-conditioned

    def __post_init__(self) -> None:
        if self.frontend not in ("stack", "conv"):
            raise ConfigError(f"frontend must be 'stack' or 'conv', got {self.frontend!r}")
        if self.cell not in RECURRENT:
            raise ConfigError(f"cell must be one of {sorted(RECURRENT)}, got {self.cell!r}")
        for name in ("n_mels", "num_classes", "stack", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        check_self_condition(self.self_condition, self.num_layers)

    @classmethod
    def from_recipe(cls, recipe: Any, num_classes: int) -> AcousticConfig:
        """The model settings of a :class:`rnnkit.speech.recipe.SpeechRecipe`."""
        return cls(
            n_mels=recipe.n_mels, num_classes=num_classes, stack=recipe.stack,
            frontend=recipe.frontend, cell=recipe.cell, hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers, dropout=recipe.dropout, impl=recipe.impl,
            self_condition=recipe.self_condition,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AcousticConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AcousticModel(nn.Module):
    """Frame stacking -> bidirectional LSTM/GRU layers (packed) -> linear -> log_softmax.

    Inputs: feats, lengths
        - feats: (B, T, n_mels) padded features.
        - lengths: (B,) frames of each utterance (any order).

    Outputs: log_probs, out_lengths
        - log_probs: (T', B, num_classes), T' = ceil(T / stack); the layout CTC wants.
        - out_lengths: (B,) steps of each utterance, ceil(lengths / stack).
    """

    def __init__(self, config: AcousticConfig) -> None:
        super().__init__()
        self.config = c = config
        self.conv: nn.ModuleList | None = None
        width = c.n_mels * c.stack
        if c.frontend == "conv":
            # 3x3 convolutions over (time, mel): the first halves the mel axis, the second also
            # steps `stack` frames at a time; a filter sees the same pattern at any frequency.
            self.conv = nn.ModuleList([
                nn.Conv2d(1, c.channels, 3, stride=(1, 2), padding=1),
                nn.Conv2d(c.channels, c.channels, 3, stride=(c.stack, 2), padding=1),
            ])  # fmt: skip
            width = c.channels * (((c.n_mels + 1) // 2 + 1) // 2)  # mel axis halved twice
        layers = 1 if c.self_condition else c.num_layers  # self-conditioned: split after the first
        self.rnn = RECURRENT[c.cell](
            width, c.hidden_size, layers, batch_first=True,
            bidirectional=True, dropout=c.dropout if layers > 1 else 0.0, impl=c.impl,
        )  # fmt: skip
        self.upper: nn.Module | None = None
        if c.self_condition:
            self.upper = RECURRENT[c.cell](
                2 * c.hidden_size, c.hidden_size, c.num_layers - 1, batch_first=True,
                bidirectional=True, dropout=c.dropout if c.num_layers > 2 else 0.0, impl=c.impl,
            )  # fmt: skip
            self.condition = nn.Linear(c.num_classes, 2 * c.hidden_size)  # W_c
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(2 * c.hidden_size, c.num_classes)

    def stack_frames(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F) -> (B, ceil(T / stack), stack * F), padding the last step with zeros."""
        k = self.config.stack
        B, T, F = feats.shape
        steps = -(-T // k)
        feats = nn.functional.pad(feats, (0, 0, 0, steps * k - T))
        return feats.reshape(B, steps, k * F), -(-lengths // k)

    def subsample(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F) -> (B, ceil(T / stack), width) by the configured front end."""
        if self.conv is None:
            return self.stack_frames(feats, lengths)
        first, second = self.conv
        x = torch.relu(first(feats.unsqueeze(1)))  # (B, channels, T, F / 2)
        # Zero the frames past each utterance's end, as the padding of an utterance alone.
        inside = torch.arange(x.shape[2], device=x.device) < lengths.to(x.device).unsqueeze(1)
        x = torch.relu(second(x * inside[:, None, :, None]))  # (B, channels, T', F / 4)
        B, channels, steps, width = x.shape
        x = x.permute(0, 2, 1, 3).reshape(B, steps, channels * width)
        return x, -(-lengths // self.config.stack)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        log_probs, _, out_lengths = self.forward_all(feats, lengths)
        return log_probs, out_lengths

    def forward_all(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """:meth:`forward`, and the first layer's log-probabilities (T', B, C) of a
        self-conditioned model (None otherwise), which its training loss also scores."""
        x, out_lengths = self.subsample(feats, lengths)  # (B, T', width)
        out = self._recurrent(self.rnn, x, out_lengths)  # (T', B, 2H)
        inner = None
        if self.upper is not None:
            inner = torch.log_softmax(self.output(self.dropout(out)), dim=-1)  # (T', B, C)
            out = out + self.condition(inner.exp())  # x + W_c z
            out = self._recurrent(self.upper, self.dropout(out).transpose(0, 1), out_lengths)
        logits = self.output(self.dropout(out))  # (T', B, C)
        return torch.log_softmax(logits, dim=-1), inner, out_lengths

    @staticmethod
    def _recurrent(rnn: nn.Module, x: Tensor, lengths: Tensor) -> Tensor:
        """``rnn`` over the padded (B, T', F) ``x`` as a packed batch; padded (T', B, 2H) out."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=False, total_length=x.shape[1])
        return out
