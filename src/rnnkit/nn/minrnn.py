"""MinGRU and MinLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): recurrences without a loop.

Their gates read the input only, never the previous state, so ``h_t = a_t h_{t-1} + b_t`` is a
linear recurrence whose coefficients are known for all steps at once: training runs the
whole sequence as one parallel scan (:class:`rnnkit.nn.scan.LinearScan`, depth ``O(log T)``, with
a hand-written backward that is a scan too, differentiable again), and generation runs
:meth:`MinRNNBase.step` one token at a time. Both compute the same numbers.

MinGRU (the paper's log-space variant, whose candidate is made positive by ``g``):

.. math::
    z_t = \\sigma(W_z x_t + b_z), \\quad \\tilde h_t = g(W_h x_t + b_h), \\quad
    h_t = (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t

MinLSTM (with the paper's normalised gates, so that the scale of ``h`` does not depend on time):

.. math::
    f_t, i_t = \\sigma(W_f x_t + b_f), \\sigma(W_i x_t + b_i), \\quad
    h_t = \\frac{f_t}{f_t + i_t} \\odot h_{t-1} + \\frac{i_t}{f_t + i_t} \\odot g(W_h x_t + b_h)

with :math:`g(v) = v + 1/2` for :math:`v \\ge 0` and :math:`\\sigma(v)` otherwise.
Layers stack as in torch.nn: layer ``k`` reads layer ``k-1``'s output. Parameters per layer are
``weight_ih_l{k}`` ``(G*H, I_k)`` and ``bias_ih_l{k}`` ``(G*H,)`` with the gates in the order
``z, h`` (MinGRU) or ``f, i, h`` (MinLSTM), initialised like torch.nn's recurrent layers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import minrnn_native
from rnnkit.nn.dispatch import tracing
from rnnkit.nn.dropout import check_probability
from rnnkit.nn.scan import scan
from rnnkit.nn.transforms import ReferencedFunction, save_arguments, saved_arguments

# impl: 'rnnkit' runs the C sweep (minrnn.c) where it can, 'rnnkit-pytorch' always the torch ops
# and parallel scan (as the plain layers' impl names their PyTorch loops).
IMPLS = ("rnnkit", "rnnkit-pytorch")


def _check_sizes(input_size: object, hidden_size: object, dtype: torch.dtype | None) -> None:
    """Positive int sizes and a floating dtype, with torch.nn's exception types."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {name}={value}")
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point type, got dtype={dtype}")


def _check_input(input: Tensor, weight: Tensor, input_size: int, name: str) -> None:
    """A floating input of the weights' dtype with ``input_size`` features."""
    if not input.dtype.is_floating_point or input.dtype != weight.dtype:
        raise ValueError(
            f"{name}: input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}); "
            f"convert it with input.to({weight.dtype})"
        )
    if input.shape[-1] != input_size:
        raise RuntimeError(
            f"{name}: input.size(-1) must be equal to input_size. "
            f"Expected {input_size}, got {input.shape[-1]}"
        )


def _check_state(state: Tensor, expected: tuple[int, ...], input: Tensor) -> None:
    if tuple(state.shape) != expected:
        raise RuntimeError(f"Expected hx size {expected}, got {list(state.shape)}")
    if state.dtype != input.dtype or state.device != input.device:
        raise ValueError(
            f"hx ({state.dtype} on {state.device}) must match the input ({input.dtype} on "
            f"{input.device})"
        )


def g(v: Tensor) -> Tensor:
    """The paper's positive activation: ``v + 1/2`` for ``v >= 0``, ``sigmoid(v)`` below."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def mingru_coefficients(pre: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b)`` of ``h_t = a_t h_{t-1} + b_t`` from MinGRU's projection ``pre`` ``(..., 2H)``."""
    k, cand = pre.chunk(2, -1)
    # 1 - sigmoid(k) = sigmoid(-k): no cancellation when z is close to 1.
    return torch.sigmoid(-k), torch.sigmoid(k) * g(cand)


