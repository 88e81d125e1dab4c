"""Sequence kernels: one layer, one direction, a whole (packed) batch, with BPTT written by hand.

Each kernel is a :class:`torch.autograd.Function`:

* forward computes the input projection of every time step as one matrix product, then runs the time
  loop (one matrix product with the recurrent weights and the element-wise gate math per step),
  keeping in ``(N, ...)`` buffers what backward needs;
* backward runs the loop in reverse, carrying the gradient of the hidden (and cell) state, and
  collects the gradient of every step's pre-activations in one ``(N, gates)`` matrix, so that the
  input gradient and each weight gradient is *one* matrix product over all N rows (each bias
  gradient one column sum).

Variable lengths are handled by the schedule (:mod:`rnnkit.nn.schedule`): step ``t`` only touches
its active rows, so a finished sequence's state stops changing and its padding never contributes
to any gradient.

The hand-written backward is exact but not itself differentiable; when autograd records a graph of
the gradient (``create_graph=True``: double backward, gradient penalties), backward instead
recomputes the layer-direction with the differentiable steps of :mod:`rnnkit.nn.steps` and
differentiates that, so second derivatives are right (never silently dropped).

The time loop exists twice with the same signatures: :mod:`rnnkit.nn.loops` in PyTorch, and
:mod:`rnnkit.nn.native` in C (compiled on first use). ``native=True`` asks for the C loop, which
runs when :func:`rnnkit.nn.native.available`; the PyTorch loop is used otherwise.

Arguments: ``x`` ``(N, I)`` (packed rows), initial states ``(B, H_out)`` / ``(B, H)``, torch-layout
weights (``weight_ih`` ``(G*H, I)``, ``weight_hh`` ``(G*H, H_out)``), optional biases and, for the
LSTM, an optional projection ``weight_hr`` ``(H_out, H)``; ``sizes`` (active batch per step) and
``reverse`` describe the schedule. Gate order is torch's: LSTM ``i, f, g, o``; GRU ``r, z, n``.

Weight drop (``drop``, a :class:`rnnkit.nn.regularized_native.DroppedWeight`, or None):
``weight_hh`` is the stored weight and the loops multiply with ``drop.weight`` instead; backward
returns the stored weight's gradient with the mask applied as the product is formed (one pass
over the matrix instead of the product, then :func:`rnnkit.nn.dropout.drop_connect`'s masking
pass).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rnnkit.nn import loops, native, steps
from rnnkit.nn.loops import project
from rnnkit.nn.schedule import Schedule, grad_or_zeros
from rnnkit.nn.transforms import ReferencedFunction, differentiable_grads

if TYPE_CHECKING:
    from rnnkit.nn.regularized_native import DroppedWeight


def _impl(native_wanted: bool, *tensors: Tensor | None) -> ModuleType:
    """The C loops when wanted and they can take every tensor (one element type, CPU), else
    PyTorch's (which raise torch's own errors for mixed types)."""
    given = [t for t in tensors if t is not None]
    return native if native_wanted and native.available(*given) else loops


def sum_bias(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    """The one bias the gates see, ``b_ih + b_hh`` (None for a layer without biases)."""
    return None if b_ih is None else b_ih + b_hh


def _input_grads(ctx: Any, d_pre: Tensor, x: Tensor, w_ih: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of ``x``, ``weight_ih`` and the bias from the ``(N, G)`` pre-activation grads."""
    need = ctx.needs_input_grad
    dx = d_pre @ w_ih if need[0] else None
    dw_ih = d_pre.t() @ x if need[ctx.w_index] else None
    db = d_pre.sum(0) if ctx.has_bias else None
    return dx, dw_ih, db


def graph_grads(
    mode: str, inputs: tuple[Tensor | None, ...], n_states: int, grads: tuple, sizes: list[int],
    reverse: bool, needed: tuple[bool, ...], drop: DroppedWeight | None = None,
) -> tuple[Tensor | None, ...]:  # fmt: skip
    """Gradients of ``inputs`` (``x``, states, then params) as a graph autograd can differentiate:
    the layer-direction recomputed with :func:`rnnkit.nn.steps.run` and differentiated.

    ``grads`` are the gradients of ``y`` and the final states (None where absent); ``needed[i]``
    says whether ``inputs[i]`` wants its gradient. Used by the kernels' backward and by the custom
    operator's (:mod:`rnnkit.nn.ops`) when autograd records a graph of the gradient. With
    ``drop``, the steps multiply with the stored ``weight_hh`` times the weight-drop mask.
    """
    x, states, params = inputs[0], list(inputs[1 : 1 + n_states]), list(inputs[1 + n_states :])
    params += [None] * (5 - len(params))  # the GRU and RNN have no projection
    with torch.enable_grad():
        params[1] = _dropped(params[1], drop)
        y, finals = steps.run(mode, x, states, params, sizes, reverse)
    return differentiable_grads([y, *finals], inputs, grads, needed)


