"""Parameter dicts with torch.nn's names and shapes, checked at the boundary.

A recurrent network of ``num_layers`` layers keeps, for each layer ``k``, the four arrays that
``torch.nn.RNN/LSTM/GRU`` call::

    weight_ih_l{k}   (G*H, input_size)  for k = 0, (G*H, H) above
    weight_hh_l{k}   (G*H, H)
    bias_ih_l{k}     (G*H,)              only with bias=True
    bias_hh_l{k}     (G*H,)              only with bias=True

where ``G`` is the number of gate blocks stacked in one matrix: 1 for the vanilla RNN, 4 for the
LSTM (rows in the order i, f, g, o) and 3 for the GRU (r, z, n). Keeping torch's names and layout
means the same weights move unchanged between ``rnnkit.reference``, ``rnnkit.nn`` and ``torch.nn``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

# Gate blocks stacked in the weight matrices of each cell type (torch's layout).
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# Arrays that make up the recurrent state of each cell type: (h,) or (h, c).
STATE_PARTS = {"rnn": ("h",), "lstm": ("h", "c"), "gru": ("h",)}

_RECURRENT_NAME = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)$")


class LayerWeights(NamedTuple):
    """The four arrays of one layer; biases are zeros when the network has none."""

    weight_ih: np.ndarray  # (G*H, I)
    weight_hh: np.ndarray  # (G*H, H)
    bias_ih: np.ndarray  # (G*H,)
    bias_hh: np.ndarray  # (G*H,)


def param_shapes(
    cell: str, input_size: int, hidden_size: int, *, num_layers: int = 1, bias: bool = True
) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter of a ``cell`` network, in torch's order."""
    rows = GATES[cell] * hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(num_layers):
        shapes[f"weight_ih_l{k}"] = (rows, input_size if k == 0 else hidden_size)
        shapes[f"weight_hh_l{k}"] = (rows, hidden_size)
        if bias:
            shapes[f"bias_ih_l{k}"] = (rows,)
            shapes[f"bias_hh_l{k}"] = (rows,)
    return shapes


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bias: bool = True,
    rng: np.random.Generator,
    dtype: type = np.float64,
) -> dict[str, np.ndarray]:
    """Random parameters drawn like torch.nn does: uniform on (-1/sqrt(H), 1/sqrt(H))."""
    _check_cell(cell)
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = param_shapes(cell, input_size, hidden_size, num_layers=num_layers, bias=bias)
    return {
        name: rng.uniform(-bound, bound, size=shape).astype(dtype) for name, shape in shapes.items()
    }


def check_params(
    params: Mapping[str, np.ndarray],
    cell: str,
    input_size: int,
    *,
    num_layers: int,
    bias: bool,
) -> int:
    """Check names and shapes of ``params`` for a ``cell`` network; return the hidden size.

    Raises:
        ValueError: a parameter is missing, has the wrong shape, or belongs to a layer beyond
            ``num_layers``; the message names the key and the expected shape.
    """
    _check_cell(cell)
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    if "weight_hh_l0" not in params:
        raise ValueError(
            f"params has no 'weight_hh_l0'; a {cell} network needs it with shape "
            f"({GATES[cell]}*hidden_size, hidden_size)"
        )
    if np.ndim(params["weight_hh_l0"]) != 2:
        raise ValueError(
            f"params['weight_hh_l0'] has shape {np.shape(params['weight_hh_l0'])}; expected "
            f"({GATES[cell]}*hidden_size, hidden_size)"
        )
    hidden_size = np.shape(params["weight_hh_l0"])[1]
    expected = param_shapes(cell, input_size, hidden_size, num_layers=num_layers, bias=bias)
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(
                f"params has no {name!r}; a {num_layers}-layer {cell} network with "
                f"hidden_size={hidden_size} needs it with shape {shape}"
            )
        actual = np.shape(params[name])
        if actual != shape:
            raise ValueError(
                f"params[{name!r}] has shape {actual}; expected {shape} for a {cell} network with "
                f"input_size={input_size}, hidden_size={hidden_size}"
            )
    for name in params:
        match = _RECURRENT_NAME.match(name)
        if match and name not in expected:
            layer = int(match.group(3))
            if layer >= num_layers:
                raise ValueError(
                    f"params has {name!r} but num_layers={num_layers}; pass num_layers={layer + 1}"
                )
            raise ValueError(f"params has {name!r} but bias=False; drop it or pass bias=True")
    return hidden_size


def layer_weights(params: Mapping[str, np.ndarray], layer: int, *, bias: bool) -> LayerWeights:
    """The arrays of one layer, with zero biases standing in when ``bias`` is False."""
    w_ih = np.asarray(params[f"weight_ih_l{layer}"])
    w_hh = np.asarray(params[f"weight_hh_l{layer}"])
    if bias:
        b_ih = np.asarray(params[f"bias_ih_l{layer}"])
        b_hh = np.asarray(params[f"bias_hh_l{layer}"])
    else:
        b_ih = b_hh = np.zeros(w_hh.shape[0], dtype=w_hh.dtype)
    return LayerWeights(w_ih, w_hh, b_ih, b_hh)


def check_state(
    state: np.ndarray | tuple[np.ndarray, ...] | None,
    cell: str,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    *,
    name: str = "state",
) -> tuple[np.ndarray, ...]:
    """The state as a tuple of (num_layers, B, H) arrays, zeros where ``state`` is None.

    ``state`` is one array for rnn and gru and a pair ``(h, c)`` for lstm, as in torch.nn.
    """
    parts = STATE_PARTS[cell]
    if state is None:
        return tuple(np.zeros(shape, dtype=dtype) for _ in parts)
    if len(parts) == 2:
        if not isinstance(state, tuple | list) or len(state) != 2:
            raise ValueError(f"{name} of an lstm must be a pair (h, c) or None, got {type(state)}")
        arrays = tuple(np.asarray(s) for s in state)
    else:
        if isinstance(state, tuple | list):
            raise ValueError(f"{name} of a {cell} must be one array (not a tuple) or None")
        arrays = (np.asarray(state),)
    for part, array in zip(parts, arrays):
        label = f"{name} ({part})" if len(parts) == 2 else name
        if array.shape != shape:
            raise ValueError(
                f"{label} has shape {array.shape}; expected {shape} "
                "= (num_layers, batch, hidden_size)"
            )
    return arrays


def pack_state(cell: str, parts: tuple[np.ndarray, ...]) -> np.ndarray | tuple[np.ndarray, ...]:
    """The public form of a state: one array, or the pair (h, c) for lstm."""
    return parts if len(STATE_PARTS[cell]) == 2 else parts[0]


def _check_cell(cell: str) -> None:
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
