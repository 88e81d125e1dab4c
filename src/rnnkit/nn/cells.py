"""One time step of an RNN, LSTM or GRU, in plain autograd code: the readable reference.

A cell maps ``(x_t, state_{t-1})`` to ``state_t``; it does not loop over time. The layers in
:mod:`rnnkit.nn.layers` run whole sequences with the hand-written kernels, and the tests check that
stepping these cells by hand over a sequence gives the same result. Parameter names, shapes, gate
order and initialisation are torch.nn's, so ``load_state_dict`` works in both directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.checks import (
    check_dtype,
    check_input,
    check_nonlinearity,
    check_sizes,
    check_state,
    init_uniform,
)


class _CellBase(nn.Module):
    """Parameters ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh`` (G*H)."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        check_dtype(dtype)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        kw = {"device": device, "dtype": dtype}
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **kw))
            self.bias_hh = nn.Parameter(torch.empty(rows, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_uniform(self.parameters(), self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s

    def _batch(self, input: Tensor) -> tuple[Tensor, bool]:
        """Check ``input`` and return it as ``(B, I)`` plus whether it was batched."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        check_input(input, self.weight_ih, self.input_size, name)
        return (input, True) if input.dim() == 2 else (input.unsqueeze(0), False)

    def _state(self, state: Tensor | None, input: Tensor, batched: bool, what: str) -> Tensor:
        """The ``(B, H)`` state: zeros when not given, checked against the input otherwise."""
        if state is None:
            return input.new_zeros(input.shape[0], self.hidden_size)
        expected = (input.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        check_state(state, expected, what, input)
        return state if batched else state.unsqueeze(0)


class RNNCell(_CellBase):
    r"""An Elman RNN cell: :math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})` (or ReLU).

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: use ``bias_ih`` and ``bias_hh``.
        nonlinearity: ``'tanh'`` or ``'relu'``.

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` ``(B, H)`` or ``(H,)``, zeros if omitted.
    Outputs: ``h'`` with the shape of ``hx``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._batch(input)
        h = self._state(hx, x, batched, "hx")
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        h_new = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h_new if batched else h_new.squeeze(0)


class LSTMCell(_CellBase):
    r"""A long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::
        i, f, g, o = \sigma, \sigma, \tanh, \sigma (W_{ih} x + b_{ih} + W_{hh} h + b_{hh}) \\
        c' = f \odot c + i \odot g, \qquad h' = o \odot \tanh(c')

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` = ``(h, c)``, each ``(B, H)`` or ``(H,)``,
    zeros if omitted. Outputs: ``(h', c')``.
    """

    gates = 4

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, batched = self._batch(input)
        h0, c0 = (None, None) if hx is None else hx
        h = self._state(h0, x, batched, "hx[0]")
        c = self._state(c0, x, batched, "hx[1]")
        gates = F.linear(x, self.weight_ih, self.bias_ih)
        gates = gates + F.linear(h, self.weight_hh, self.bias_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        if not batched:
            return h_new.squeeze(0), c_new.squeeze(0)
        return h_new, c_new


class GRUCell(_CellBase):
    r"""A gated recurrent unit cell (Cho et al. 2014), torch's variant (reset applied after W_hn).

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
        h' = (1 - z) \odot n + z \odot h

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` ``(B, H)`` or ``(H,)``, zeros if omitted.
    Outputs: ``h'``.
    """

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._batch(input)
        h = self._state(hx, x, batched, "hx")
        xr, xz, xn = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new if batched else h_new.squeeze(0)