def _graph_grads(
    ctx: Any, mode: str, inputs: tuple[Tensor | None, ...], n_states: int, grads: tuple
) -> tuple[Tensor | None, ...]:
    sched = ctx.state[0]
    return graph_grads(mode, inputs, n_states, grads, sched.sizes, sched.reverse,
                       ctx.needs_input_grad, ctx.drop)  # fmt: skip


def _dropped(w_hh: Tensor, drop: DroppedWeight | None) -> Tensor:
    """The recurrent weight as the steps use it, differentiably (the references)."""
    return w_hh if drop is None else w_hh * drop.factor()


def _loop_weight(w_hh: Tensor, drop: DroppedWeight | None) -> Tensor:
    """The recurrent weight the time loops multiply with: the dropped one under weight drop."""
    return w_hh if drop is None else drop.weight


def _recurrent_grad(d_pre: Tensor, h_prev: Tensor, drop: DroppedWeight | None) -> Tensor:
    """dL/dW_hh from the ``(N, G)`` gradient of the recurrent products and the rows ``h_{t-1}``
    they multiplied; under weight drop, of the stored weight (the mask applied in the product)."""
    return d_pre.t() @ h_prev if drop is None else drop.grad(d_pre, h_prev)


def _start(
    ctx: Any, sizes: list[int], reverse: bool, native_wanted: bool, w: int,
    drop: DroppedWeight | None, *tensors: Tensor | None,
) -> Schedule:  # fmt: skip
    """Record on ``ctx`` which loops run, where ``weight_ih`` is among the inputs and the weight
    drop (None without)."""
    ctx.loops = _impl(native_wanted, *tensors)
    ctx.w_index = w
    ctx.drop = drop
    return Schedule(sizes, reverse)


class LSTMFunction(ReferencedFunction):
    """``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, native, drop) -> (y, h_n,
    c_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, native_,  # noqa: ANN001
                drop: DroppedWeight | None = None):  # fmt: skip
        loop_w = _loop_weight(w_hh, drop)
        sched = _start(ctx, sizes, reverse, native_, 3, drop, x, h0, c0, w_ih, loop_w, b_ih, b_hh,
                       w_hr)  # fmt: skip
        gates = project(x, w_ih, sum_bias(b_ih, b_hh))  # (N, 4H)
        h_prev, c_prev, _, tanh_c, h_full, y, h_n, c_n = ctx.loops.lstm_forward(
            sched, gates, loop_w, w_hr, h0, c0
        )
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y)
        # Without a projection h_full is the output y: keeping it on ctx would make a reference
        # cycle (y -> grad_fn -> ctx -> y) that frees nothing until Python's cyclic GC runs.
        h_full = h_full if w_hr is not None else None
        ctx.state = (sched, gates, h_prev, c_prev, tanh_c, h_full)
        ctx.has_bias = b_ih is not None
        return y, h_n, c_n

    @staticmethod
    def reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, native_=True,  # noqa: ANN001, ANN205
                  drop: DroppedWeight | None = None):  # fmt: skip
        params = [w_ih, _dropped(w_hh, drop), b_ih, b_hh, w_hr]
        y, (h_n, c_n) = steps.run("LSTM", x, [h0, c0], params, sizes, reverse)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n, dc_n):  # noqa: ANN001
        *inputs, y = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            return (
                *_graph_grads(ctx, "LSTM", tuple(inputs), 2, (dy, dh_n, dc_n)),
                None,
                None,
                None,
                None,
            )
        x, _, _, w_ih, w_hh, _, _, w_hr = inputs
        sched, gates, h_prev, c_prev, tanh_c, h_full = ctx.state
        dy = grad_or_zeros(dy, y)
        dh_n = grad_or_zeros(dh_n, h_prev[: sched.batch])
        dc_n = grad_or_zeros(dc_n, tanh_c[: sched.batch])
        d_gates, dh_total, dh0, dc0 = ctx.loops.lstm_backward(
            sched, gates, c_prev, tanh_c, _loop_weight(w_hh, ctx.drop), w_hr, dy, dh_n, dc_n
        )
        dx, dw_ih, db = _input_grads(ctx, d_gates, x, w_ih)
        dw_hh = _recurrent_grad(d_gates, h_prev, ctx.drop) if ctx.needs_input_grad[4] else None
        dw_hr = dh_total.t() @ h_full if w_hr is not None else None
        return dx, dh0, dc0, dw_ih, dw_hh, db, db, dw_hr, None, None, None, None


class GRUFunction(ReferencedFunction):
    """``(x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse, native, drop) -> (y, h_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse, native_, drop=None):  # noqa: ANN001
        loop_w = _loop_weight(w_hh, drop)
        sched = _start(ctx, sizes, reverse, native_, 2, drop, x, h0, w_ih, loop_w, b_ih, b_hh)
        gi = project(x, w_ih, b_ih)  # (N, 3H)
        gh, h_prev, y, h_n = ctx.loops.gru_forward(sched, gi, loop_w, b_hh, h0)
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, y)
        ctx.state = (sched, gi, gh, h_prev)
        ctx.has_bias = b_ih is not None
        return y, h_n

    @staticmethod
    def reference(x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse, native_=True, drop=None):  # noqa: ANN001, ANN205
        params = [w_ih, _dropped(w_hh, drop), b_ih, b_hh, None]
        y, (h_n,) = steps.run("GRU", x, [h0], params, sizes, reverse)
        return y, h_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        *inputs, y = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            grads = _graph_grads(ctx, "GRU", tuple(inputs), 1, (dy, dh_n))
            return (*grads, None, None, None, None)
        x, _, w_ih, w_hh, _, _ = inputs
        sched, gi, gh, h_prev = ctx.state
        dy = grad_or_zeros(dy, y)
        dh_n = grad_or_zeros(dh_n, h_prev[: sched.batch])
        loop_w = _loop_weight(w_hh, ctx.drop)
        d_gi, d_gh, dh0 = ctx.loops.gru_backward(sched, gi, gh, h_prev, loop_w, dy, dh_n)
        dx, dw_ih, db_ih = _input_grads(ctx, d_gi, x, w_ih)
        dw_hh = _recurrent_grad(d_gh, h_prev, ctx.drop) if ctx.needs_input_grad[3] else None
        db_hh = d_gh.sum(0) if ctx.has_bias else None
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None, None


