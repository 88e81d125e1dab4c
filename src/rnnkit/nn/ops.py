"""rnnkit's kernels as PyTorch custom operators, for graphs: ``torch.compile``, ``torch.export``,
``torch.jit.trace``.

``rnnkit::recurrent`` runs one layer-direction (any mode) and ``rnnkit::recurrent_backward`` its
gradient; both have fake (meta) implementations, so a tracer sees each as one opaque operator with
known output shapes, and an exported or compiled program calls rnnkit's kernels (C or PyTorch time
loop) when it runs. The autograd formula of ``recurrent`` is ``recurrent_backward``, which
recomputes the forward pass with the hand-written kernels and runs their backward: a graph keeps
only the operator's inputs, at the price of one more forward pass per backward.

Double backward: when autograd records a graph of the gradient (``create_graph=True``, gradient
penalties) the formula differentiates the layer-direction recomputed in differentiable steps
instead (:func:`rnnkit.nn.kernels.graph_grads`, as the eager kernels do), so exported programs,
``torch.jit.trace`` graphs and dynamo's ``backend="eager"`` give exact second derivatives.
``recurrent_backward`` itself has no autograd formula; it is only called without such a graph.
``torch.compile`` with AOTAutograd (every other backend) refuses double backward for any
compiled function, torch.nn's layers included: PyTorch raises ``torch.compile with aot_autograd
does not currently support double backward`` on the second backward, never a wrong number.

The layers call these only while tracing (see :mod:`rnnkit.nn.dispatch`); eager calls go straight
to the autograd Functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.nn.kernels import graph_grads, run_kernel

# Params are five separate arguments (w_ih, w_hh, b_ih, b_hh, w_hr; None where absent): tracers
# take lists of tensors but not lists of optional tensors.
Maybe = Tensor | None


@torch.library.custom_op("rnnkit::recurrent", mutates_args=())
def recurrent(
    mode: str, x: Tensor, states: list[Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Maybe,
    b_hh: Maybe, w_hr: Maybe, sizes: list[int], reverse: bool, use_c: bool,
) -> list[Tensor]:  # fmt: skip
    """``[y, *final_states]`` of one layer-direction, computed by rnnkit's kernels."""
    params = [w_ih, w_hh, b_ih, b_hh, w_hr]
    y, finals = run_kernel(mode, x, states, params, sizes, reverse, use_c)
    return [y, *finals]


@recurrent.register_fake
def _(mode, x, states, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, use_c):  # noqa: ANN001, ANN202
    width = w_hh.shape[1]  # (G * H, H_out)
    return [x.new_empty(x.shape[0], width), *(s.new_empty(s.shape) for s in states)]


@torch.library.custom_op("rnnkit::recurrent_backward", mutates_args=())
def recurrent_backward(
    mode: str, x: Tensor, states: list[Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Maybe,
    b_hh: Maybe, w_hr: Maybe, sizes: list[int], reverse: bool, use_c: bool, grads: list[Tensor],
) -> list[Tensor]:  # fmt: skip
    """Gradients of ``x``, the states and the present params, given the outputs' ``grads``."""
    params = [w_ih, w_hh, b_ih, b_hh, w_hr]
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_() for t in (x, *states, *_present(params))]
        leaf_params = iter(leaves[1 + len(states) :])
        given = [None if p is None else next(leaf_params) for p in params]
        y, finals = run_kernel(mode, leaves[0], leaves[1 : 1 + len(states)], given, sizes, reverse,
                            use_c)  # fmt: skip
        found = torch.autograd.grad([y, *finals], leaves, grads, allow_unused=True)
    return _unaliased([torch.zeros_like(t) if g is None else g for t, g in zip(leaves, found)],
                      grads)  # fmt: skip


def _unaliased(results: list[Tensor], inputs: list[Tensor]) -> list[Tensor]:
    """``results`` with a copy of each that shares memory with an input or an earlier result: a
    custom operator's outputs may alias neither (the LSTM's two bias gradients are one tensor)."""
    seen = {t.untyped_storage().data_ptr() for t in inputs}
    out = []
    for r in results:
        key = r.untyped_storage().data_ptr()
        if key in seen:
            r = r.clone()
            key = r.untyped_storage().data_ptr()
        seen.add(key)
        out.append(r)
    return out


@recurrent_backward.register_fake
def _(mode, x, states, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, use_c, grads):  # noqa: ANN001, ANN202
    params = [w_ih, w_hh, b_ih, b_hh, w_hr]
    return [t.new_empty(t.shape) for t in (x, *states, *_present(params))]


def _present(params: list[Maybe]) -> list[Tensor]:
    return [p for p in params if p is not None]


def _setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
    mode, x, states, *params = inputs[:8]
    ctx.save_for_backward(x, *states, *_present(params))
    ctx.args = (mode, len(states), [p is not None for p in params], *inputs[8:])


def _backward(ctx: Any, grads: list[Tensor]) -> tuple:
    mode, n_states, present, sizes, reverse, use_c = ctx.args
    saved = list(ctx.saved_tensors)
    x, states, rest = saved[0], saved[1 : 1 + n_states], iter(saved[1 + n_states :])
    params = [next(rest) if here else None for here in present]
    if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
        inputs = (x, *states, *params)
        needed = tuple(t is not None and t.requires_grad for t in inputs)
        found = graph_grads(mode, inputs, n_states, tuple(grads), sizes, reverse, needed)
        d_states, d_params = list(found[1 : 1 + n_states]), found[1 + n_states :]
        return None, found[0], d_states, *d_params, None, None, None
    shapes = [(x.shape[0], params[1].shape[1]), *(s.shape for s in states)]  # y, final states
    grads = [x.new_zeros(shape) if g is None else g for shape, g in zip(shapes, grads)]
    found = recurrent_backward(mode, x, states, *params, sizes, reverse, use_c, grads)
    d_rest = iter(found[1 + n_states :])
    d_params = [next(d_rest) if here else None for here in present]
    return None, found[0], found[1 : 1 + n_states], *d_params, None, None, None


recurrent.register_autograd(_backward, setup_context=_setup_context)


def run(
    mode: str, x: Tensor, states: list[Tensor], params: list[Maybe], sizes: list[int],
    reverse: bool, use_c: bool,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """:func:`recurrent` in the runner signature of :mod:`rnnkit.nn.dispatch`."""
    sizes = [int(s) for s in sizes]  # plain ints: a tracer records them as constants
    y, *finals = recurrent(mode, x, states, *params, sizes, reverse, use_c)
    return y, finals
