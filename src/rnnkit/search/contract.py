"""The decoder contract and what a search returns (see :mod:`rnnkit.search`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Decoder(Protocol):
    """What the search functions need from a model (see the module docstring)."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed ``tokens`` (N,) and return ``(log_probs (N, V), new_state)``."""
        ...

    def reorder(self, state: Any, index: Tensor) -> Any:
        """Return the state whose row ``i`` is row ``index[i]`` of ``state``."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sequence."""

    tokens: list[int]  # generated tokens, without bos and eos
    log_prob: float  # summed log-probability of the tokens (and of eos when it ended with one)
    score: float  # log_prob after the length penalty (equal to log_prob for greedy and sample)
