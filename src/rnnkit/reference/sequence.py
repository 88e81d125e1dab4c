"""Drive a one-step cell over time and layers, forward and backward (BPTT).

Each cell module (``rnn``, ``lstm``, ``gru``) writes one time step: ``step_forward`` maps
``(x_t, state_{t-1})`` to ``state_t`` and keeps what its backward needs; ``step_backward`` takes
the gradient of the loss with respect to ``state_t`` and returns the gradients with respect to
``x_t`` and ``state_{t-1}``, adding the step's contribution to the weight gradients. This module
is the loop.

Forward, layer by layer (layer k's outputs ``h^k_1..h^k_T`` are layer k+1's inputs)::

    state^k_t = step(x^k_t, state^k_{t-1})        t = 1..T,  x^0_t = x_t,  x^{k+1}_t = h^k_t

Backward through time runs the same loop in reverse. The output ``h^k_t`` is used twice: by the loss
(through layer k+1 or ``d_outputs``) and by step t+1, so its gradient is the sum of both::

    dL/dh^k_t = dL/dx^{k+1}_t (or d_outputs[t] on the top layer) + (gradient from step t+1)

and the weights are shared by every step, so their gradient is the sum over steps::

    dL/dW = sum_t  dL/dW |_step t

The gradient flowing into ``state^k_T`` from outside is ``d_final_state[k]``; what flows out of
step 1 is the gradient with respect to the initial state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rnnkit.reference.params import (
    LayerWeights,
    check_params,
    check_state,
    layer_weights,
    pack_state,
)

State = tuple[np.ndarray, ...]


class CellFunctions(NamedTuple):
    """One cell type: its name and its two step functions."""

    name: str  # "rnn", "lstm" or "gru"
    # (weights, x_t, state_{t-1}, options) -> (state_t, step cache)
    step_forward: Callable[[LayerWeights, np.ndarray, State, dict], tuple[State, Any]]
    # (weights, d state_t, step cache, weight-gradient accumulators, options)
    #   -> (d x_t, d state_{t-1})
    step_backward: Callable[
        [LayerWeights, State, Any, LayerWeights, dict], tuple[np.ndarray, State]
    ]


@dataclass
class ForwardCache:
    """What a forward pass keeps for its backward pass."""

    cell: CellFunctions  # the cell that ran
    num_layers: int  # number of stacked layers
    bias: bool  # whether the network has bias vectors
    options: dict  # cell options, e.g. {"nonlinearity": "tanh"}
    input_size: int  # features of x
    x_shape: tuple[int, int, int]  # (T, B, input_size)
    hidden_size: int  # H
    dtype: np.dtype  # dtype of the outputs and gradients
    steps: list[list[Any]]  # steps[layer][t]: the step cache of layer `layer` at time t


def sequence_forward(
    cell: CellFunctions,
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    state: np.ndarray | State | None,
    *,
    num_layers: int,
    bias: bool,
    options: dict,
) -> tuple[np.ndarray, np.ndarray | State, ForwardCache]:
    """Run ``cell`` over ``x`` (T, B, input_size) through ``num_layers`` layers."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(
            f"x has shape {x.shape}; expected (T, B, input_size) with T >= 1 (time first)"
        )
    steps_t, batch, input_size = x.shape
    hidden_size = check_params(params, cell.name, input_size, num_layers=num_layers, bias=bias)
    dtype = np.result_type(x, *params.values())
    initial = check_state(state, cell.name, (num_layers, batch, hidden_size), dtype)

    layer_input = x  # (T, B, I) on layer 0, (T, B, H) above
    finals: list[State] = []
    caches: list[list[Any]] = []
    for k in range(num_layers):
        w = layer_weights(params, k, bias=bias)
        s = tuple(part[k] for part in initial)  # each (B, H)
        outputs, step_caches = [], []
        for t in range(steps_t):
            s, step_cache = cell.step_forward(w, layer_input[t], s, options)
            outputs.append(s[0])  # h_t is the output of the step
            step_caches.append(step_cache)
        finals.append(s)
        caches.append(step_caches)
        layer_input = np.stack(outputs)  # (T, B, H)

    final = tuple(np.stack([f[i] for f in finals]) for i in range(len(initial)))
    cache = ForwardCache(
        cell, num_layers, bias, dict(options), input_size, x.shape, hidden_size, dtype, caches
    )
    return layer_input, pack_state(cell.name, final), cache


