"""Truncated backpropagation through time and gradient-norm clipping.

A long stream is cut into windows of ``k`` steps. The forward state is carried from one window to
the next, so the model sees the whole past; the gradient is stopped at each window's start, so
backward costs ``O(k)`` per window and each update uses only the window-local loss (Williams & Peng
1990; Sutskever 2013 calls this TBPTT(k, k))::

    stream:   c_0 c_1 ... c_{k-1} | c_k ... c_{2k-1} | c_2k ...
    window 0: inputs c_0..c_{k-1},   targets c_1..c_k,     state from zeros
    window 1: inputs c_k..c_{2k-1},  targets c_{k+1}..c_2k, state = final state of window 0

Gradient-norm clipping (Pascanu et al. 2013) rescales all gradients together when their global
L2 norm exceeds ``max_norm``, bounding the step an exploding gradient can cause::

    n = sqrt(sum_p ||g_p||^2)       if n > max_norm:  g_p <- g_p * max_norm / (n + 1e-6)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

from rnnkit.reference.charmodel import CharModel, State, window_loss


class WindowResult(NamedTuple):
    """Loss and gradients of one truncated-BPTT window."""

    loss: float  # cross-entropy summed over the window's steps, averaged over the batch
    steps: int  # steps in the window: k, or fewer at the end of the streams
    grads: dict[str, np.ndarray]  # gradient of that loss, stopped at the window's start
    state: State  # the state after the window, carried into the next one


def batch_streams(tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut ``tokens`` (N,) into ``batch_size`` contiguous streams side by side: (N // B, B)."""
    length = len(tokens) // batch_size
    if length < 2:
        raise ValueError(
            f"{len(tokens)} tokens are too few for batch_size={batch_size}; need at least "
            f"{2 * batch_size}"
        )
    return np.asarray(tokens[: length * batch_size]).reshape(batch_size, length).T


def windows(streams: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, targets)`` windows of up to ``k`` steps over ``streams`` (N, B).

    The targets are the inputs shifted one step ahead; the last window may be shorter than ``k``.
    """
    if k < 1:
        raise ValueError(f"window length k must be at least 1, got {k}")
    for start in range(0, len(streams) - 1, k):
        stop = min(start + k, len(streams) - 1)
        yield streams[start:stop], streams[start + 1 : stop + 1]


def truncated_bptt(
    model: CharModel, streams: np.ndarray, k: int, state: State = None
) -> Iterator[WindowResult]:
    """Loss and gradients window by window, the state carried and the gradient cut between them.

    The model's parameters are read when each window is computed, so a caller may update them in
    place between windows, as training does.
    """
    for inputs, targets in windows(streams, k):
        loss, grads, state = window_loss(model, inputs, targets, state)
        yield WindowResult(loss, len(inputs), grads, state)


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Rescale ``grads`` in place so their global L2 norm is at most ``max_norm``.

    Returns:
        The norm before clipping (as ``torch.nn.utils.clip_grad_norm_`` does).
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= scale
    return total
