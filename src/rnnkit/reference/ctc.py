"""Connectionist temporal classification in NumPy: the forward-backward recursions in log space.

One utterance at a time, written to be read beside the equations of ``docs/ctc.md`` (Graves et
al. 2006, "Connectionist Temporal Classification"; Graves 2012, ch. 7). The batched PyTorch and C
versions (:mod:`rnnkit.nn.ctc`) are tested against this file and against
``torch.nn.functional.ctc_loss``.

Notation (as in docs/ctc.md):

- ``log_probs`` (T, C): log y_t(k), the network's log-probability of class k at frame t;
- ``labels`` (U,): the target, classes other than ``blank``;
- ``ext`` (S = 2U + 1,): the target with a blank before, between and after its labels;
- ``alpha[t, s]``: log of the total probability of all paths through frames 0..t that end in
  ``ext[s]`` at frame t and have emitted ``ext[:s+1]`` so far;
- ``beta[t, s]``: log of the total probability of the paths through frames t..T-1 that start in
  ``ext[s]`` at frame t and emit ``ext[s:]``.

Both include y_t(ext[s]), so for every t:
``p(labels | x) = sum_s alpha[t, s] beta[t, s] / y_t(ext[s])``.

Example::

    import numpy as np
    from rnnkit.reference.ctc import ctc_loss, ctc_grad

    logits = np.random.randn(10, 5)
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    nll = ctc_loss(log_probs, [1, 2, 2])          # -log p(labels | x)
    grad = ctc_grad(log_probs, [1, 2, 2])         # d nll / d log_probs, shape (10, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEG_INF = -np.inf


def extend(labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """The target with blanks around every label: ``[b, l1, b, l2, ..., b]`` (length 2U + 1)."""
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = np.asarray(labels, dtype=np.int64)
    return ext


def can_skip(ext: np.ndarray, blank: int) -> np.ndarray:
    """``skip[s]``: a path may jump from ``ext[s-2]`` straight to ``ext[s]`` (a label that differs
    from the label before it; a repeated label needs a blank between its two copies)."""
    skip = np.zeros(len(ext), dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return skip


def forward(log_probs: np.ndarray, labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """``alpha`` (T, S): the forward variables in log space (equations (3)-(5) of docs/ctc.md)."""
    T = log_probs.shape[0]
    ext = extend(labels, blank)
    skip = can_skip(ext, blank)
    S = len(ext)
    alpha = np.full((T, S), NEG_INF)
    alpha[0, 0] = log_probs[0, ext[0]]
    if S > 1:
        alpha[0, 1] = log_probs[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            total = alpha[t - 1, s]
            if s >= 1:
                total = np.logaddexp(total, alpha[t - 1, s - 1])
            if skip[s]:
                total = np.logaddexp(total, alpha[t - 1, s - 2])
            alpha[t, s] = total + log_probs[t, ext[s]]
    return alpha


def backward(log_probs: np.ndarray, labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """``beta`` (T, S): the backward variables in log space (equations (6)-(8) of docs/ctc.md)."""
    T = log_probs.shape[0]
    ext = extend(labels, blank)
    skip = can_skip(ext, blank)
    S = len(ext)
    beta = np.full((T, S), NEG_INF)
    beta[T - 1, S - 1] = log_probs[T - 1, ext[S - 1]]
    if S > 1:
        beta[T - 1, S - 2] = log_probs[T - 1, ext[S - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(S):
            total = beta[t + 1, s]
            if s + 1 < S:
                total = np.logaddexp(total, beta[t + 1, s + 1])
            if s + 2 < S and skip[s + 2]:
                total = np.logaddexp(total, beta[t + 1, s + 2])
            beta[t, s] = total + log_probs[t, ext[s]]
    return beta


def ctc_loss(log_probs: np.ndarray, labels: Sequence[int], blank: int = 0) -> float:
    """``-log p(labels | x)``: the negative log-likelihood (inf when no alignment fits)."""
    alpha = forward(np.asarray(log_probs, dtype=np.float64), labels, blank)
    return float(-np.logaddexp.reduce(alpha[-1, -2:]))


def ctc_grad(log_probs: np.ndarray, labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """``d nll / d log_probs`` (T, C) (equation (10) of docs/ctc.md): minus the posterior
    probability that frame t emits class k, summed over the positions s with ``ext[s] == k``.
    Zero where no alignment fits."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    ext = extend(labels, blank)
    alpha = forward(log_probs, labels, blank)
    beta = backward(log_probs, labels, blank)
    log_p = np.logaddexp.reduce(alpha[-1, -2:])
    grad = np.zeros_like(log_probs)
    if not np.isfinite(log_p):
        return grad
    # alpha + beta counts y_t(ext[s]) twice; remove it once (equation (9)).
    occupancy = alpha + beta - log_probs[:, ext]  # (T, S): log of the paths through (t, s)
    for k in np.unique(ext):
        grad[:, k] = -np.exp(np.logaddexp.reduce(occupancy[:, ext == k], axis=1) - log_p)
    return grad


def brute_force_loss(log_probs: np.ndarray, labels: Sequence[int], blank: int = 0) -> float:
    """``-log p(labels | x)`` by enumerating all C^T paths and collapsing each one (tiny cases
    only: the oracle of the recursions)."""
    from itertools import product

    T, C = log_probs.shape
    target = tuple(labels)
    total = NEG_INF
    for path in product(range(C), repeat=T):
        if collapse(path, blank) == target:
            total = np.logaddexp(total, sum(log_probs[t, k] for t, k in enumerate(path)))
    return float(-total)


def collapse(path: Sequence[int], blank: int = 0) -> tuple[int, ...]:
    """The CTC map B: merge repeated classes, then drop blanks (``a a - a b`` -> ``a a b``)."""
    out = []
    previous = None
    for k in path:
        if k != previous and k != blank:
            out.append(int(k))
        previous = k
    return tuple(out)