def sequence_backward(
    params: Mapping[str, np.ndarray],
    d_outputs: np.ndarray | None,
    d_final_state: np.ndarray | State | None,
    cache: ForwardCache,
    *,
    cell_name: str,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | State]:
    """Backpropagation through time for the forward pass recorded in ``cache``."""
    if not isinstance(cache, ForwardCache):
        raise TypeError(f"cache must be the third value returned by {cell_name}_forward")
    if cache.cell.name != cell_name:
        raise ValueError(
            f"cache comes from {cache.cell.name}_forward; pass it to {cache.cell.name}_backward"
        )
    steps_t, batch, _ = cache.x_shape
    num_layers, hidden = cache.num_layers, cache.hidden_size
    check_params(params, cell_name, cache.input_size, num_layers=num_layers, bias=cache.bias)
    out_shape = (steps_t, batch, hidden)
    dtype = cache.dtype
    if d_outputs is None:
        d_outputs = np.zeros(out_shape, dtype=dtype)
    d_outputs = np.asarray(d_outputs)
    if d_outputs.shape != out_shape:
        raise ValueError(
            f"d_outputs has shape {d_outputs.shape}; expected {out_shape} = (T, B, hidden_size), "
            "the shape of the outputs"
        )
    d_final = check_state(
        d_final_state, cell_name, (num_layers, batch, hidden), dtype, name="d_final_state"
    )

    d_params: dict[str, np.ndarray] = {}
    d_initial = [np.zeros((num_layers, batch, hidden), dtype=dtype) for _ in d_final]
    d_layer_out = d_outputs  # dL/dh^k_t from above, (T, B, H)
    for k in reversed(range(num_layers)):
        w = layer_weights(params, k, bias=cache.bias)
        dw = LayerWeights(*(np.zeros_like(a, dtype=dtype) for a in w))
        d_layer_in = np.zeros((steps_t, batch, w.weight_ih.shape[1]), dtype=dtype)
        d_state = tuple(part[k] for part in d_final)
        for t in reversed(range(steps_t)):
            # h_t feeds the layer above (or the loss) and step t+1: the two gradients add.
            d_state = (d_state[0] + d_layer_out[t], *d_state[1:])
            d_layer_in[t], d_state = cache.cell.step_backward(
                w, d_state, cache.steps[k][t], dw, cache.options
            )
        for i, part in enumerate(d_state):
            d_initial[i][k] = part
        d_params[f"weight_ih_l{k}"] = dw.weight_ih
        d_params[f"weight_hh_l{k}"] = dw.weight_hh
        if cache.bias:
            d_params[f"bias_ih_l{k}"] = dw.bias_ih
            d_params[f"bias_hh_l{k}"] = dw.bias_hh
        d_layer_out = d_layer_in

    names = list(params)  # return gradients in the order of params
    d_params = {name: d_params[name] for name in names if name in d_params}
    return d_params, d_layer_out, pack_state(cell_name, tuple(d_initial))


def affine_forward(w: LayerWeights, x: np.ndarray, h_prev: np.ndarray) -> tuple[np.ndarray, ...]:
    """The two affine maps every cell starts with: ``W_ih x + b_ih`` and ``W_hh h + b_hh``."""
    gi = x @ w.weight_ih.T + w.bias_ih  # (B, G*H)
    gh = h_prev @ w.weight_hh.T + w.bias_hh  # (B, G*H)
    return gi, gh


def affine_backward(
    w: LayerWeights,
    dw: LayerWeights,
    d_gi: np.ndarray,
    d_gh: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Backward of :func:`affine_forward`: add this step's weight gradients, return (dx, dh_prev).

    For ``gi = x W_ih^T + b_ih`` (rows of ``x`` are the batch)::

        dW_ih += d_gi^T x      db_ih += sum_b d_gi      dx = d_gi W_ih

    and the same with ``h_prev``, ``W_hh`` and ``d_gh``.
    """
    dw.weight_ih[...] += d_gi.T @ x
    dw.bias_ih[...] += d_gi.sum(axis=0)
    dw.weight_hh[...] += d_gh.T @ h_prev
    dw.bias_hh[...] += d_gh.sum(axis=0)
    return d_gi @ w.weight_ih, d_gh @ w.weight_hh
