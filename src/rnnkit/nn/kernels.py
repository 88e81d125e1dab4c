"""Sequence kernels: one layer, one direction, a whole (packed) batch, with BPTT written by hand.

Each kernel is a :class:`torch.autograd.Function`:

* forward computes the input projection of every time step as one matrix product, then walks the
  schedule (see :mod:`rnnkit.nn.schedule`) doing one matrix product with the recurrent weights and
  the element-wise gate math per step, writing into preallocated ``(N, ...)`` buffers that backward
  reads;
* backward walks time in reverse, carrying the gradient of the hidden (and cell) state, and stores
  the gradient of every step's pre-activations in one ``(N, gates)`` matrix, so that each weight
  gradient, bias gradient and the input gradient is *one* matrix product (or sum) over all N rows.

Variable lengths are handled by the schedule: step ``t`` only touches its active rows, so a finished
sequence's state stops changing and its padding never contributes to any gradient.

Inputs are ``x`` ``(N, I)`` (packed rows), initial states ``(B, H_out)`` / ``(B, H)``, torch-layout
weights (``weight_ih`` ``(G*H, I)``, ``weight_hh`` ``(G*H, H_out)``), optional biases and, for the
LSTM, an optional projection ``weight_hr`` ``(H_out, H)``; ``sizes`` and ``reverse`` describe the
schedule. The gate order is torch's: LSTM ``i, f, g, o``; GRU ``r, z, n``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.nn.schedule import Schedule, grad_or_zeros


def _sum_bias(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    return None if b_ih is None else b_ih + b_hh


def _project(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor) -> Tensor:
    """``out = x @ weight.T + bias`` for all N rows in one matrix product."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def _weight_grads(ctx: Any, d_pre: Tensor, x: Tensor, w_ih: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of ``x``, ``weight_ih`` and the bias from the ``(N, G)`` pre-activation grads."""
    need = ctx.needs_input_grad
    dx = d_pre @ w_ih if need[0] else None
    dw_ih = d_pre.t() @ x if need[ctx.w_index] else None
    db = d_pre.sum(0) if ctx.has_bias else None
    return dx, dw_ih, db


