"""Constraints as processors: small callables applied to every step's log-probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class Processor(Protocol):
    """Reshapes one step's log-probabilities (see the module docstring)."""

    needs_history: bool  # whether it reads ``history`` (the search keeps it only then)

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor: ...


def _fill(log_probs: Tensor, tokens: Sequence[int]) -> Tensor:
    index = torch.tensor(list(tokens), dtype=torch.long, device=log_probs.device)
    return log_probs.index_fill(1, index, -math.inf)


@dataclass(frozen=True)
class ban_tokens:  # lower case: a processor reads as a call, ban_tokens([unk])
    """Never produce ``tokens``: the model's distribution restricted to the other tokens."""

    tokens: tuple[int, ...]
    needs_history = False

    def __init__(self, tokens: Sequence[int]) -> None:
        object.__setattr__(self, "tokens", tuple(int(t) for t in tokens))

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        if not self.tokens:
            return log_probs
        return torch.log_softmax(_fill(log_probs, self.tokens), dim=-1)


@dataclass(frozen=True)
class min_length:
    """No ``eos`` before ``length`` tokens have been generated."""

    eos: int
    length: int
    needs_history = False

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        return _fill(log_probs, [self.eos]) if step < self.length else log_probs


@dataclass(frozen=True)
class no_repeat_ngram:
    """No n-gram of ``size`` tokens occurs twice in a hypothesis.

    A token is banned for a row when the row's last ``size - 1`` tokens followed by it already
    occur in the row.
    """

    size: int
    needs_history = True

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        n = self.size
        length = 0 if history is None else history.size(1)
        if n <= 0 or length < n:
            return log_probs
        windows = history.unfold(1, n, 1)  # (N, t-n+1, n) every n-gram of each row
        suffix = history[:, length - n + 1 :]  # (N, n-1) the row's last n-1 tokens
        match = (windows[:, :, :-1] == suffix[:, None, :]).all(dim=2)  # (N, t-n+1)
        banned = torch.zeros(log_probs.shape, device=log_probs.device)
        banned.scatter_add_(1, windows[:, :, -1], match.to(banned.dtype))
        return log_probs.masked_fill(banned > 0, -math.inf)


def constraints(
    processors: Sequence[Processor], eos: int | None, min_len: int, ngram: int = 0
) -> list[Processor]:
    """``processors`` followed by the length and n-gram constraints the arguments ask for."""
    chain = list(processors)
    if eos is not None and min_len > 0:
        chain.append(min_length(eos, min_len))
    if ngram > 0:
        chain.append(no_repeat_ngram(ngram))
    return chain


def process(
    chain: Sequence[Processor], log_probs: Tensor, history: Tensor | None, step: int
) -> Tensor:
    for processor in chain:
        log_probs = processor(log_probs, history, step)
    return log_probs
