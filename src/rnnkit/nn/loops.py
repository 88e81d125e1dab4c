"""The time loops of the kernels in plain PyTorch: the portable twin of :mod:`rnnkit.nn.native`.

Each function walks one layer-direction's schedule (see :mod:`rnnkit.nn.schedule`), doing per step
one matrix product with the recurrent weights and the element-wise gate math in place in
preallocated ``(N, ...)`` buffers; backward walks the steps in reverse carrying ``dL/dh`` (and
``dL/dc``) and fills the ``(N, gates)`` pre-activation gradient from which :mod:`rnnkit.nn.kernels`
forms every weight gradient with one matrix product. Signatures and results are the same as in
:mod:`rnnkit.nn.native`, which runs the same loops in C.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.nn.schedule import Schedule


def project(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` for all N rows in one matrix product."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def lstm_forward(
    sched: Schedule, gates: Tensor, w_hh: Tensor, w_hr: Tensor | None, h0: Tensor, c0: Tensor
) -> tuple[Tensor, ...]:
    """``gates`` (N, 4H) holds the input projection; on return the activations ``i, f, g, o``.

    Returns ``(h_prev, c_prev, c, tanh_c, h_full, y, h_n, c_n)``; ``h_full`` is ``h`` before the
    projection (``y`` itself without one).
    """
    hidden = c0.shape[1]
    h_prev, y = sched.state_buffers(h0)  # (N, H_out) each
    c_prev, c = sched.state_buffers(c0)  # (N, H) each
    tanh_c = torch.empty_like(c)
    h_full = torch.empty_like(c) if w_hr is not None else y
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
    return h_prev, c_prev, c, tanh_c, h_full, y, sched.final_state(y), sched.final_state(c)


def lstm_backward(
    sched: Schedule, gates: Tensor, c_prev: Tensor, tanh_c: Tensor, w_hh: Tensor,
    w_hr: Tensor | None, dy: Tensor, dh_n: Tensor, dc_n: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(d_gates, dh_total, dh0, dc0)``: the (N, 4H) pre-activation gradient, the total
    ``dL/dh_t`` (N, H_out) that the projection's weight gradient needs, and the initial states'
    gradients."""
    dh, dc = dh_n.clone(), dc_n.clone()  # running dL/dh (B, H_out), dL/dc (B, H)
    d_gates = torch.empty_like(gates)
    dh_total = torch.empty_like(dy)
    for t in reversed(sched.order):
        r, b = sched.rows(t), sched.sizes[t]
        dh_t = torch.add(dh[:b], dy[r], out=dh_total[r])
        if w_hr is not None:
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
    return d_gates, dh_total, dh, dc


def gru_forward(
    sched: Schedule, gi: Tensor, w_hh: Tensor, b_hh: Tensor | None, h0: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``gi`` (N, 3H) holds the input projection; on return the gates ``r, z, n``.

    Returns ``(gh, h_prev, y, h_n)`` where ``gh`` (N, 3H) is ``W_hh h_{t-1} + b_hh``.
    """
    hidden = h0.shape[1]
    gh = torch.empty_like(gi)
    h_prev, y = sched.state_buffers(h0)
    for t in sched.order:
        r = sched.rows(t)
        gh_t = project(h_prev[r], w_hh, b_hh, out=gh[r])  # (b, 3H)
        g = gi[r]
        g[:, : 2 * hidden].add_(gh_t[:, : 2 * hidden]).sigmoid_()  # reset, update
        reset, update, n = g.chunk(3, 1)
        n.addcmul_(reset, gh_t[:, 2 * hidden :]).tanh_()
        # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
        torch.sub(h_prev[r], n, out=y[r]).mul_(update).add_(n)
        sched.carry(t, h_prev, y, h0)
    return gh, h_prev, y, sched.final_state(y)


def gru_backward(
    sched: Schedule, gi: Tensor, gh: Tensor, h_prev: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(d_gi, d_gh, dh0)``: gradients of the input and recurrent projections (N, 3H)."""
    hidden = h_prev.shape[1]
    dh = dh_n.clone()
    d_gi, d_gh = torch.empty_like(gi), torch.empty_like(gh)
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
    return d_gi, d_gh, dh


def rnn_forward(
    sched: Schedule, x: Tensor, w_ih: Tensor, bias: Tensor | None, w_hh: Tensor, h0: Tensor,
    relu: bool,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(h_prev, y, h_n)``."""
    h_prev, y = sched.state_buffers(h0)
    project(x, w_ih, bias, out=y)  # y holds pre-activations until step t overwrites them
    w_hh_t = w_hh.t()
    for t in sched.order:
        r = sched.rows(t)
        pre = y[r].addmm_(h_prev[r], w_hh_t)
        pre.relu_() if relu else pre.tanh_()
        sched.carry(t, h_prev, y, h0)
    return h_prev, y, sched.final_state(y)


def rnn_backward(
    sched: Schedule, y: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor, relu: bool
) -> tuple[Tensor, Tensor]:
    """Returns ``(d_pre, dh0)``: the (N, H) pre-activation gradient and dL/dh0."""
    dh = dh_n.clone()
    d_pre = torch.empty_like(y)
    for t in reversed(sched.order):
        r, b = sched.rows(t), sched.sizes[t]
        dh_t = dh[:b].add_(dy[r])
        y_t = y[r]
        if relu:
            torch.mul(dh_t, y_t > 0, out=d_pre[r])
        else:
            torch.mul(dh_t, 1 - y_t * y_t, out=d_pre[r])
        torch.mm(d_pre[r], w_hh, out=dh[:b])
    return d_pre, dh
