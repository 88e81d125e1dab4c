"""Kernels for the layer options: layer normalization, zoneout and recurrent dropout, BPTT by hand.

One :class:`torch.autograd.Function` per cell type runs one layer-direction over a packed batch
(see :mod:`rnnkit.nn.schedule`), like :mod:`rnnkit.nn.kernels`, with any combination of

* ``ln_h``: layer normalization of the recurrent product (Ba et al. 2016), a gain per gate row
  and no shift (the gate biases follow it); for the LSTM also ``ln_c``, the normalization of the
  cell state before the output ``tanh`` (gain and shift), the placement of haste's LayerNormLSTM;
* ``mask``: recurrent dropout (Gal & Ghahramani 2016), one ``(B, H_out)`` mask (already scaled by
  ``1/(1-p)``) on ``h_{t-1}`` where it enters the gates, the same at every step;
* ``keep_h``, ``keep_c``: zoneout (Krueger et al. 2017), ``(N, H)`` per-step weights of the previous
  state: ``h_t = k_t h_{t-1} + (1 - k_t) \\tilde h_t`` (0/1 in training, the probability in eval).

The input side (``W_ih x``, its normalization and the biases) has no recurrence: the layer computes
it for all steps at once with autograd and passes it in as ``gx`` ``(N, G*H)``. The recurrent
weight gradient is one matrix product over all N rows, as in the plain kernels. The readable
reference of the same computation, step by step in plain autograd code, is
:mod:`rnnkit.nn.regularized_cells`. Gate order is torch's: LSTM ``i, f, g, o``; GRU ``r, z, n``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.nn.schedule import Schedule, grad_or_zeros

EPS = 1e-5  # layer normalization's epsilon, torch.nn.LayerNorm's default


def layer_norm(
    x: Tensor, weight: Tensor, bias: Tensor | None, xhat: Tensor, rstd: Tensor
) -> Tensor:
    """``weight * (x - mean) / std + bias`` over the last dimension; fills ``xhat`` and ``rstd``."""
    var, mean = torch.var_mean(x, 1, correction=0, keepdim=True)
    torch.rsqrt(var + EPS, out=rstd)
    torch.mul(x - mean, rstd, out=xhat)
    return xhat * weight if bias is None else torch.addcmul(bias, xhat, weight)


def layer_norm_backward(dy: Tensor, weight: Tensor, xhat: Tensor, rstd: Tensor) -> Tensor:
    """dL/dx of :func:`layer_norm` from dL/dy (the gain and shift gradients are column sums)."""
    dxhat = dy * weight
    proj = (dxhat * xhat).mean(1, keepdim=True)
    return (dxhat - dxhat.mean(1, keepdim=True)).sub_(xhat * proj).mul_(rstd)


def zone(new: Tensor, prev: Tensor, keep: Tensor | None) -> Tensor:
    """Zoneout: ``keep * prev + (1 - keep) * new`` (``new`` itself without zoneout).

    Written as two products so that ``keep = 1`` gives ``prev`` exactly.
    """
    return new if keep is None else torch.addcmul(keep * prev, 1 - keep, new)


def zone_backward(d: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Split dL/d(output) of :func:`zone` into dL/d(new) and the direct dL/d(prev)."""
    return (d, None) if keep is None else (d - d * keep, d * keep)


class Recurrence:
    """The recurrent input of the gates, ``LN_h(W_hh (m * h_{t-1}))``, and its backward.

    Keeps per row what backward needs: the masked state (for the weight gradient) and the
    normalized product with its inverse standard deviation.
    """

    def __init__(self, w_hh: Tensor, ln: Tensor | None, mask: Tensor | None, h_prev: Tensor):
        n = h_prev.shape[0]
        self.w_hh, self.ln, self.mask = w_hh, ln, mask
        self.inputs = h_prev if mask is None else torch.empty_like(h_prev)  # (N, H_out)
        self.xhat = h_prev.new_empty(n, w_hh.shape[0]) if ln is not None else None
        self.rstd = h_prev.new_empty(n, 1) if ln is not None else None
        self.d_product = torch.empty_like(self.xhat) if ln is not None else None  # (N, G*H)

    def forward(self, r: slice, h: Tensor) -> Tensor:
        """``(b, G*H)`` for rows ``r`` whose previous state is ``h`` ``(b, H_out)``."""
        if self.mask is not None:
            h = torch.mul(h, self.mask[: h.shape[0]], out=self.inputs[r])
        product = h @ self.w_hh.t()
        if self.ln is None:
            return product
        return layer_norm(product, self.ln, None, self.xhat[r], self.rstd[r])

    def backward(self, r: slice, d_out: Tensor) -> Tensor:
        """dL/dh_{t-1} ``(b, H_out)`` through the gates, from dL/d(forward's result)."""
        d = d_out
        if self.ln is not None:
            d = layer_norm_backward(d_out, self.ln, self.xhat[r], self.rstd[r])
            self.d_product[r] = d
        dh = d @ self.w_hh
        return dh if self.mask is None else dh.mul_(self.mask[: dh.shape[0]])

    def gain_grad(self, r: slice, d_out: Tensor, acc: Tensor) -> None:
        """Add this step's contribution to the normalization gain's gradient into ``acc``."""
        if self.ln is not None:
            acc.add_((d_out * self.xhat[r]).sum(0))

    def weight_grad(self, d_out_all: Tensor) -> Tensor:
        """dL/dW_hh as one product over all N rows."""
        d = d_out_all if self.ln is None else self.d_product
        return d.t() @ self.inputs


