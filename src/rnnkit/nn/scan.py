"""The first-order linear recurrence ``h_t = a_t * h_{t-1} + b_t`` as a parallel scan.

MinGRU and MinLSTM (Feng et al. 2024, "Were RNNs All We Needed?") make the recurrence linear in
``h``: the coefficients ``a_t`` and inputs ``b_t`` depend on ``x_t`` only, so the whole sequence is
one prefix scan under the associative operator

.. math::
    (a_1, b_1) \\circ (a_2, b_2) = (a_2 a_1,\\; a_2 b_1 + b_2),

and needs no step-by-step loop. :func:`linear_scan` evaluates it by odd-even reduction
(Blelloch's work-efficient scheme): combine neighbouring pairs, scan the half-length sequence
recursively, then fill in the even positions. Every level is one vectorised operation over all
pairs, so the depth is ``O(log T)`` and the work ``O(T)`` (about two combines per element).

Why not the paper's log-space form ``h_t = exp(A_t + logcumsumexp(log b - A))`` with
``A = cumsum(log a)``: it guards against products of many ``a_t`` leaving the floating-point
range, but on the CPU ``torch.logcumsumexp`` is a scalar loop (420 ms for ``T, B, H = 256, 32,
512``, against 15 ms for ``cumsum``), and ``A_t + (...)`` cancels two numbers of size
``|A_t|``, losing ``|A_t|`` ulps. The reduction here needs no logarithms: with ``a_t`` in
``(0, 1]`` a product of coefficients only shrinks (it underflows to an exact 0, never overflows),
and for MinGRU/MinLSTM ``b_t > 0`` so no step subtracts; each ``h_t`` is a sum of positive terms
rounded ``O(log T)`` times.

The backward of the recurrence is the same recurrence run backwards in time (see
:class:`LinearScan`), so it is a scan too; written with the scan itself and plain torch ops, it is
differentiable again (double backward, gradient penalties) at the scan's speed.

Graphs: while ``torch.compile``, ``torch.export``, ``torch.jit.trace`` or another dispatch mode
traces it, :func:`scan` is one custom operator, ``rnnkit::linear_scan``, with a fake
implementation and the same autograd formula (the scan's in-place writes into strided views
would break ``fullgraph=True``); eager calls go straight to :class:`LinearScan`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnkit.nn.dispatch import tracing
from rnnkit.nn.transforms import ReferencedFunction, transformed


def scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` over dimension 0 with ``h_{-1} = h0``: ``a``, ``b``
    ``(T, B, H)``, ``h0`` ``(B, H)``; by :class:`LinearScan`, or its custom operator while a
    graph is being traced."""
    tensors = [a, b, h0]
    if tracing(tensors) and not transformed(tensors):
        return linear_scan_op(a, b, h0)
    return LinearScan.apply(a, b, h0)


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """All ``h_t = a_t * h_{t-1} + b_t`` with ``h_{-1} = 0``, along dimension 0 (time).

    ``a`` and ``b`` have the same shape ``(T, ...)``; returns ``h`` of that shape. Fold a nonzero
    initial state into the first input: ``b_0 + a_0 * h_{-1}``.
    """
    steps = a.shape[0]
    if steps == 1:
        return b.clone()
    pairs = steps // 2
    a_even, a_odd = a[0 : 2 * pairs : 2], a[1 : 2 * pairs : 2]  # (T/2, ...) each
    b_even, b_odd = b[0 : 2 * pairs : 2], b[1 : 2 * pairs : 2]
    # Combine steps (2j, 2j+1) into one: its result is h at the odd position 2j+1.
    h_odd = linear_scan(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))
    h = torch.empty_like(b)
    h[1 : 2 * pairs : 2] = h_odd
    h[0] = b[0]
    # Even positions 2j (j >= 1) take one step from the odd position before them.
    torch.addcmul(b[2::2], a[2::2], h_odd[: (steps - 1) // 2], out=h[2::2])
    return h


class LinearScan(ReferencedFunction):
    """``(a, b, h0) -> h``: ``h_t = a_t * h_{t-1} + b_t`` over dimension 0, ``h_{-1} = h0``.

    ``a`` and ``b`` are ``(T, B, H)``, ``h0`` is ``(B, H)``; returns ``h`` ``(T, B, H)``.

    Backward: with ``g_t = dL/dh_t`` counting every later use of ``h_t``,

    .. math::
        g_t = \\bar g_t + a_{t+1} g_{t+1}, \\quad
        \\partial L / \\partial b_t = g_t, \\quad
        \\partial L / \\partial a_t = g_t h_{t-1}, \\quad
        \\partial L / \\partial h_0 = a_0 g_0,

    where :math:`\\bar g_t` is the gradient arriving at the output ``h_t``: a linear recurrence
    backwards in time, evaluated by the same scan on the time-reversed sequence.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _scan_from(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    def reference(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        return sequential_scan(a, b, h0)

    @staticmethod
    def backward(ctx: Any, dh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        # With a graph of the gradient wanted (create_graph=True) the backward scan is this
        # Function again, so the gradient is differentiable like the forward pass.
        graph = torch.is_grad_enabled()
        return scan_grads(a, h0, h, dh, LinearScan.apply if graph else _scan_from)


def _scan_from(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """:func:`linear_scan` from the initial state ``h0``, folded into the first input."""
    b_first = torch.addcmul(b[:1], a[:1], h0)
    return linear_scan(a, torch.cat([b_first, b[1:]]))


Scan = Callable[[Tensor, Tensor, Tensor], Tensor]  # (a, b, h0) -> h


def scan_grads(
    a: Tensor, h0: Tensor, h: Tensor, dh: Tensor, run: Scan
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``a``, ``b`` and ``h0`` (see :class:`LinearScan`) from those of the outputs
    ``h``, with ``run(a, b, h0)`` as the scan: plain torch ops besides, so the result is
    differentiable whenever ``run`` is."""
    # Reversed time: g_t = dh_t + a_{t+1} g_{t+1}; the last step has no successor.
    a_next = torch.cat([a[1:], torch.zeros_like(a[:1])])
    g = run(a_next.flip(0), dh.flip(0), torch.zeros_like(h0)).flip(0)  # (T, B, H)
    h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
    return g * h_prev, g, a[0] * g[0]


@torch.library.custom_op("rnnkit::linear_scan", mutates_args=())
def linear_scan_op(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """:class:`LinearScan` as a custom operator, for graphs (see the module docstring)."""
    return _scan_from(a, b, h0)


@linear_scan_op.register_fake
def _(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    return torch.empty_like(b)


def _setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
    a, _, h0 = inputs
    ctx.save_for_backward(a, h0, output)


def _backward(ctx: Any, dh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    a, h0, h = ctx.saved_tensors
    return scan_grads(a, h0, h, dh, linear_scan_op)


linear_scan_op.register_autograd(_backward, setup_context=_setup_context)


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The same recurrence as :class:`LinearScan`, one step at a time in plain autograd code.

    The reference the scan is tested against; also what a one-step generation method computes.
    """
    h, out = h0, []
    for a_t, b_t in zip(a, b):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out)