class RNNFunction(ReferencedFunction):
    """``(x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse, native, drop) -> (y, h_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse, native_,  # noqa: ANN001
                drop: DroppedWeight | None = None):  # fmt: skip
        loop_w = _loop_weight(w_hh, drop)
        sched = _start(ctx, sizes, reverse, native_, 2, drop, x, h0, w_ih, loop_w, b_ih, b_hh)
        bias = sum_bias(b_ih, b_hh)
        h_prev, y, h_n = ctx.loops.rnn_forward(sched, x, w_ih, bias, loop_w, h0, relu)
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, y)
        ctx.state = (sched, h_prev, relu)
        ctx.has_bias = b_ih is not None
        return y, h_n

    @staticmethod
    def reference(x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse, native_=True,  # noqa: ANN001, ANN205
                  drop: DroppedWeight | None = None):  # fmt: skip
        mode = "RNN_RELU" if relu else "RNN_TANH"
        params = [w_ih, _dropped(w_hh, drop), b_ih, b_hh, None]
        y, (h_n,) = steps.run(mode, x, [h0], params, sizes, reverse)
        return y, h_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        *inputs, y = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            mode = "RNN_RELU" if ctx.state[2] else "RNN_TANH"
            grads = _graph_grads(ctx, mode, tuple(inputs), 1, (dy, dh_n))
            return (*grads[:6], None, None, None, None, None)
        x, _, w_ih, w_hh, _, _ = inputs
        sched, h_prev, relu = ctx.state
        dy = grad_or_zeros(dy, y)
        dh_n = grad_or_zeros(dh_n, h_prev[: sched.batch])
        d_pre, dh0 = ctx.loops.rnn_backward(sched, y, _loop_weight(w_hh, ctx.drop), dy, dh_n, relu)
        dx, dw_ih, db = _input_grads(ctx, d_pre, x, w_ih)
        dw_hh = _recurrent_grad(d_pre, h_prev, ctx.drop) if ctx.needs_input_grad[3] else None
        return dx, dh0, dw_ih, dw_hh, db, db, None, None, None, None, None


def run_kernel(mode: str, x: Tensor, states: list[Tensor], params: list, sizes: list[int],
               reverse: bool, use_c: bool, drop: DroppedWeight | None = None,
               ) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """One layer-direction of ``mode`` through its autograd Function: ``(y, final states)``;
    ``params`` is ``[w_ih, w_hh, b_ih, b_hh, w_hr]`` with None where absent; ``drop`` the
    weight drop of ``w_hh`` (see the module docstring)."""
    w_ih, w_hh, b_ih, b_hh, w_hr = params
    if mode == "LSTM":
        y, *fin = LSTMFunction.apply(
            x, *states, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, use_c, drop
        )
    elif mode == "GRU":
        y, *fin = GRUFunction.apply(x, *states, w_ih, w_hh, b_ih, b_hh, sizes, reverse, use_c,
                                    drop)  # fmt: skip
    else:
        relu = mode == "RNN_RELU"
        y, *fin = RNNFunction.apply(x, *states, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse,
                                    use_c, drop)  # fmt: skip
    return y, fin
