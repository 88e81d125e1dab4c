"""The LSTM: one step forward and backward, and the sequence functions.

Forward (torch.nn.LSTM's equations; the rows of W_ih and W_hh are the blocks i, f, g, o)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh         (B, 4H) = [a_i | a_f | a_g | a_o]
    i_t = sigmoid(a_i)          input gate
    f_t = sigmoid(a_f)          forget gate
    g_t = tanh(a_g)             candidate cell
    o_t = sigmoid(a_o)          output gate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Backward, given ``dh_t`` and ``dc_t`` (each the sum of what the loss and step t+1 send back)::

    do_t      = dh_t * tanh(c_t)
    dc_t     += dh_t * o_t * (1 - tanh(c_t)^2)      h_t depends on c_t too
    di_t      = dc_t * g_t
    dg_t      = dc_t * i_t
    df_t      = dc_t * c_{t-1}
    dc_{t-1}  = dc_t * f_t                          the cell's "constant error carousel"

and through the nonlinearities (sigmoid' = s (1 - s), tanh' = 1 - tanh^2)::

    da_i = di_t * i_t (1 - i_t)      da_f = df_t * f_t (1 - f_t)
    da_g = dg_t * (1 - g_t^2)        da_o = do_t * o_t (1 - o_t)

then, with ``da_t = [da_i | da_f | da_g | da_o]``, the same affine backward as the RNN::

    dW_ih += da_t^T x_t    dW_hh += da_t^T h_{t-1}    db_ih, db_hh += sum_b da_t
    dx_t = da_t W_ih       dh_{t-1} = da_t W_hh

Because ``dc_{t-1} = dc_t * f_t`` is elementwise (no matrix product), gradients can travel many
steps when the forget gate stays open (Hochreiter & Schmidhuber 1997; Gers et al. 2000).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

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


def sigmoid(a: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow for large negative inputs."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _step_forward(w: LayerWeights, x: np.ndarray, state: State, options: dict) -> tuple:
    h_prev, c_prev = state
    gi, gh = affine_forward(w, x, h_prev)
    a_i, a_f, a_g, a_o = np.split(gi + gh, 4, axis=1)  # each (B, H)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), (x, h_prev, c_prev, i, f, g, o, tanh_c)


def _step_backward(
    w: LayerWeights, d_state: State, cache: tuple, dw: LayerWeights, options: dict
) -> tuple[np.ndarray, State]:
    x, h_prev, c_prev, i, f, g, o, tanh_c = cache
    dh, dc = d_state
    do = dh * tanh_c
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    di, dg, df = dc * g, dc * i, dc * c_prev
    dc_prev = dc * f
    da = np.concatenate(
        [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1
    )  # (B, 4H)
    dx, dh_prev = affine_backward(w, dw, da, da, x, h_prev)
    return dx, (dh_prev, dc_prev)


LSTM_CELL = CellFunctions("lstm", _step_forward, _step_backward)


def lstm_forward(
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    state: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    num_layers: int = 1,
    bias: bool = True,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], ForwardCache]:
    """Run a (multi-layer) LSTM over a sequence, as ``torch.nn.LSTM`` does.

    Args:
        params: ``weight_ih_l{k}`` (4H, I or H), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``,
            ``bias_hh_l{k}`` (4H,), rows in the gate order i, f, g, o.
        x: inputs, (T, B, input_size).
        state: ``(h_0, c_0)``, each (num_layers, B, H); None means zeros.
        num_layers: number of stacked layers.
        bias: whether ``params`` has the bias vectors.

    Returns:
        ``(outputs, (h_T, c_T), cache)``: the top layer's h_t, (T, B, H); the last hidden and cell
        states of every layer, each (num_layers, B, H); and what :func:`lstm_backward` needs.
    """
    return sequence_forward(
        LSTM_CELL, params, x, state, num_layers=num_layers, bias=bias, options={}
    )


def lstm_backward(
    params: Mapping[str, np.ndarray],
    d_outputs: np.ndarray | None,
    d_final_state: tuple[np.ndarray, np.ndarray] | None,
    cache: ForwardCache,
) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        params: the parameters the forward pass used.
        d_outputs: dL/d outputs, (T, B, H); None means zeros.
        d_final_state: ``(dL/dh_T, dL/dc_T)``, each (num_layers, B, H); None means zeros.
        cache: the third value returned by :func:`lstm_forward`.

    Returns:
        ``(d_params, d_x, (d_h0, d_c0))``.
    """
    return sequence_backward(params, d_outputs, d_final_state, cache, cell_name="lstm")
