"""The vanilla (Elman) RNN: one step forward and backward, and the sequence functions.

Forward, for each layer and time step (torch.nn.RNN's equation; ``f`` is tanh or relu)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (B, H)
    h_t = f(a_t)

Backward, given ``dh_t = dL/dh_t`` (from the loss at step t plus from step t+1)::

    da_t      = dh_t * f'(a_t)        tanh: f' = 1 - h_t^2      relu: f' = [a_t > 0]
    dW_ih    += da_t^T x_t            db_ih += sum_b da_t
    dW_hh    += da_t^T h_{t-1}        db_hh += sum_b da_t
    dx_t      = da_t W_ih
    dh_{t-1}  = da_t W_hh             (flows on to step t-1)

Repeated multiplication by ``W_hh^T diag(f')`` on the way back is why gradients vanish or explode
over long spans (Bengio et al. 1994; Pascanu et al. 2013), which the LSTM and GRU gates address and
gradient clipping bounds.
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

NONLINEARITIES = ("tanh", "relu")


def _step_forward(w: LayerWeights, x: np.ndarray, state: State, options: dict) -> tuple:
    (h_prev,) = state
    gi, gh = affine_forward(w, x, h_prev)
    a = gi + gh  # (B, H)
    h = np.tanh(a) if options["nonlinearity"] == "tanh" else np.maximum(a, 0.0)
    return (h,), (x, h_prev, a, h)


def _step_backward(
    w: LayerWeights, d_state: State, cache: tuple, dw: LayerWeights, options: dict
) -> tuple[np.ndarray, State]:
    x, h_prev, a, h = cache
    (dh,) = d_state
    if options["nonlinearity"] == "tanh":
        da = dh * (1.0 - h * h)
    else:
        da = dh * (a > 0)
    # a = gi + gh, so both affine maps receive the same gradient.
    dx, dh_prev = affine_backward(w, dw, da, da, x, h_prev)
    return dx, (dh_prev,)


RNN_CELL = CellFunctions("rnn", _step_forward, _step_backward)


def rnn_forward(
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    state: np.ndarray | None = None,
    *,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    bias: bool = True,
) -> tuple[np.ndarray, np.ndarray, ForwardCache]:
    """Run a (multi-layer) vanilla RNN over a sequence, as ``torch.nn.RNN`` does.

    Args:
        params: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
            with torch.nn.RNN's shapes.
        x: inputs, (T, B, input_size).
        state: initial hidden state h_0, (num_layers, B, H); None means zeros.
        num_layers: number of stacked layers.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: whether ``params`` has the bias vectors.

    Returns:
        ``(outputs, h_T, cache)``: the top layer's h_t for every t, (T, B, H); the last hidden state
        of every layer, (num_layers, B, H); and what :func:`rnn_backward` needs.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    options = {"nonlinearity": nonlinearity}
    return sequence_forward(
        RNN_CELL, params, x, state, num_layers=num_layers, bias=bias, options=options
    )


def rnn_backward(
    params: Mapping[str, np.ndarray],
    d_outputs: np.ndarray | None,
    d_final_state: np.ndarray | None,
    cache: ForwardCache,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Backpropagation through time for :func:`rnn_forward`.

    Args:
        params: the parameters the forward pass used.
        d_outputs: dL/d outputs, (T, B, H); None means zeros.
        d_final_state: dL/d h_T, (num_layers, B, H); None means zeros.
        cache: the third value returned by :func:`rnn_forward`.

    Returns:
        ``(d_params, d_x, d_h0)``: gradients keyed like ``params``; (T, B, input_size);
        (num_layers, B, H).
    """
    return sequence_backward(params, d_outputs, d_final_state, cache, cell_name="rnn")
