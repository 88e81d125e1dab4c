"""Loss over time: an output projection and softmax cross-entropy at every step.

At each step the top layer's hidden state is projected to scores over the vocabulary and the loss
is the negative log-probability of the target; the total error is the sum over steps (and, for a
batch of independent streams, the mean over the batch)::

    y_t = W_out h_t + b_out                  (B, V) scores
    p_t = softmax(y_t)
    L   = (1/B) sum_b sum_t  -log p_t[b, target_t[b]]

Backward: the gradient of softmax cross-entropy with respect to the scores is the probabilities
minus the one-hot target, and the output weights are shared by every step, so their gradient is the
sum of the per-step contributions::

    dy_t    = (p_t - onehot(target_t)) / B
    dW_out  = sum_t dy_t^T h_t               db_out = sum_t sum_b dy_t
    dh_t    = dy_t W_out                     enters BPTT as d_outputs[t]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class OutputCache(NamedTuple):
    """What :func:`output_loss_backward` needs."""

    hidden: np.ndarray  # (T, B, H) the hidden states that were projected
    probs: np.ndarray  # (T, B, V) softmax of the scores
    targets: np.ndarray  # (T, B) target indices
    weight_out: np.ndarray  # (V, H)


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """``log softmax`` over the last axis, shifted by the maximum so ``exp`` cannot overflow."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def output_loss_forward(
    weight_out: np.ndarray, bias_out: np.ndarray, hidden: np.ndarray, targets: np.ndarray
) -> tuple[float, OutputCache]:
    """Project ``hidden`` (T, B, H) to scores and sum the cross-entropy over steps.

    Returns:
        ``(loss, cache)``: the sum over steps of the cross-entropy, averaged over the batch, and
        what :func:`output_loss_backward` needs.
    """
    targets = np.asarray(targets)
    vocab_size = weight_out.shape[0]
    if targets.shape != hidden.shape[:2]:
        raise ValueError(f"targets has shape {targets.shape}; expected {hidden.shape[:2]} = (T, B)")
    if targets.size and (targets.min() < 0 or targets.max() >= vocab_size):
        raise ValueError(
            f"targets must be indices in [0, {vocab_size}); got values from {targets.min()} "
            f"to {targets.max()}"
        )
    scores = hidden @ weight_out.T + bias_out  # (T, B, V)
    log_probs = log_softmax(scores)
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)  # (T, B, 1)
    loss = -picked.sum() / hidden.shape[1]
    return float(loss), OutputCache(hidden, np.exp(log_probs), targets, weight_out)


def output_loss_backward(cache: OutputCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`output_loss_forward`'s loss: ``(d_weight_out, d_bias_out, d_hidden)``."""
    batch = cache.hidden.shape[1]
    d_scores = cache.probs.copy()
    np.put_along_axis(
        d_scores,
        cache.targets[..., None],
        np.take_along_axis(d_scores, cache.targets[..., None], axis=-1) - 1.0,
        axis=-1,
    )
    d_scores /= batch  # (T, B, V)
    d_weight_out = np.einsum("tbv,tbh->vh", d_scores, cache.hidden)  # sum over steps and batch
    d_bias_out = d_scores.sum(axis=(0, 1))
    d_hidden = d_scores @ cache.weight_out  # (T, B, H)
    return d_weight_out, d_bias_out, d_hidden
