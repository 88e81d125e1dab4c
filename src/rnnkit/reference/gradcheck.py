"""Finite-difference checks of the hand-written backward passes.

For a scalar function ``L`` of an array ``w``, the central difference

    dL/dw_i  ~  (L(w + eps e_i) - L(w - eps e_i)) / (2 eps)

has error ``O(eps^2)``; in float64 with ``eps = 1e-6`` it agrees with a correct analytic gradient to
about 1e-9 relative, while a wrong formula shows up as an error of order 1.

To check a sequence function, :func:`check_sequence_gradients` turns its outputs into a scalar with
fixed random weights, ``L = sum(outputs * G) + sum(final_state * G_final)``, so that the analytic
gradient is exactly the backward pass called with ``d_outputs = G`` and ``d_final_state = G_final``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnkit.reference.cells import BACKWARD, FORWARD
from rnnkit.reference.params import STATE_PARTS, init_params


def numerical_gradient(
    f: Callable[[], float], array: np.ndarray, *, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of ``f()`` with respect to every entry of ``array``.

    ``array`` is perturbed in place, one entry at a time, and restored; ``f`` must read it.
    """
    grad = np.zeros_like(array, dtype=np.float64)
    for i in np.ndindex(array.shape):
        saved = array[i]
        array[i] = saved + eps
        plus = f()
        array[i] = saved - eps
        minus = f()
        array[i] = saved
        grad[i] = (plus - minus) / (2.0 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a||, ||b||)``, 0 when both are zero."""
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - b)) / scale


def check_sequence_gradients(
    cell: str,
    *,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    steps: int = 3,
    batch: int = 2,
    input_size: int = 3,
    hidden_size: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Compare the analytic and numerical gradients of one random float64 network.

    Returns:
        The relative error for every parameter, for ``"x"`` and for each part of the initial state
        (``"h0"``, and ``"c0"`` for the LSTM).
    """
    rng = np.random.default_rng(seed)
    params = init_params(cell, input_size, hidden_size, num_layers=num_layers, rng=rng)
    x = rng.normal(size=(steps, batch, input_size))
    state_shape = (num_layers, batch, hidden_size)
    parts = [rng.normal(size=state_shape) for _ in STATE_PARTS[cell]]
    g_out = rng.normal(size=(steps, batch, hidden_size))
    g_final = [rng.normal(size=state_shape) for _ in parts]
    options = {"num_layers": num_layers}
    if cell == "rnn":
        options["nonlinearity"] = nonlinearity

    def pack(arrays: list[np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
        return tuple(arrays) if len(arrays) == 2 else arrays[0]

    def run() -> tuple:
        return FORWARD[cell](params, x, pack(parts), **options)

    def loss() -> float:
        outputs, final, _ = run()
        finals = final if isinstance(final, tuple) else (final,)
        return float((outputs * g_out).sum() + sum((f * g).sum() for f, g in zip(finals, g_final)))

    _, _, cache = run()
    d_params, d_x, d_state = BACKWARD[cell](params, g_out, pack(g_final), cache)
    d_states = d_state if isinstance(d_state, tuple) else (d_state,)

    errors = {
        name: relative_error(d_params[name], numerical_gradient(loss, params[name]))
        for name in params
    }
    errors["x"] = relative_error(d_x, numerical_gradient(loss, x))
    for part, array, analytic in zip(STATE_PARTS[cell], parts, d_states):
        errors[f"{part}0"] = relative_error(analytic, numerical_gradient(loss, array))
    return errors