def _keep(keep: Tensor | None, r: slice) -> Tensor | None:
    return None if keep is None else keep[r]


class RegularizedLSTMFunction(torch.autograd.Function):
    """``(gx, h0, c0, w_hh, ln_h, ln_c_weight, ln_c_bias, mask, keep_h, keep_c, sizes, reverse)
    -> (y, h_n, c_n)``; ``gx`` ``(N, 4H)`` is the input side of the gates with both biases."""

    @staticmethod
    def forward(
        ctx: Any, gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, ln_h: Tensor | None,
        ln_cw: Tensor | None, ln_cb: Tensor | None, mask: Tensor | None, keep_h: Tensor | None,
        keep_c: Tensor | None, sizes: list[int], reverse: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        sched = Schedule(sizes, reverse)
        hidden = c0.shape[1]
        h_prev, y = sched.state_buffers(h0)  # (N, H) each
        c_prev, c = sched.state_buffers(c0)
        rec = Recurrence(w_hh, ln_h, mask, h_prev)
        gates = torch.empty_like(gx)  # activations i, f, g, o (N, 4H)
        tanh_c = torch.empty_like(c)
        xhat_c = torch.empty_like(c) if ln_cw is not None else None
        rstd_c = c.new_empty(c.shape[0], 1) if ln_cw is not None else None
        for t in sched.order:
            r = sched.rows(t)
            g = torch.add(gx[r], rec.forward(r, h_prev[r]), out=gates[r])
            g[:, : 2 * hidden].sigmoid_()
            g[:, 2 * hidden : 3 * hidden].tanh_()
            g[:, 3 * hidden :].sigmoid_()
            i, f, cand, o = g.chunk(4, 1)
            c_new = torch.addcmul(f * c_prev[r], i, cand)  # (b, H)
            c_out = c_new
            if ln_cw is not None:
                c_out = layer_norm(c_new, ln_cw, ln_cb, xhat_c[r], rstd_c[r])
            h_new = o * torch.tanh(c_out, out=tanh_c[r])
            c[r] = zone(c_new, c_prev[r], _keep(keep_c, r))
            y[r] = zone(h_new, h_prev[r], _keep(keep_h, r))
            sched.carry(t, h_prev, y, h0)
            sched.carry(t, c_prev, c, c0)
        ctx.save_for_backward(y)
        ctx.state = (sched, rec, gates, c_prev, tanh_c, xhat_c, rstd_c, ln_cw, keep_h, keep_c)
        return y, sched.final_state(y), sched.final_state(c)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n, dc_n):  # noqa: ANN001
        (y,) = ctx.saved_tensors
        sched, rec, gates, c_prev, tanh_c, xhat_c, rstd_c, ln_cw, keep_h, keep_c = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()  # running dL/dh (B, H)
        dc = grad_or_zeros(dc_n, tanh_c[: sched.batch]).clone()
        d_gates = torch.empty_like(gates)
        d_c_out = torch.empty_like(tanh_c) if ln_cw is not None else None
        d_ln_h = gates.new_zeros(gates.shape[1]) if rec.ln is not None else None
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_backward(dh[:b] + dy[r], _keep(keep_h, r))
            dc_new, dc_prev = zone_backward(dc[:b], _keep(keep_c, r))
            i, f, cand, o = gates[r].chunk(4, 1)
            di, df, dcand, do = d_gates[r].chunk(4, 1)
            tc = tanh_c[r]
            torch.mul(dh_new * tc, o * (1 - o), out=do)
            d_out = dh_new * o * (1 - tc * tc)  # dL/d(c or its normalization) through tanh
            if ln_cw is not None:
                d_c_out[r] = d_out
                d_out = layer_norm_backward(d_out, ln_cw, xhat_c[r], rstd_c[r])
            dc_new = dc_new + d_out
            torch.mul(dc_new * cand, i * (1 - i), out=di)
            torch.mul(dc_new * c_prev[r], f * (1 - f), out=df)
            torch.mul(dc_new * i, 1 - cand * cand, out=dcand)
            dc_new.mul_(f)
            dc[:b] = dc_new if dc_prev is None else dc_new.add_(dc_prev)
            rec.gain_grad(r, d_gates[r], d_ln_h)
            dh_rec = rec.backward(r, d_gates[r])
            dh[:b] = dh_rec if dh_prev is None else dh_rec.add_(dh_prev)
        dw_hh = rec.weight_grad(d_gates)
        d_ln_cw = d_ln_cb = None
        if ln_cw is not None:
            d_ln_cw, d_ln_cb = (d_c_out * xhat_c).sum(0), d_c_out.sum(0)
        return d_gates, dh, dc, dw_hh, d_ln_h, d_ln_cw, d_ln_cb, None, None, None, None, None