class LSTMFunction(torch.autograd.Function):
    """``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse) -> (y, h_n, c_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse):  # noqa: ANN001
        sched = Schedule(sizes, reverse)
        hidden = w_hh.shape[0] // 4
        gates = x.new_empty(sched.total, 4 * hidden)  # (N, 4H): pre-activations, then activations
        _project(x, w_ih, _sum_bias(b_ih, b_hh), out=gates)
        h_prev, y = sched.state_buffers(h0)  # (N, H_out) each
        c_prev, c = sched.state_buffers(c0)  # (N, H) each
        tanh_c = torch.empty_like(c)
        h_full = torch.empty_like(c) if w_hr is not None else y  # h before the projection
        w_hh_t = w_hh.t()
        for t in sched.order:
            r = sched.rows(t)
            g = gates[r].addmm_(h_prev[r], w_hh_t)
            g[:, : 2 * hidden].sigmoid_()  # input and forget gates
            g[:, 2 * hidden : 3 * hidden].tanh_()  # candidate
            g[:, 3 * hidden :].sigmoid_()  # output gate
            i, f, cand, o = g.chunk(4, 1)
            c_t = torch.mul(f, c_prev[r], out=c[r]).addcmul_(i, cand)
            torch.mul(o, torch.tanh(c_t, out=tanh_c[r]), out=h_full[r])
            if w_hr is not None:
                torch.mm(h_full[r], w_hr.t(), out=y[r])
            sched.carry(t, h_prev, y, h0)
            sched.carry(t, c_prev, c, c0)
        ctx.save_for_backward(x, w_ih, w_hh, w_hr, y)
        ctx.state = (sched, gates, h_prev, c_prev, tanh_c, h_full)
        ctx.has_bias, ctx.w_index = b_ih is not None, 3
        return y, sched.final_state(y), sched.final_state(c)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n, dc_n):  # noqa: ANN001
        x, w_ih, w_hh, w_hr, y = ctx.saved_tensors
        sched, gates, h_prev, c_prev, tanh_c, h_full = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, h_prev[: sched.batch]).clone()  # (B, H_out) running dL/dh
        dc = grad_or_zeros(dc_n, tanh_c[: sched.batch]).clone()  # (B, H) running dL/dc
        d_gates = torch.empty_like(gates)  # (N, 4H) gradient of the pre-activations
        dh_total = torch.empty_like(y) if w_hr is not None else None  # (N, H_out)
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_t = dh[:b].add_(dy[r])
            if w_hr is not None:
                dh_total[r] = dh_t
                dh_t = dh_t @ w_hr  # back through the projection: (b, H)
            i, f, cand, o = gates[r].chunk(4, 1)
            di, df, dcand, do = d_gates[r].chunk(4, 1)
            tc = tanh_c[r]
            dc_t = dc[:b].addcmul_(dh_t * o, 1 - tc * tc)
            torch.mul(dh_t * tc, o * (1 - o), out=do)
            torch.mul(dc_t * cand, i * (1 - i), out=di)
            torch.mul(dc_t * i, 1 - cand * cand, out=dcand)
            torch.mul(dc_t * c_prev[r], f * (1 - f), out=df)
            dc_t.mul_(f)  # dL/dc_{t-1}
            torch.mm(d_gates[r], w_hh, out=dh[:b])  # dL/dh_{t-1}
        dx, dw_ih, db = _weight_grads(ctx, d_gates, x, w_ih)
        dw_hh = d_gates.t() @ h_prev if ctx.needs_input_grad[4] else None
        dw_hr = dh_total.t() @ h_full if w_hr is not None else None
        return dx, dh, dc, dw_ih, dw_hh, db, db, dw_hr, None, None


class GRUFunction(torch.autograd.Function):
    """``(x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse) -> (y, h_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse):  # noqa: ANN001
        sched = Schedule(sizes, reverse)
        hidden = w_hh.shape[1]
        gi = x.new_empty(sched.total, 3 * hidden)  # (N, 3H): input part, then r, z, n
        _project(x, w_ih, b_ih, out=gi)
        gh = torch.empty_like(gi)  # (N, 3H): recurrent part W_hh h + b_hh
        h_prev, y = sched.state_buffers(h0)
        for t in sched.order:
            r = sched.rows(t)
            gh_t = _project(h_prev[r], w_hh, b_hh, out=gh[r])  # (b, 3H)
            g = gi[r]
            g[:, : 2 * hidden].add_(gh_t[:, : 2 * hidden]).sigmoid_()  # reset, update
            reset, update, n = g.chunk(3, 1)
            n.addcmul_(reset, gh_t[:, 2 * hidden :]).tanh_()
            # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
            torch.sub(h_prev[r], n, out=y[r]).mul_(update).add_(n)
            sched.carry(t, h_prev, y, h0)
        ctx.save_for_backward(x, w_ih, w_hh, y)
        ctx.state = (sched, gi, gh, h_prev)
        ctx.has_bias, ctx.w_index = b_ih is not None, 2
        return y, sched.final_state(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        x, w_ih, w_hh, y = ctx.saved_tensors
        sched, gi, gh, h_prev = ctx.state
        hidden = w_hh.shape[1]
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, h_prev[: sched.batch]).clone()
        d_gi = torch.empty_like(gi)  # (N, 3H) gradient of the input projection
        d_gh = torch.empty_like(gh)  # (N, 3H) gradient of the recurrent projection
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_t = dh[:b].add_(dy[r])
            reset, update, n = gi[r].chunk(3, 1)
            d_reset, d_update, d_hn = d_gh[r].chunk(3, 1)
            d_n = torch.mul(dh_t * (1 - update), 1 - n * n, out=d_gi[r][:, 2 * hidden :])
            torch.mul(d_n * gh[r][:, 2 * hidden :], reset * (1 - reset), out=d_reset)
            torch.mul(dh_t * (h_prev[r] - n), update * (1 - update), out=d_update)
            torch.mul(d_n, reset, out=d_hn)
            torch.addmm(dh_t * update, d_gh[r], w_hh, out=dh[:b])  # dL/dh_{t-1}
        d_gi[:, : 2 * hidden] = d_gh[:, : 2 * hidden]
        dx, dw_ih, db_ih = _weight_grads(ctx, d_gi, x, w_ih)
        dw_hh = d_gh.t() @ h_prev if ctx.needs_input_grad[3] else None
        db_hh = d_gh.sum(0) if ctx.has_bias else None
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh, None, None


class RNNFunction(torch.autograd.Function):
    """``(x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse) -> (y, h_n)``."""

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse):  # noqa: ANN001
        sched = Schedule(sizes, reverse)
        h_prev, y = sched.state_buffers(h0)
        _project(x, w_ih, _sum_bias(b_ih, b_hh), out=y)  # y holds pre-activations until step t
        w_hh_t = w_hh.t()
        for t in sched.order:
            r = sched.rows(t)
            pre = y[r].addmm_(h_prev[r], w_hh_t)
            pre.relu_() if relu else pre.tanh_()
            sched.carry(t, h_prev, y, h0)
        ctx.save_for_backward(x, w_ih, w_hh, y)
        ctx.state = (sched, h_prev, relu)
        ctx.has_bias, ctx.w_index = b_ih is not None, 2
        return y, sched.final_state(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        x, w_ih, w_hh, y = ctx.saved_tensors
        sched, h_prev, relu = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, h_prev[: sched.batch]).clone()
        d_pre = torch.empty_like(y)  # (N, H)
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_t = dh[:b].add_(dy[r])
            y_t = y[r]
            if relu:
                torch.mul(dh_t, y_t > 0, out=d_pre[r])
            else:
                torch.mul(dh_t, 1 - y_t * y_t, out=d_pre[r])
            torch.mm(d_pre[r], w_hh, out=dh[:b])
        dx, dw_ih, db = _weight_grads(ctx, d_pre, x, w_ih)
        dw_hh = d_pre.t() @ h_prev if ctx.needs_input_grad[3] else None
        return dx, dh, dw_ih, dw_hh, db, db, None, None, None
