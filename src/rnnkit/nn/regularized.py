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

The hand-written backward is exact but not itself differentiable; when autograd records a graph
of the gradient (``create_graph=True``: double backward, gradient penalties), backward instead
differentiates that reference, recomputed from the saved arguments with the same masks
(:meth:`rnnkit.nn.transforms.ReferencedFunction.reference_grads`). For that each Function keeps
its arguments, the input side ``gx`` ``(N, G*H)`` among them, until backward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.nn import regularized_native
from rnnkit.nn.regularized_cells import EPS, CellWeights, run_reference
from rnnkit.nn.schedule import Schedule, grad_or_zeros
from rnnkit.nn.transforms import ReferencedFunction, save_arguments, saved_arguments


class Norm:
    """Layer normalization of ``(b, F)`` rows, step by step, with buffers for backward.

    Forward and backward are torch's fused kernels (``native_layer_norm`` and its backward);
    the gain and shift gradients are formed once over all N rows at the end.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, rows: int) -> None:
        self.weight, self.bias = weight, bias
        self.inputs = weight.new_empty(rows, weight.shape[0])  # (N, F), the normalized values
        self.mean = weight.new_empty(rows, 1)
        self.rstd = weight.new_empty(rows, 1)
        self.d_outputs = torch.empty_like(self.inputs)  # dL/d(output), filled by backward

    def forward(self, r: slice) -> Tensor:
        """Normalize rows ``r`` of :attr:`inputs` (the caller writes them there)."""
        y, self.mean[r], self.rstd[r] = torch.native_layer_norm(
            self.inputs[r], self.weight.shape, self.weight, self.bias, EPS
        )
        return y

    def backward(self, r: slice, dy: Tensor) -> Tensor:
        self.d_outputs[r] = dy
        mask = [True, False, False]
        return torch.ops.aten.native_layer_norm_backward(
            dy, self.inputs[r], self.weight.shape, self.mean[r], self.rstd[r], self.weight,
            self.bias, mask,
        )[0]  # fmt: skip

    def parameter_grads(self) -> tuple[Tensor, Tensor | None]:
        """dL/d(gain) and dL/d(shift) (None without a shift), as sums over all rows."""
        return norm_grads(self.d_outputs, self.inputs, self.mean, self.rstd, self.bias is not None)


def norm_grads(d_out: Tensor, inputs: Tensor, mean: Tensor, rstd: Tensor,
               shift: bool) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """Gain and shift gradients of a layer normalization over all N rows: one pass each."""
    xhat = (inputs - mean).mul_(rstd)  # (N, F)
    return (d_out * xhat).sum(0), (d_out.sum(0) if shift else None)


class Zone:
    """Zoneout's mixing ``k * prev + (1 - k) * new`` for the rows of each step, and its backward.

    Two products, so that ``k = 1`` gives ``prev`` exactly (``zoneout=1.0``); ``1 - k`` is formed
    once for all rows.
    """

    def __init__(self, keep: Tensor | None) -> None:
        self.keep = keep
        self.update = None if keep is None else 1 - keep  # (N, H)

    def forward(self, r: slice, new: Tensor, prev: Tensor, out: Tensor) -> None:
        """Write the mixed state into ``out``."""
        if self.keep is None:
            out.copy_(new)
        else:
            torch.mul(new, self.update[r], out=out).addcmul_(self.keep[r], prev)

    def backward(self, r: slice, d: Tensor) -> tuple[Tensor, Tensor | None]:
        """dL/d(new) and the direct dL/d(prev) (None without zoneout) from dL/d(out)."""
        if self.keep is None:
            return d, None
        return d * self.update[r], d * self.keep[r]


class Recurrence:
    """The recurrent input of the gates, ``LN_h(W_hh (m * h_{t-1}))``, and its backward.

    Keeps per row the masked state, for the weight gradient as one product over all rows.
    """

    def __init__(self, w_hh: Tensor, ln: Tensor | None, mask: Tensor | None, h_prev: Tensor):
        rows = h_prev.shape[0]
        self.w_hh, self.mask, self.ln = w_hh, mask, ln
        self.inputs = h_prev if mask is None else torch.empty_like(h_prev)  # (N, H_out)
        self.norm = Norm(ln, None, rows) if ln is not None else None
        self.d_product = h_prev.new_empty(rows, w_hh.shape[0]) if ln is not None else None

    def forward(self, r: slice, h: Tensor) -> Tensor:
        """``(b, G*H)`` for rows ``r`` whose previous state is ``h`` ``(b, H_out)``."""
        if self.mask is not None:
            h = torch.mul(h, self.mask[: h.shape[0]], out=self.inputs[r])
        if self.norm is None:
            return h @ self.w_hh.t()
        torch.mm(h, self.w_hh.t(), out=self.norm.inputs[r])
        return self.norm.forward(r)

    def backward(self, r: slice, d_out: Tensor) -> Tensor:
        """dL/dh_{t-1} ``(b, H_out)`` through the gates, from dL/d(forward's result)."""
        d = d_out
        if self.norm is not None:
            d = self.d_product[r] = self.norm.backward(r, d_out)
        dh = d @ self.w_hh
        return dh if self.mask is None else dh.mul_(self.mask[: dh.shape[0]])

    def grads(self, d_out_all: Tensor) -> tuple[Tensor, Tensor | None]:
        """dL/dW_hh as one product over all N rows, and dL/d(gain) of the normalization."""
        if self.norm is None:
            return d_out_all.t() @ self.inputs, None
        return self.d_product.t() @ self.inputs, self.norm.parameter_grads()[0]


def _keep(keep: Tensor | None, r: slice) -> Tensor | None:
    return None if keep is None else keep[r]


class RegularizedLSTMFunction(ReferencedFunction):
    """``(gx, h0, c0, w_hh, ln_h, ln_c_weight, ln_c_bias, mask, keep_h, keep_c, sizes, reverse,
    native) -> (y, h_n, c_n)``; ``gx`` ``(N, 4H)`` is the input side of the gates with both
    biases. ``native=True`` runs the time loop in C (``regularized.c``) when it is available."""

    @staticmethod
    def forward(
        ctx: Any, gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, ln_h: Tensor | None,
        ln_cw: Tensor | None, ln_cb: Tensor | None, mask: Tensor | None, keep_h: Tensor | None,
        keep_c: Tensor | None, sizes: list[int], reverse: bool, native_: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        sched = Schedule(sizes, reverse)
        args = (gx, h0, c0, w_hh, ln_h, ln_cw, ln_cb, mask, keep_h, keep_c, sizes, reverse, native_)
        ctx.native = _use_c(native_, *args[:10])
        if ctx.native:
            save_arguments(ctx, args)
            return _lstm_forward_native(ctx, sched, gx, h0, c0, w_hh, ln_h, (ln_cw, ln_cb), mask,
                                        (keep_h, keep_c))  # fmt: skip
        hidden = c0.shape[1]
        h_prev, y = sched.state_buffers(h0)  # (N, H) each
        c_prev, c = sched.state_buffers(c0)
        rec = Recurrence(w_hh, ln_h, mask, h_prev)
        norm_c = Norm(ln_cw, ln_cb, c.shape[0]) if ln_cw is not None else None
        zone_h, zone_c = Zone(keep_h), Zone(keep_c)
        gates = torch.empty_like(gx)  # activations i, f, g, o (N, 4H)
        tanh_c = torch.empty_like(c)
        for t in sched.order:
            r = sched.rows(t)
            g = torch.add(gx[r], rec.forward(r, h_prev[r]), out=gates[r])
            g[:, : 2 * hidden].sigmoid_()
            g[:, 2 * hidden : 3 * hidden].tanh_()
            g[:, 3 * hidden :].sigmoid_()
            i, f, cand, o = g.chunk(4, 1)
            c_new = torch.mul(f, c_prev[r], out=None if norm_c is None else norm_c.inputs[r])
            c_new.addcmul_(i, cand)  # (b, H)
            c_out = c_new if norm_c is None else norm_c.forward(r)
            h_new = o * torch.tanh(c_out, out=tanh_c[r])
            zone_c.forward(r, c_new, c_prev[r], c[r])
            zone_h.forward(r, h_new, h_prev[r], y[r])
            sched.carry(t, h_prev, y, h0)
            sched.carry(t, c_prev, c, c0)
        save_arguments(ctx, args, y)
        ctx.state = (sched, rec, norm_c, zone_h, zone_c, gates, c_prev, tanh_c)
        return y, sched.final_state(y), sched.final_state(c)

    @staticmethod
    def reference(gx, h0, c0, w_hh, ln_h, ln_cw, ln_cb, mask, keep_h, keep_c, sizes, reverse,  # noqa: ANN001, ANN205
                  native_=False):  # noqa: ANN001  # fmt: skip
        w = CellWeights(None, w_hh, None, None, None, ln_h, ln_cw, ln_cb)
        y, (h_n, c_n) = run_reference("LSTM", gx, [h0, c0], w, mask, (keep_h, keep_c), sizes,
                                      reverse)  # fmt: skip
        return y, h_n, c_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n, dc_n):  # noqa: ANN001
        args, saved = saved_arguments(ctx)
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            grads = (dy, dh_n, dc_n)
            return RegularizedLSTMFunction.reference_grads(args, grads, ctx.needs_input_grad)
        if ctx.native:
            return _lstm_backward_native(ctx, args[3], dy, dh_n, dc_n)
        (y,) = saved
        sched, rec, norm_c, zone_h, zone_c, gates, c_prev, tanh_c = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()  # running dL/dh (B, H)
        dc = grad_or_zeros(dc_n, tanh_c[: sched.batch]).clone()
        d_gates = torch.empty_like(gates)
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_h.backward(r, dh[:b] + dy[r])
            dc_new, dc_prev = zone_c.backward(r, dc[:b])
            i, f, cand, o = gates[r].chunk(4, 1)
            di, df, dcand, do = d_gates[r].chunk(4, 1)
            tc = tanh_c[r]
            torch.mul(dh_new * tc, o * (1 - o), out=do)
            d_out = dh_new * o * (1 - tc * tc)  # dL/d(c or its normalization) through tanh
            dc_new = dc_new + (d_out if norm_c is None else norm_c.backward(r, d_out))
            torch.mul(dc_new * cand, i * (1 - i), out=di)
            torch.mul(dc_new * c_prev[r], f * (1 - f), out=df)
            torch.mul(dc_new * i, 1 - cand * cand, out=dcand)
            dc_new.mul_(f)
            dc[:b] = dc_new if dc_prev is None else dc_new.add_(dc_prev)
            dh_rec = rec.backward(r, d_gates[r])
            dh[:b] = dh_rec if dh_prev is None else dh_rec.add_(dh_prev)
        dw_hh, d_ln_h = rec.grads(d_gates)
        d_ln_cw, d_ln_cb = norm_c.parameter_grads() if norm_c is not None else (None, None)
        return d_gates, dh, dc, dw_hh, d_ln_h, d_ln_cw, d_ln_cb, None, None, None, None, None, None


def _lstm_forward_native(ctx: Any, sched: Schedule, gx: Tensor, h0: Tensor, c0: Tensor,
                         w_hh: Tensor, ln_h: Tensor | None, ln_c: tuple, mask: Tensor | None,
                         keep: tuple) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """:class:`RegularizedLSTMFunction`'s forward with the time loop in C."""
    n, hidden = sched.total, c0.shape[1]

    def rows(width: int, wanted: object = True) -> Tensor | None:
        return gx.new_empty(n, width) if wanted is not None else None

    buffers = {
        "hin": rows(hidden), "cp": rows(hidden), "g": rows(4 * hidden), "tc": rows(hidden),
        "rec_in": rows(4 * hidden, ln_h), "rec_mean": rows(1, ln_h), "rec_rstd": rows(1, ln_h),
        "c_in": rows(hidden, ln_c[0]), "c_mean": rows(1, ln_c[0]), "c_rstd": rows(1, ln_c[0]),
    }  # fmt: skip
    y, h_n, c_n = regularized_native.lstm_forward(
        sched, gx, w_hh, ln_h, ln_c, mask, keep, h0, c0, buffers
    )
    ctx.state = (sched, buffers, ln_h, ln_c[0], mask, keep)
    return y, h_n, c_n


def _lstm_backward_native(ctx: Any, w_hh: Tensor, dy: Tensor | None, dh_n: Tensor | None,
                          dc_n: Tensor | None) -> tuple:  # fmt: skip
    sched, buffers, ln_h, ln_cw, mask, keep = ctx.state
    like = buffers["tc"]
    dy = grad_or_zeros(dy, like)
    dh_n = grad_or_zeros(dh_n, like[: sched.batch])
    dc_n = grad_or_zeros(dc_n, like[: sched.batch])
    d_gates, d_rec, dh, dc, d_ln_h, d_ln_cw, d_ln_cb = regularized_native.lstm_backward(
        sched, w_hh, ln_h, ln_cw, mask, keep, buffers, dy, dh_n, dc_n
    )
    dw_hh = _recurrent_weight_grad(d_gates, d_rec, buffers)
    return d_gates, dh, dc, dw_hh, d_ln_h, d_ln_cw, d_ln_cb, None, None, None, None, None, None


class RegularizedGRUFunction(ReferencedFunction):
    """``(gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse, native) -> (y, h_n)``; ``gx``
    ``(N, 3H)`` is the input side ``LN_x(W_ih x) + b_ih`` (``b_hh`` stays inside ``r * (...)``)."""

    @staticmethod
    def forward(ctx: Any, gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse, native_=False):  # noqa: ANN001, E501
        sched = Schedule(sizes, reverse)
        args = (gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse, native_)
        ctx.native = _use_c(native_, *args[:7])
        if ctx.native:
            y, h_n, buffers = regularized_native.gru_forward(sched, gx, w_hh, b_hh, ln_h, mask,
                                                             keep_h, h0)  # fmt: skip
            save_arguments(ctx, args)
            ctx.state = (sched, buffers, ln_h, mask, keep_h, b_hh is not None)
            return y, h_n
        hidden = h0.shape[1]
        h_prev, y = sched.state_buffers(h0)
        rec, zone_h = Recurrence(w_hh, ln_h, mask, h_prev), Zone(keep_h)
        gates = torch.empty_like(gx)  # r, z, n (N, 3H)
        gh = torch.empty_like(gx)  # the recurrent side with its bias (N, 3H)
        for t in sched.order:
            r = sched.rows(t)
            gh_t = rec.forward(r, h_prev[r])
            gh_t = gh[r].copy_(gh_t) if b_hh is None else torch.add(gh_t, b_hh, out=gh[r])
            g = gates[r]
            torch.add(gx[r][:, : 2 * hidden], gh_t[:, : 2 * hidden], out=g[:, : 2 * hidden])
            g[:, : 2 * hidden].sigmoid_()
            reset, update, n = g.chunk(3, 1)
            torch.addcmul(gx[r][:, 2 * hidden :], reset, gh_t[:, 2 * hidden :], out=n).tanh_()
            h_new = torch.addcmul(n, update, h_prev[r] - n)  # (1 - z) n + z h_{t-1}
            zone_h.forward(r, h_new, h_prev[r], y[r])
            sched.carry(t, h_prev, y, h0)
        save_arguments(ctx, args, y)
        ctx.state = (sched, rec, zone_h, gates, gh, h_prev, b_hh is not None)
        return y, sched.final_state(y)

    @staticmethod
    def reference(gx, h0, w_hh, b_hh, ln_h, mask, keep_h, sizes, reverse, native_=False):  # noqa: ANN001, ANN205
        w = CellWeights(None, w_hh, None, b_hh, None, ln_h)
        y, (h_n,) = run_reference("GRU", gx, [h0], w, mask, (keep_h, None), sizes, reverse)
        return y, h_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        args, saved = saved_arguments(ctx)
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            return RegularizedGRUFunction.reference_grads(args, (dy, dh_n), ctx.needs_input_grad)
        if ctx.native:
            return _gru_backward_native(ctx, args[2], dy, dh_n)
        (y,) = saved
        sched, rec, zone_h, gates, gh, h_prev, has_bias = ctx.state
        hidden = h_prev.shape[1]
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()
        d_gx, d_gh = torch.empty_like(gates), torch.empty_like(gh)
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_h.backward(r, dh[:b] + dy[r])
            reset, update, n = gates[r].chunk(3, 1)
            d_reset, d_update, d_hn = d_gh[r].chunk(3, 1)
            d_n = torch.mul(dh_new * (1 - update), 1 - n * n, out=d_gx[r][:, 2 * hidden :])
            torch.mul(d_n * gh[r][:, 2 * hidden :], reset * (1 - reset), out=d_reset)
            torch.mul(dh_new * (h_prev[r] - n), update * (1 - update), out=d_update)
            torch.mul(d_n, reset, out=d_hn)
            dh_t = rec.backward(r, d_gh[r]).addcmul_(dh_new, update)
            dh[:b] = dh_t if dh_prev is None else dh_t.add_(dh_prev)
        d_gx[:, : 2 * hidden] = d_gh[:, : 2 * hidden]
        db_hh = d_gh.sum(0) if has_bias else None
        dw_hh, d_ln_h = rec.grads(d_gh)
        return d_gx, dh, dw_hh, db_hh, d_ln_h, None, None, None, None, None


class RegularizedRNNFunction(ReferencedFunction):
    """``(gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse, native) -> (y, h_n)``; ``gx``
    ``(N, H)`` is the input side with both biases."""

    @staticmethod
    def forward(ctx: Any, gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse, native_=False):  # noqa: ANN001, E501
        sched = Schedule(sizes, reverse)
        args = (gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse, native_)
        ctx.native = _use_c(native_, *args[:6])
        if ctx.native:
            y, h_n, buffers = regularized_native.rnn_forward(sched, gx, w_hh, ln_h, mask, keep_h,
                                                             relu, h0)  # fmt: skip
            save_arguments(ctx, args)
            ctx.state = (sched, buffers, ln_h, mask, keep_h, relu)
            return y, h_n
        h_prev, y = sched.state_buffers(h0)
        rec, zone_h = Recurrence(w_hh, ln_h, mask, h_prev), Zone(keep_h)
        act = torch.empty_like(gx)  # the new state before zoneout (N, H)
        for t in sched.order:
            r = sched.rows(t)
            pre = torch.add(gx[r], rec.forward(r, h_prev[r]), out=act[r])
            pre.relu_() if relu else pre.tanh_()
            zone_h.forward(r, pre, h_prev[r], y[r])
            sched.carry(t, h_prev, y, h0)
        save_arguments(ctx, args, y)
        ctx.state = (sched, rec, zone_h, act, relu)
        return y, sched.final_state(y)

    @staticmethod
    def reference(gx, h0, w_hh, ln_h, mask, keep_h, relu, sizes, reverse, native_=False):  # noqa: ANN001, ANN205
        w = CellWeights(None, w_hh, None, None, None, ln_h)
        mode = "RNN_RELU" if relu else "RNN_TANH"
        y, (h_n,) = run_reference(mode, gx, [h0], w, mask, (keep_h, None), sizes, reverse)
        return y, h_n

    @staticmethod
    def backward(ctx: Any, dy, dh_n):  # noqa: ANN001
        args, saved = saved_arguments(ctx)
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            return RegularizedRNNFunction.reference_grads(args, (dy, dh_n), ctx.needs_input_grad)
        if ctx.native:
            return _rnn_backward_native(ctx, args[2], dy, dh_n)
        (y,) = saved
        sched, rec, zone_h, act, relu = ctx.state
        dy = grad_or_zeros(dy, y)
        dh = grad_or_zeros(dh_n, y[: sched.batch]).clone()
        d_pre = torch.empty_like(act)
        for t in reversed(sched.order):
            r, b = sched.rows(t), sched.sizes[t]
            dh_new, dh_prev = zone_h.backward(r, dh[:b] + dy[r])
            a = act[r]
            torch.mul(dh_new, a > 0 if relu else 1 - a * a, out=d_pre[r])
            dh_t = rec.backward(r, d_pre[r])
            dh[:b] = dh_t if dh_prev is None else dh_t.add_(dh_prev)
        dw_hh, d_ln_h = rec.grads(d_pre)
        return d_pre, dh, dw_hh, d_ln_h, None, None, None, None, None, None


def _use_c(wanted: bool, *tensors: Tensor | None) -> bool:
    """Whether a Function runs its time loop in C: asked for, and every tensor fits the loop."""
    return wanted and regularized_native.available(*(t for t in tensors if t is not None))


def _recurrent_weight_grad(d_side: Tensor, d_rec: Tensor | None, buffers: dict) -> Tensor:
    """dL/dW_hh from the C loop's buffers, one product over all rows (the C loop has summed the
    normalization gains' gradients itself, in the pass that forms d_rec)."""
    return (d_side if d_rec is None else d_rec).t() @ buffers["hin"]


def _gru_backward_native(ctx: Any, w_hh: Tensor, dy: Tensor | None, dh_n: Tensor | None) -> tuple:
    sched, buffers, ln_h, mask, keep_h, has_bias = ctx.state
    like = buffers["hp"]
    dy, dh_n = grad_or_zeros(dy, like), grad_or_zeros(dh_n, like[: sched.batch])
    d_gx, d_gh, d_rec, dh, d_ln_h = regularized_native.gru_backward(
        sched, w_hh, ln_h, mask, keep_h, buffers, dy, dh_n
    )
    dw_hh = _recurrent_weight_grad(d_gh, d_rec, buffers)
    db_hh = d_gh.sum(0) if has_bias else None
    return d_gx, dh, dw_hh, db_hh, d_ln_h, None, None, None, None, None


def _rnn_backward_native(ctx: Any, w_hh: Tensor, dy: Tensor | None, dh_n: Tensor | None) -> tuple:
    sched, buffers, ln_h, mask, keep_h, relu = ctx.state
    like = buffers["act"]
    dy, dh_n = grad_or_zeros(dy, like), grad_or_zeros(dh_n, like[: sched.batch])
    d_pre, d_rec, dh, d_ln_h = regularized_native.rnn_backward(
        sched, w_hh, ln_h, mask, keep_h, relu, buffers, dy, dh_n
    )
    dw_hh = _recurrent_weight_grad(d_pre, d_rec, buffers)
    return d_pre, dh, dw_hh, d_ln_h, None, None, None, None, None, None
