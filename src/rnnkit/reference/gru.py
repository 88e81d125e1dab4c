"""The GRU: one step forward and backward, and the sequence functions.

Forward (torch.nn.GRU's equations; the rows of W_ih and W_hh are the blocks r, z, n)::

    gi = W_ih x_t + b_ih = [gi_r | gi_z | gi_n]            (B, 3H)
    gh = W_hh h_{t-1} + b_hh = [gh_r | gh_z | gh_n]        (B, 3H)
    r_t = sigmoid(gi_r + gh_r)          reset gate
    z_t = sigmoid(gi_z + gh_z)          update gate
    n_t = tanh(gi_n + r_t * gh_n)       candidate; the reset gate scales W_hn h + b_hn
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

This is the variant of Cho et al. (2014) as torch and cuDNN compute it: ``r_t`` multiplies
``W_hn h_{t-1} + b_hn`` after the matrix product, not ``h_{t-1}`` before it.

Backward, given ``dh_t`` (from the loss at step t plus from step t+1)::

    dn_t = dh_t * (1 - z_t)                 dz_t = dh_t * (h_{t-1} - n_t)
    da_n = dn_t * (1 - n_t^2)               pre-activation of n_t
    dr_t = da_n * gh_n
    da_r = dr_t * r_t (1 - r_t)             da_z = dz_t * z_t (1 - z_t)

The input side and the hidden side now receive different gradients, because ``r_t`` sits between
``gh_n`` and ``n_t``::

    d_gi = [da_r | da_z | da_n]             d_gh = [da_r | da_z | da_n * r_t]
    dW_ih += d_gi^T x_t     db_ih += sum_b d_gi     dx_t = d_gi W_ih
    dW_hh += d_gh^T h_{t-1} db_hh += sum_b d_gh
    dh_{t-1} = dh_t * z_t + d_gh W_hh       the direct path through z_t plus the gates' paths
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnkit.reference.lstm import sigmoid
from rnnkit.reference.params import LayerWeights
from rnnkit.reference.sequence import (
    CellFunctions,
    ForwardCache,
    State,
    affine_backward,
    affine_forward,
    sequence_backward,
    sequence_forward,
)


def _step_forward(w: LayerWeights, x: np.ndarray, state: State, options: dict) -> tuple:
    (h_prev,) = state
    gi, gh = affine_forward(w, x, h_prev)
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)  # each (B, H)
    gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
    r = sigmoid(gi_r + gh_r)
    z = sigmoid(gi_z + gh_z)
    n = np.tanh(gi_n + r * gh_n)
    h = (1.0 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, gh_n)


def _step_backward(
    w: LayerWeights, d_state: State, cache: tuple, dw: LayerWeights, options: dict
) -> tuple[np.ndarray, State]:
    x, h_prev, r, z, n, gh_n = cache
    (dh,) = d_state
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    da_n = dn * (1.0 - n * n)
    da_r = da_n * gh_n * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    d_gi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    d_gh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
    dx, dh_prev = affine_backward(w, dw, d_gi, d_gh, x, h_prev)
    return dx, (dh_prev + dh * z,)


GRU_CELL = CellFunctions("gru", _step_forward, _step_backward)


def gru_forward(
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    state: np.ndarray | None = None,
    *,
    num_layers: int = 1,
    bias: bool = True,
) -> tuple[np.ndarray, np.ndarray, ForwardCache]:
    """Run a (multi-layer) GRU over a sequence, as ``torch.nn.GRU`` does.

    Args:
        params: ``weight_ih_l{k}`` (3H, I or H), ``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}``,
            ``bias_hh_l{k}`` (3H,), rows in the gate order r, z, n.
        x: inputs, (T, B, input_size).
        state: initial hidden state h_0, (num_layers, B, H); None means zeros.
        num_layers: number of stacked layers.
        bias: whether ``params`` has the bias vectors.

    Returns:
        ``(outputs, h_T, cache)``: the top layer's h_t, (T, B, H); the last hidden state of every
        layer, (num_layers, B, H); and what :func:`gru_backward` needs.
    """
    return sequence_forward(
        GRU_CELL, params, x, state, num_layers=num_layers, bias=bias, options={}
    )


def gru_backward(
    params: Mapping[str, np.ndarray],
    d_outputs: np.ndarray | None,
    d_final_state: np.ndarray | None,
    cache: ForwardCache,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Backpropagation through time for :func:`gru_forward`.

    Args:
        params: the parameters the forward pass used.
        d_outputs: dL/d outputs, (T, B, H); None means zeros.
        d_final_state: dL/d h_T, (num_layers, B, H); None means zeros.
        cache: the third value returned by :func:`gru_forward`.

    Returns:
        ``(d_params, d_x, d_h0)``.
    """
    return sequence_backward(params, d_outputs, d_final_state, cache, cell_name="gru")