class RegularizedGRUFunction(torch.autograd.Function):
    """``(gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse) -> (y, h_n)``; ``gx``
    ``(N, 3H)`` is the input side ``LN_x(W_ih x) + b_ih`` (``b_hh`` stays inside ``r * (...)``)."""

    @staticmethod
    def forward(ctx: Any, gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse):  # noqa: ANN001
        sched = Schedule(sizes, reverse)
        hidden = h0.shape[1]
        h_prev, y = sched.state_buffers(h0)
        rec = Recurrence(w_hh, ln_h, mask, h_prev)
        gates = torch.empty_like(gx)  # r, z, n (N, 3H)
        gh = torch.empty_like(gx)  # the recurrent side with its bias (N, 3H)
        for t in sched.order:
            r = sched.rows(t)
            gh_t = rec.forward(r, h_prev[r])
            gh_t = gh_t if b_hh is None else gh_t.add_(b_hh)
            gh[r] = gh_t
            g = gates[r]
            torch.add(gx[r][:, : 2 * hidden], gh_t[:, : 2 * hidden], out=g[:, : 2 * hidden])
            g[:, : 2 * hidden].sigmoid_()
            reset, update, n = g.chunk(3, 1)
            torch.addcmul(gx[r][:, 2 * hidden :], reset, gh_t[:, 2 * hidden :], out=n).tanh_()
            h_new = torch.addcmul(n, update, h_prev[r] - n)  # (1 - z) n + z h_{t-1}
            y[r] = zone(h_new, h_prev[r], _keep(keep_h, r))
            sched.carry(t, h_prev, y, h0)
        ctx.save_for_backward(y)
        ctx.state = (sched, rec, gates, gh, h_prev, keep_h, b_hh is not None)
        return y, sched.final_state(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        (y,) = ctx.saved_tensors
        sched, rec, gates, gh, h_prev, keep_h, has_bias = ctx.state
        hidden = h_prev.shape[1]
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()
        d_gx, d_gh = torch.empty_like(gates), torch.empty_like(gh)
        d_ln_h = gates.new_zeros(gates.shape[1]) if rec.ln is not None else None
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_backward(dh[:b] + dy[r], _keep(keep_h, r))
            reset, update, n = gates[r].chunk(3, 1)
            d_reset, d_update, d_hn = d_gh[r].chunk(3, 1)
            d_n = torch.mul(dh_new * (1 - update), 1 - n * n, out=d_gx[r][:, 2 * hidden :])
            torch.mul(d_n * gh[r][:, 2 * hidden :], reset * (1 - reset), out=d_reset)
            torch.mul(dh_new * (h_prev[r] - n), update * (1 - update), out=d_update)
            torch.mul(d_n, reset, out=d_hn)
            rec.gain_grad(r, d_gh[r], d_ln_h)
            dh_t = rec.backward(r, d_gh[r]).addcmul_(dh_new, update)
            dh[:b] = dh_t if dh_prev is None else dh_t.add_(dh_prev)
        d_gx[:, : 2 * hidden] = d_gh[:, : 2 * hidden]
        db_hh = d_gh.sum(0) if has_bias else None
        return d_gx, dh, rec.weight_grad(d_gh), db_hh, d_ln_h, None, None, None, None


class RegularizedRNNFunction(torch.autograd.Function):
    """``(gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse) -> (y, h_n)``; ``gx``
    ``(N, H)`` is the input side with both biases."""

    @staticmethod
    def forward(ctx: Any, gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse):  # noqa: ANN001
        sched = Schedule(sizes, reverse)
        h_prev, y = sched.state_buffers(h0)
        rec = Recurrence(w_hh, ln_h, mask, h_prev)
        act = torch.empty_like(gx)  # the new state before zoneout (N, H)
        for t in sched.order:
            r = sched.rows(t)
            pre = torch.add(gx[r], rec.forward(r, h_prev[r]), out=act[r])
            pre.relu_() if relu else pre.tanh_()
            y[r] = zone(act[r], h_prev[r], _keep(keep_h, r))
            sched.carry(t, h_prev, y, h0)
        ctx.save_for_backward(y)
        ctx.state = (sched, rec, act, keep_h, relu)
        return y, sched.final_state(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        (y,) = ctx.saved_tensors
        sched, rec, act, keep_h, relu = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()
        d_pre = torch.empty_like(act)
        d_ln_h = act.new_zeros(act.shape[1]) if rec.ln is not None else None
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_backward(dh[:b] + dy[r], _keep(keep_h, r))
            a = act[r]
            torch.mul(dh_new, a > 0 if relu else 1 - a * a, out=d_pre[r])
            rec.gain_grad(r, d_pre[r], d_ln_h)
            dh_t = rec.backward(r, d_pre[r])
            dh[:b] = dh_t if dh_prev is None else dh_t.add_(dh_prev)
        return d_pre, dh, rec.weight_grad(d_pre), d_ln_h, None, None, None, None, None
