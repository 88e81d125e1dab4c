r"""The layer options step by step in plain autograd code: the readable reference and the oracle.

Each cell is one time step of :mod:`rnnkit.nn.regularized`'s kernels, written from the equations
(``LN`` is :func:`torch.nn.functional.layer_norm` over the gate vector, ``m`` the recurrent-dropout
mask, ``k`` the zoneout weight of the previous state, 1 or 0 in training and the probability in
evaluation):

.. math::
    \text{LSTM:}\quad & i, f, g, o = \sigma, \sigma, \tanh, \sigma\big(\mathrm{LN}_{ih}(W_{ih} x_t)
        + \mathrm{LN}_{hh}(W_{hh} (m \odot h_{t-1})) + b_{ih} + b_{hh}\big) \\
    & \tilde c_t = f \odot c_{t-1} + i \odot g, \quad
      \tilde h_t = o \odot \tanh(\mathrm{LN}_c(\tilde c_t)) \\
    & c_t = k^c_t \odot c_{t-1} + (1 - k^c_t) \odot \tilde c_t, \quad
      h_t = k^h_t \odot h_{t-1} + (1 - k^h_t) \odot \tilde h_t \\
    \text{GRU:}\quad & r, z = \sigma\big(\mathrm{LN}_{ih}(W_{ih} x_t) + b_{ih}
        + \mathrm{LN}_{hh}(W_{hh} (m \odot h_{t-1})) + b_{hh}\big)_{r, z} \\
    & n = \tanh\big((\mathrm{LN}_{ih}(W_{ih} x_t) + b_{ih})_n
        + r \odot (\mathrm{LN}_{hh}(W_{hh} (m \odot h_{t-1})) + b_{hh})_n\big), \quad
      \tilde h_t = (1 - z) \odot n + z \odot h_{t-1} \\
    \text{RNN:}\quad & \tilde h_t = \tanh\big(\mathrm{LN}_{ih}(W_{ih} x_t)
        + \mathrm{LN}_{hh}(W_{hh} (m \odot h_{t-1})) + b_{ih} + b_{hh}\big)
        \ \text{(or ReLU)}

and the GRU and RNN zone out ``h`` like the LSTM. Without an option its term drops out (no
``LN``, ``m = 1``, ``k = 0``), leaving torch.nn's cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.nn.schedule import Schedule

EPS = 1e-5  # layer normalization's epsilon, torch.nn.LayerNorm's default


@dataclass
class CellWeights:
    """One layer-direction's parameters (``None`` where absent)."""

    w_ih: Tensor | None  # None: the cell is given the input side LN_ih(W_ih x) + b_ih itself
    w_hh: Tensor  # after weight drop, if any
    b_ih: Tensor | None
    b_hh: Tensor | None
    ln_ih: Tensor | None = None  # gain of LN_ih (G*H)
    ln_hh: Tensor | None = None  # gain of LN_hh (G*H)
    ln_c_weight: Tensor | None = None  # gain of LN_c (H), LSTM only
    ln_c_bias: Tensor | None = None  # shift of LN_c (H), LSTM only
    w_hr: Tensor | None = None  # LSTM projection (H_out, H); only with weight drop


def _ln(v: Tensor, weight: Tensor | None, bias: Tensor | None = None) -> Tensor:
    return v if weight is None else F.layer_norm(v, v.shape[-1:], weight, bias, EPS)


def _add_bias(v: Tensor, bias: Tensor | None) -> Tensor:
    return v if bias is None else v + bias


def _zoneout(new: Tensor, prev: Tensor, keep: Tensor | None) -> Tensor:
    return new if keep is None else keep * prev + (1 - keep) * new


def _sides(x: Tensor, h: Tensor, w: CellWeights, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The input side and the recurrent side of the gates, each with its own bias (``x`` is the
    input side already when ``w.w_ih`` is None)."""
    hm = h if mask is None else mask * h
    side_x = x if w.w_ih is None else _add_bias(_ln(F.linear(x, w.w_ih), w.ln_ih), w.b_ih)
    side_h = _add_bias(_ln(F.linear(hm, w.w_hh), w.ln_hh), w.b_hh)
    return side_x, side_h


def lstm_cell(x: Tensor, state: tuple[Tensor, Tensor], w: CellWeights, mask: Tensor | None,
              keep: tuple[Tensor | None, Tensor | None]) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One LSTM step: ``x`` ``(b, I)``, ``state`` ``(h, c)`` ``(b, H)``, ``keep = (k_h, k_c)``."""
    h, c = state
    side_x, side_h = _sides(x, h, w, mask)
    i, f, g, o = (side_x + side_h).chunk(4, 1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    h_new = o * torch.tanh(_ln(c_new, w.ln_c_weight, w.ln_c_bias))
    if w.w_hr is not None:
        h_new = F.linear(h_new, w.w_hr)
    return _zoneout(h_new, h, keep[0]), _zoneout(c_new, c, keep[1])


def gru_cell(x: Tensor, state: tuple[Tensor], w: CellWeights, mask: Tensor | None,
             keep: tuple[Tensor | None, ...]) -> tuple[Tensor]:  # fmt: skip
    """One GRU step (torch's variant: the reset gate scales the recurrent side of ``n``)."""
    (h,) = state
    side_x, side_h = _sides(x, h, w, mask)
    xr, xz, xn = side_x.chunk(3, 1)
    hr, hz, hn = side_h.chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (_zoneout((1 - z) * n + z * h, h, keep[0]),)


def rnn_cell(x: Tensor, state: tuple[Tensor], w: CellWeights, mask: Tensor | None,
             keep: tuple[Tensor | None, ...], relu: bool = False) -> tuple[Tensor]:  # fmt: skip
    """One Elman step, ``tanh`` or ReLU."""
    (h,) = state
    side_x, side_h = _sides(x, h, w, mask)
    pre = side_x + side_h
    return (_zoneout(torch.relu(pre) if relu else torch.tanh(pre), h, keep[0]),)


def run_reference(mode: str, x: Tensor, init: list[Tensor], w: CellWeights, mask: Tensor | None,
                  keep: tuple[Tensor | None, Tensor | None], sizes: list[int],
                  reverse: bool) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """Step a cell over a packed batch (rows ``(N, I)``, see :mod:`rnnkit.nn.schedule`).

    Returns ``(y, finals)`` like the kernels: ``y`` ``(N, H)`` and the final states ``(B, H)``.
    Rows of sequences that have not started (reversed direction) or have finished hold their
    state, so one ``(B, H)`` tensor per state serves every step.
    """
    sched = Schedule(sizes, reverse)
    states = list(init)  # each (B, width)
    outs: dict[int, Tensor] = {}
    for t in sched.order:
        r, b = sched.rows(t), sched.sizes[t]
        step_keep = tuple(None if k is None else k[r] for k in keep)
        step_mask = None if mask is None else mask[:b]
        active = tuple(s[:b] for s in states)
        if mode == "LSTM":
            new = lstm_cell(x[r], active, w, step_mask, step_keep)
        elif mode == "GRU":
            new = gru_cell(x[r], active, w, step_mask, step_keep)
        else:
            new = rnn_cell(x[r], active, w, step_mask, step_keep, relu=mode == "RNN_RELU")
        states = [torch.cat([n, s[b:]]) for n, s in zip(new, states)]
        outs[t] = new[0]
    return torch.cat([outs[t] for t in range(len(sizes))]), states
