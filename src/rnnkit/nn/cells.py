"""One time step of an RNN, LSTM or GRU, in plain autograd code: the readable reference.

A cell maps ``(x_t, state_{t-1})`` to ``state_t``; it does not loop over time. The layers in
:mod:`rnnkit.nn.layers` run whole sequences with the hand-written kernels, and the tests check that
stepping these cells by hand over a sequence gives the same result.

Each cell subclasses torch.nn's (``RNNCell(torch.nn.RNNCell)``, ...): the constructor, parameters,
initialisation, ``repr`` and ``state_dict`` are torch's; ``forward`` is rnnkit's step
(:mod:`rnnkit.nn.steps`) behind torch's checks and messages (:mod:`rnnkit.nn.checks`). Under
``torch.autocast`` the cells return torch.nn's dtypes (:mod:`rnnkit.nn.precision`): on the CPU the
steps' matrix products follow autocast's policy and the gate math type promotion (the RNN cell in
the autocast dtype, the LSTM and GRU cells in their state's); on CUDA, where torch's cell operators
are on autocast's lower-precision list, input and state are cast to the autocast dtype first.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.nn.checks import check_cell_dims, check_cell_sizes
from rnnkit.nn.precision import cell_dtype
from rnnkit.nn.steps import gru_step, lstm_step, rnn_step

_NAMES = ("RNNCell", "LSTMCell", "GRUCell")


def _name(cell: nn.RNNCellBase) -> str:
    """torch.nn's class name of a cell (for subclasses of rnnkit's cells too)."""
    return next(n for n in _NAMES if isinstance(cell, getattr(nn, n)))


def _batched(
    cell: nn.RNNCellBase, input: Tensor, hx: Tensor | tuple | None, count: int
) -> tuple[Tensor, list[Tensor], bool]:
    """``(input (B, I), states [(B, H)] * count, batched)`` after torch.nn's checks."""
    check_cell_dims(_name(cell), input, hx)
    batched = input.dim() == 2
    if not batched:
        input = input.unsqueeze(0)
    if hx is None:
        zeros = input.new_zeros(input.shape[0], cell.hidden_size)
        states = [zeros] * count
    else:
        states = list(hx) if count == 2 else [hx]
        states = states if batched else [s.unsqueeze(0) for s in states]
    check_cell_sizes(input, states, cell.input_size, cell.hidden_size)
    lower = cell_dtype(input)
    if lower is not None:  # autocast casts every argument of torch's cell operator but float64
        input, *states = [t if t.dtype == torch.float64 else t.to(lower) for t in (input, *states)]
    return input, states, batched


class RNNCell(nn.RNNCell):
    r"""An Elman RNN cell: :math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})` (or ReLU).

    Args: torch.nn.RNNCell's: ``input_size, hidden_size, bias=True, nonlinearity='tanh',
    device=None, dtype=None``.

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` ``(B, H)`` or ``(H,)``, zeros if omitted.
    Outputs: ``h'`` with the shape of ``hx``.
    """

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _batched(self, input, hx, 1)
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        relu = self.nonlinearity == "relu"
        h_new = rnn_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, relu)
        return h_new if batched else h_new.squeeze(0)


class LSTMCell(nn.LSTMCell):
    r"""A long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::
        i, f, g, o = \sigma, \sigma, \tanh, \sigma (W_{ih} x + b_{ih} + W_{hh} h + b_{hh}) \\
        c' = f \odot c + i \odot g, \qquad h' = o \odot \tanh(c')

    Args: torch.nn.LSTMCell's: ``input_size, hidden_size, bias=True, device=None, dtype=None``.

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` = ``(h, c)``, each ``(B, H)`` or ``(H,)``,
    zeros if omitted. Outputs: ``(h', c')``.
    """

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, (h, c), batched = _batched(self, input, hx, 2)
        h_new, c_new = lstm_step(
            x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )
        if not batched:
            return h_new.squeeze(0), c_new.squeeze(0)
        return h_new, c_new


class GRUCell(nn.GRUCell):
    r"""A gated recurrent unit cell (Cho et al. 2014), torch's variant (reset applied after W_hn).

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
        h' = (1 - z) \odot n + z \odot h

    Args: torch.nn.GRUCell's: ``input_size, hidden_size, bias=True, device=None, dtype=None``.

    Inputs: ``input`` ``(B, I)`` or ``(I,)``; ``hx`` ``(B, H)`` or ``(H,)``, zeros if omitted.
    Outputs: ``h'``.
    """

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _batched(self, input, hx, 1)
        h_new = gru_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h_new if batched else h_new.squeeze(0)