def minlstm_coefficients(pre: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b)`` from MinLSTM's projection ``pre`` ``(..., 3H)`` (gates ``f, i, h``)."""
    kf, ki, cand = pre.chunk(3, -1)
    # f / (f + i) = sigmoid(log f - log i) = sigmoid(softplus(-ki) - softplus(-kf)).
    d = F.softplus(-ki) - F.softplus(-kf)
    return torch.sigmoid(d), torch.sigmoid(-d) * g(cand)


COEFFICIENTS = {"mingru": mingru_coefficients, "minlstm": minlstm_coefficients}


def min_scan(cell: str, pre: Tensor, h0: Tensor, *, use_c: bool = True) -> Tensor:
    """All states ``h`` ``(T, B, H)`` of ``cell`` (``'mingru'``/``'minlstm'``) from its input
    projection ``pre`` ``(T, B, G*H)`` and ``h0`` ``(B, H)``: by :class:`MinScan` (one C sweep)
    where it runs, else by the coefficients in torch ops and the parallel scan (other devices, no
    compiler, graphs being traced: there the scan is the ``rnnkit::linear_scan`` operator)."""
    tensors = [pre, h0]
    if use_c and not tracing(tensors) and minrnn_native.available(*tensors):
        return MinScan.apply(cell, pre, h0)  # its reference under torch.func transforms
    return MinScan.reference(cell, pre, h0)


class MinScan(ReferencedFunction):
    """``(cell, pre, h0) -> h``: the gates, coefficients and recurrence in one C sweep forward and
    one backward (``minrnn.c``, where the equations of the backward are written out). The
    reference is :data:`COEFFICIENTS` and :func:`rnnkit.nn.scan.scan` in torch ops; it also
    serves double backward."""

    @staticmethod
    def forward(ctx: Any, cell: str, pre: Tensor, h0: Tensor) -> Tensor:
        h = minrnn_native.forward(cell, pre, h0)
        save_arguments(ctx, (cell, pre, h0), h)
        return h

    @staticmethod
    def reference(cell: str, pre: Tensor, h0: Tensor) -> Tensor:
        a, b = COEFFICIENTS[cell](pre)
        return scan(a, b, h0)

    @staticmethod
    def backward(ctx: Any, dh: Tensor) -> tuple[Tensor | None, ...]:
        args, (h,) = saved_arguments(ctx)
        if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate
            return MinScan.reference_grads(args, (dh,), ctx.needs_input_grad)
        d_pre, dh0 = minrnn_native.backward(*args, h, dh)
        return None, d_pre, dh0


