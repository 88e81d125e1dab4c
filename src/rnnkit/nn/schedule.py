"""The time schedule of one layer-direction: which rows of a packed batch are active at each step.

A batch of sequences is stored *packed*, as torch's ``PackedSequence`` does: time step ``t``
owns the rows ``starts[t] : starts[t] + sizes[t]`` of one ``(N, features)`` matrix, ``sizes``
never increase, and the first ``sizes[t]`` sequences of the batch are the ones still running at
step ``t``. A padded batch of ``T`` steps and batch ``B`` is the special case ``sizes = [B] * T``
(its data is simply ``x.reshape(T * B, features)``).

The kernels keep two matrices per recurrent state: ``prev`` (the state each row *reads*, i.e.
``h_{t-1}``) and ``out`` (the state each row *writes*, ``h_t``). Keeping ``prev`` as its own
``(N, H)`` matrix is what lets backward form the recurrent weight gradient as one matrix product
over all rows. When every step has the full batch, ``prev`` and ``out`` are two overlapping views of
one buffer (shifted by one step), so no copy is needed; otherwise :meth:`Schedule.carry` copies each
new state into the next step's rows of ``prev``.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Schedule:
    """Rows and processing order of a packed batch for one direction.

    Args:
        sizes: active batch size at each time step (non-increasing, first entry = batch size).
        reverse: process time steps from last to first (the backward direction of a
            bidirectional layer).
    """

    def __init__(self, sizes: list[int], reverse: bool) -> None:
        if not sizes or sizes[0] <= 0 or any(a < b for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"batch sizes must be positive and non-increasing, got {sizes}")
        self.sizes = list(sizes)
        self.reverse = reverse
        self.starts = [0] * len(sizes)
        for t in range(1, len(sizes)):
            self.starts[t] = self.starts[t - 1] + sizes[t - 1]
        self.total = self.starts[-1] + sizes[-1]
        self.batch = sizes[0]
        self.uniform = sizes[-1] == sizes[0]
        steps = range(len(sizes))
        self.order = list(reversed(steps)) if reverse else list(steps)

    def rows(self, t: int) -> slice:
        """The rows of the packed matrix that belong to time step ``t``."""
        return slice(self.starts[t], self.starts[t] + self.sizes[t])

    def state_buffers(self, initial: Tensor) -> tuple[Tensor, Tensor]:
        """``(prev, out)``: two ``(N, width)`` matrices; ``prev`` holds ``initial`` where read.

        ``initial`` is the ``(B, width)`` initial state.
        """
        n, b = self.total, self.batch
        width = initial.shape[1]
        if self.uniform:
            buf = initial.new_empty(n + b, width)
            if self.reverse:  # step t reads step t+1's output; the last step reads initial
                buf[n:] = initial
                return buf[b:], buf[:n]
            buf[:b] = initial  # step t reads step t-1's output; the first step reads initial
            return buf[:n], buf[b:]
        prev = initial.new_empty(n, width)
        out = initial.new_empty(n, width)
        first = self.order[0]
        prev[self.rows(first)] = initial[: self.sizes[first]]
        return prev, out

    def carry(self, t: int, prev: Tensor, out: Tensor, initial: Tensor) -> None:
        """After step ``t``, copy its new state into the ``prev`` rows of the next step."""
        if self.uniform:
            return  # prev and out share storage
        sizes = self.sizes
        if not self.reverse:
            if t + 1 < len(sizes):
                nxt = self.starts[t + 1]
                prev[nxt : nxt + sizes[t + 1]] = out[self.starts[t] : self.starts[t] + sizes[t + 1]]
        elif t > 0:
            nxt = self.starts[t - 1]
            prev[nxt : nxt + sizes[t]] = out[self.rows(t)]
            # Sequences that start (in reversed time) at step t-1 begin from the initial state.
            prev[nxt + sizes[t] : nxt + sizes[t - 1]] = initial[sizes[t] : sizes[t - 1]]

    def final_state(self, out: Tensor) -> Tensor:
        """The ``(B, width)`` state after each sequence's last processed step."""
        if self.reverse:
            return out[self.rows(0)].clone()  # every sequence ends (in reversed time) at step 0
        if self.uniform:
            return out[self.rows(len(self.sizes) - 1)].clone()
        final = out.new_empty(self.batch, out.shape[1])
        sizes = self.sizes + [0]
        for t in range(len(self.sizes)):
            if sizes[t + 1] < sizes[t]:  # sequences sizes[t+1]..sizes[t] end at step t
                final[sizes[t + 1] : sizes[t]] = out[
                    self.starts[t] + sizes[t + 1] : self.starts[t] + sizes[t]
                ]
        return final


def grad_or_zeros(grad: Tensor | None, like: Tensor) -> Tensor:
    """A gradient that autograd left undefined, as zeros of the right shape."""
    return torch.zeros_like(like) if grad is None else grad
