"""One time step of each recurrence in plain, differentiable torch ops, and a loop of them over a
packed schedule: the autograd reference of the kernels.

The cells (:mod:`rnnkit.nn.cells`) are these steps. The layers run :func:`run` instead of the
hand-written kernels where only plain torch ops will do: under ``torch.func`` transforms (``grad``,
``vmap``, ``jacrev``, ``jvp``) and forward-mode AD, and inside the kernels' backward when autograd
records a graph of the gradient (``create_graph=True``: double backward, gradient penalties), where
the hand-written backward would give a gradient that autograd cannot differentiate further.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rnn_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
             b_hh: Tensor | None, relu: bool) -> Tensor:  # fmt: skip
    r""":math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})` (or ReLU)."""
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_step(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, w_hr: Tensor | None = None
              ) -> tuple[Tensor, Tensor]:  # fmt: skip
    r"""Gates ``i, f, g, o``; :math:`c' = f c + i g`, :math:`h' = W_{hr} (o \tanh c')`."""
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return (h_new if w_hr is None else F.linear(h_new, w_hr)), c_new


def gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
             b_hh: Tensor | None) -> Tensor:  # fmt: skip
    r"""torch's GRU: :math:`n = \tanh(W_{in} x + b_{in} + r (W_{hn} h + b_{hn}))`,
    :math:`h' = (1 - z) n + z h`."""
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def run(
    mode: str, x: Tensor, states: list[Tensor], params: list[Tensor | None], sizes: list[int],
    reverse: bool,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """One layer-direction over packed rows with differentiable ops: ``(y, final states)``.

    Args:
        mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.
        x: ``(N, I)`` packed rows; step ``t`` owns the next ``sizes[t]`` rows.
        states: ``[h0]`` or ``[h0, c0]``, each ``(B, width)``.
        params: ``[w_ih, w_hh, b_ih, b_hh, w_hr]`` (``None`` where absent).
        sizes: active batch per step (non-increasing); ``reverse``: walk the steps backwards.

    A sequence that has ended keeps its state: step ``t`` updates only the first ``sizes[t]`` rows.
    """
    w_ih, w_hh, b_ih, b_hh, w_hr = params
    starts = [0]
    for size in sizes[:-1]:
        starts.append(starts[-1] + size)
    outs: list[Tensor] = [x] * len(sizes)
    order = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    for t in order:
        b, xt = sizes[t], x[starts[t] : starts[t] + sizes[t]]
        if mode == "LSTM":
            h, c = lstm_step(xt, states[0][:b], states[1][:b], w_ih, w_hh, b_ih, b_hh, w_hr)
            new = [h, c]
        elif mode == "GRU":
            new = [gru_step(xt, states[0][:b], w_ih, w_hh, b_ih, b_hh)]
        else:
            new = [rnn_step(xt, states[0][:b], w_ih, w_hh, b_ih, b_hh, mode == "RNN_RELU")]
        states = [torch.cat([n, s[b:]]) if b < s.shape[0] else n for n, s in zip(new, states)]
        outs[t] = new[0]
    return torch.cat(outs), states