class MinRNNBase(nn.Module):
    """Shared machinery of :class:`MinGRU` and :class:`MinLSTM` (not used directly)."""

    gates = 2
    cell = "mingru"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        batch_first: bool = False,
        dropout: float = 0.0,
        impl: str = "rnnkit",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, dtype)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"num_layers must be greater than zero, got num_layers={num_layers}")
        if not isinstance(batch_first, bool):
            kind = type(batch_first).__name__
            raise TypeError(f"batch_first should be of type bool, got: {kind}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.dropout = check_probability(dropout, "dropout")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got impl={impl!r}")
        self.impl = impl
        kw = {"device": device, "dtype": dtype}
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size
            weight = torch.empty(self.gates * hidden_size, layer_in, **kw)
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(weight))
            bias = torch.empty(self.gates * hidden_size, **kw)
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(bias))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's recurrent initialisation: uniform in (-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        s += ", batch_first=True" if self.batch_first else ""
        s += f", dropout={self.dropout}" if self.dropout else ""
        return s + (f", impl={self.impl!r}" if self.impl != "rnnkit" else "")

    def projection(self, layer: int, x: Tensor) -> Tensor:
        """The gates' pre-activations ``W x + b`` ``(..., G*H)`` of layer ``layer``."""
        w, bias = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"bias_ih_l{layer}")
        return F.linear(x, w, bias)

    def coefficients(self, layer: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of ``h_t = a_t h_{t-1} + b_t`` for ``x`` ``(..., I_k)``; each ``(..., H)``."""
        return COEFFICIENTS[self.cell](self.projection(layer, x))

    def forward(self, input: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run whole sequences by parallel scans.

        Inputs: ``input`` ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``, or unbatched
        ``(T, I)``); ``h0`` ``(num_layers, B, H)`` (``(num_layers, H)`` unbatched), zeros if
        omitted. Outputs: ``output`` ``(T, B, H)`` (laid out like the input) and ``h_n``
        ``(num_layers, B, H)``, the last step's state of every layer.
        """
        x, h, batched = self._prepare(input, h0, sequence=True)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        finals = []
        for k in range(self.num_layers):
            if k and self.dropout and self.training:  # between layers, as torch.nn's layers
                x = F.dropout(x, self.dropout, training=True)
            pre = self.projection(k, x)  # (T, B, G*H)
            x = min_scan(self.cell, pre, h[k], use_c=self.impl == "rnnkit")  # (T, B, H)
            finals.append(x[-1])
        output = x.transpose(0, 1) if self.batch_first and batched else x
        return self._unbatch(output, torch.stack(finals), batched, time_dim=True)

    def step(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step for generation: ``input`` ``(B, I)`` (or ``(I,)``), ``hx`` like ``h0``.

        Returns ``(output, h_new)``: the top layer's ``(B, H)`` state and every layer's
        ``(num_layers, B, H)``; stepping through a sequence gives :meth:`forward`'s results.
        """
        x, h, batched = self._prepare(input, hx, sequence=False)
        finals = []
        for k in range(self.num_layers):
            if k and self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)
            a, b = self.coefficients(k, x)  # (B, H) each
            x = torch.addcmul(b, a, h[k])
            finals.append(x)
        return self._unbatch(x, torch.stack(finals), batched, time_dim=False)

    def _prepare(self, input: Tensor, hx: Tensor | None, sequence: bool) -> tuple:
        """Check the input and state; return them batched, plus whether the input was."""
        name = type(self).__name__
        full = 3 if sequence else 2
        if input.dim() not in (full - 1, full):
            raise ValueError(
                f"{name}: Expected input to be {full - 1}D or {full}D, got {input.dim()}D instead"
            )
        _check_input(input, self.weight_ih_l0, self.input_size, name)
        batched = input.dim() == full
        if not batched:
            input = input.unsqueeze(1 if sequence else 0)
        time_major = sequence and not (self.batch_first and batched)
        batch = input.shape[1 if time_major else 0]
        shape = (self.num_layers, batch, self.hidden_size)
        if hx is None:
            return input, input.new_zeros(shape), batched
        if not batched:
            _check_state(hx, (self.num_layers, self.hidden_size), input)
            return input, hx.unsqueeze(1), batched
        _check_state(hx, shape, input)
        return input, hx, batched

    @staticmethod
    def _unbatch(out: Tensor, h: Tensor, batched: bool, time_dim: bool) -> tuple[Tensor, Tensor]:
        if batched:
            return out, h
        return out.squeeze(1 if time_dim else 0), h.squeeze(1)


class MinGRU(MinRNNBase):
    """MinGRU layer: ``z`` and the candidate from the input alone; see the module docstring.

    Args:
        input_size: features of the input ``x``.
        hidden_size: features of the hidden state ``h``.
        num_layers: stacked layers.
        batch_first: inputs and outputs are ``(B, T, F)`` instead of ``(T, B, F)``.
        dropout: dropout probability on the outputs of every layer but the last (training only).
        impl: ``'rnnkit'`` (default): the gates and the recurrence in one C sweep forward and one
            backward (:class:`MinScan`) on the CPU, else the torch path; ``'rnnkit-pytorch'``:
            always the torch path (coefficients in torch ops, the parallel scan). Same function.
    """

    gates = 2
    cell = "mingru"


class MinLSTM(MinRNNBase):
    """MinLSTM layer: forget and input gates from the input alone, normalised to sum to one.

    Args: as :class:`MinGRU`.
    """

    gates = 3
    cell = "minlstm"
