"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers: drop-ins for torch.nn's.

A layer turns its input (padded, unbatched or packed) into packed rows ``(N, features)`` plus a list
of per-step batch sizes (see :mod:`rnnkit.nn.schedule`), runs the hand-written kernel of
:mod:`rnnkit.nn.kernels` once per layer and direction, and turns the result back into torch.nn's
output format. Constructor arguments, parameter names (``weight_ih_l{k}[_reverse]``, ...), shapes,
gate order and initialisation are torch.nn's, so ``load_state_dict`` works in both directions.

``impl=`` chooses the implementation: ``'rnnkit'`` (default) runs rnnkit's own kernels and never
calls PyTorch's recurrent operators (their time loop runs in C when it could be compiled, see
:mod:`rnnkit.nn.native`, else in PyTorch); ``'rnnkit-pytorch'`` forces rnnkit's PyTorch time loop;
``'torch'`` calls PyTorch's fused operator (``torch._VF``; on the CPU this is oneDNN for the
LSTM); ``'auto'`` picks whichever the benchmark in ``benchmarks/layers.py`` measured faster for
the device and shape (see :func:`auto_impl`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit.nn import native, options
from rnnkit.nn.checks import (
    check_dtype,
    check_input,
    check_nonlinearity,
    check_sizes,
    check_state,
    init_uniform,
)
from rnnkit.nn.kernels import GRUFunction, LSTMFunction, RNNFunction, sum_bias
from rnnkit.nn.schedule import Schedule

IMPLS = ("rnnkit", "rnnkit-pytorch", "torch", "auto")
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def auto_impl(device: torch.device) -> str:
    """The implementation ``impl='auto'`` runs: the one ``benchmarks/layers.py`` measured faster.

    On the CPU that is rnnkit's kernels with the C time loop, for every layer type and shape class
    measured (training and inference, batch 1 to 64; see ``benchmarks/README.md``); on other
    devices (CUDA) it is torch's fused operator (cuDNN), as rnnkit's time loop runs step by step
    from Python there.
    """
    return "rnnkit" if device.type == "cpu" else "torch"


class RNNBase(nn.Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU` (not used directly)."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        impl: str = "rnnkit",
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        check_dtype(dtype)
        for name, flag in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(flag).__name__}")
        number = isinstance(dropout, int | float) and not isinstance(dropout, bool)
        if not number or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got dropout={dropout!r}"
            )
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be greater than zero, got num_layers={num_layers}")
        if proj_size < 0:
            raise ValueError(
                f"proj_size should be a positive integer or zero to disable projections, "
                f"got proj_size={proj_size}"
            )
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} "
                f"and hidden_size={hidden_size}"
            )
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got impl={impl!r}")
        options.check_options(
            mode, proj_size, impl, layer_norm, zoneout, recurrent_dropout, weight_drop
        )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.impl = impl
        self.layer_norm = layer_norm
        self.zoneout = float(zoneout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.weight_drop = float(weight_drop)
        kw = {"device": device, "dtype": dtype}
        gate_size = _GATES[mode] * hidden_size
        out_size = proj_size or hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                layer_in = input_size if layer == 0 else out_size * self.num_directions
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_in))]
                shapes += [("weight_hh", (gate_size, out_size))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for name, shape in shapes:
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **kw)))
                    self._flat_weights_names.append(name + suffix)
                for name, size in options.layer_norm_shapes(mode, _GATES[mode], hidden_size):
                    if layer_norm:  # gains and shifts of layer normalization (not torch.nn's)
                        norm = nn.Parameter(torch.empty(size, **kw))
                        self.register_parameter(name + suffix, norm)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters grouped per layer and direction, in torch.nn's order."""
        per = len(self._flat_weights_names) // (self.num_layers * self.num_directions)
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[i : i + per] for i in range(0, len(flat), per)]

    def reset_parameters(self) -> None:
        init_uniform(self.parameters(), self.hidden_size)
        options.reset_layer_norm(self)

    def flatten_parameters(self) -> None:
        """No-op, for drop-in compatibility with torch.nn (rnnkit keeps no flat weight buffer)."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        for name in options.OPTIONS:
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        # Say what runs: for 'auto' the resolved choice, for rnnkit's kernels where the loop runs.
        weight = self.weight_ih_l0
        runs = self._impl_for(weight.device)
        s += f", impl={self.impl!r}"
        if self.impl == "auto":
            s += f" ({runs} on {weight.device.type})"
        if runs.startswith("rnnkit"):
            c_loop = runs == "rnnkit" and native.available(weight)
            s += f" (time loop in {'C' if c_loop else 'PyTorch'})"
        return s

    def _impl_for(self, device: torch.device) -> str:
        return auto_impl(device) if self.impl == "auto" else self.impl

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple | None = None) -> tuple:
        name = type(self).__name__
        weight = self.weight_ih_l0
        sorted_idx = unsorted_idx = None
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_idx, unsorted_idx = input
            if data.dim() != 2:
                raise RuntimeError(f"{name}: packed data must have 2 dimensions, got {data.dim()}")
            check_input(data, weight, self.input_size, name)
            sizes = batch_sizes.tolist()
            batched = True
        else:
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead"
                )
            check_input(input, weight, self.input_size, name)
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
            if self.batch_first:
                x = x.transpose(0, 1)  # (T, B, I)
            steps, batch = x.shape[0], x.shape[1]
            data = x.reshape(steps * batch, self.input_size)  # (N, I), rows in time-major order
            sizes = [batch] * steps
        if not sizes or sizes[0] == 0:
            raise ValueError(f"{name}: input must have at least one time step and one sequence")
        states = self._initial_states(hx, data, sizes[0], batched, sorted_idx)
        if options.active(self):
            use_c = self.impl != "rnnkit-pytorch"
            out, finals = options.run(self, data, sizes, states, sorted_idx, use_c=use_c)
        elif self._impl_for(data.device) == "torch":
            out, finals = self._run_torch(data, sizes, states, input)
        else:
            out, finals = self._run_rnnkit(data, sizes, states, self.impl != "rnnkit-pytorch")
        if unsorted_idx is not None:
            finals = [f.index_select(1, unsorted_idx) for f in finals]
        if isinstance(input, PackedSequence):
            output = PackedSequence(out, batch_sizes, sorted_idx, unsorted_idx)
        else:
            output = out.view(len(sizes), sizes[0], out.shape[-1])  # (T, B, D * H_out)
            if self.batch_first:
                output = output.transpose(0, 1)
            if not batched:
                output = output.squeeze(0 if self.batch_first else 1)
                finals = [f.squeeze(1) for f in finals]
        return output, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _initial_states(
        self, hx: Tensor | tuple | None, data: Tensor, batch: int, batched: bool, sorted_idx: Tensor
    ) -> list[Tensor]:
        """``[h0]`` or ``[h0, c0]``, each ``(L * D, B, width)``, in the packed batch order."""
        layers = self.num_layers * self.num_directions
        widths = [self.proj_size or self.hidden_size]
        whats = ["hidden"]
        if self.mode == "LSTM":
            widths.append(self.hidden_size)
            whats = ["hidden[0]", "hidden[1]"]
        if hx is None:
            return [data.new_zeros(layers, batch, w) for w in widths]
        given = list(hx) if self.mode == "LSTM" else [hx]
        if self.mode == "LSTM" and (isinstance(hx, Tensor) or len(given) != 2):
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
        states = []
        for state, width, what in zip(given, widths, whats):
            want = 3 if batched else 2
            if state.dim() != want:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(
                    f"For {kind} input, {what} should also be {want}-D "
                    f"but got {state.dim()}-D tensor"
                )
            state = state if batched else state.unsqueeze(1)
            check_state(state, (layers, batch, width), what, data)
            states.append(state if sorted_idx is None else state.index_select(1, sorted_idx))
        return states

    def _layer_params(self, layer: int, direction: int) -> list[Tensor | None]:
        """``[w_ih, w_hh, b_ih, b_hh, w_hr]`` of one layer and direction (``None`` where absent)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return [getattr(self, n + suffix, None) for n in names]

    def _run_rnnkit(
        self, data: Tensor, sizes: list[int], states: list[Tensor], use_c: bool
    ) -> tuple[Tensor, list[Tensor]]:
        finals: list[list[Tensor]] = [[] for _ in states]
        infer = self.mode == "LSTM" and self._infer_natively(data, use_c)
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, direction)
                init = [s[k] for s in states]
                reverse = direction == 1
                if infer:
                    y, *fin = native.lstm_infer(Schedule(sizes, reverse), data, w_ih,
                                                sum_bias(b_ih, b_hh), w_hh, *init)  # fmt: skip
                elif self.mode == "LSTM":
                    y, *fin = LSTMFunction.apply(
                        data, *init, w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, use_c
                    )
                elif self.mode == "GRU":
                    y, *fin = GRUFunction.apply(
                        data, *init, w_ih, w_hh, b_ih, b_hh, sizes, reverse, use_c
                    )
                else:
                    relu = self.mode == "RNN_RELU"
                    y, *fin = RNNFunction.apply(
                        data, *init, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse, use_c
                    )
                outs.append(y)
                for acc, f in zip(finals, fin):
                    acc.append(f)
            data = outs[0] if len(outs) == 1 else torch.cat(outs, 1)  # (N, D * H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                data = F.dropout(data, self.dropout, training=True)
        return data, [torch.stack(f) for f in finals]

    def _infer_natively(self, data: Tensor, use_c: bool) -> bool:
        """Whether the LSTM runs C's inference loop: no gradient wanted, no projection."""
        wanted = torch.is_grad_enabled() and (
            data.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        return use_c and not wanted and not self.proj_size and native.available(data)

    def _run_torch(
        self, data: Tensor, sizes: list[int], states: list[Tensor], input: Tensor | PackedSequence
    ) -> tuple[Tensor, list[Tensor]]:
        """PyTorch's fused recurrent operator (``impl='torch'``), on the same packed rows."""
        op = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}
        weights = [getattr(self, n) for n in self._flat_weights_names]
        hx = tuple(states) if self.mode == "LSTM" else states[0]
        flags = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if isinstance(input, PackedSequence):
            result = op[self.mode](data, input.batch_sizes, hx, weights, *flags)
        else:
            x = data.view(len(sizes), sizes[0], -1)
            result = op[self.mode](x, hx, weights, *flags, False)
        out = result[0].reshape(data.shape[0], -1)
        return out, list(result[1:])


_LAYER_DOC = """
    Args:
        input_size: features of the input ``x``.
        hidden_size: features of the hidden state ``h``.
        num_layers: stacked recurrent layers.{extra}
        bias: use ``bias_ih`` and ``bias_hh``.
        batch_first: inputs and outputs are ``(B, T, F)`` instead of ``(T, B, F)``.
        dropout: dropout probability on the outputs of every layer but the last (training only).
        bidirectional: run a second, time-reversed direction and concatenate its output.
        impl: ``'rnnkit'`` (own kernels), ``'rnnkit-pytorch'`` (own kernels, time loop in
            PyTorch), ``'torch'`` (PyTorch's operator) or ``'auto'``.
        layer_norm: layer normalization inside the cell (Ba et al. 2016), parameters
            ``ln_weight_ih_l{{k}}``, ``ln_weight_hh_l{{k}}`` (and for the LSTM
            ``ln_weight_c_l{{k}}``, ``ln_bias_c_l{{k}}``); equations in
            :mod:`rnnkit.nn.regularized_cells`.
        zoneout: probability that a unit keeps its previous state at a step (Krueger et al.
            2017); evaluation uses the expectation.
        recurrent_dropout: dropout on ``h_{{t-1}}`` where it enters the gates, one mask per
            sequence (Gal & Ghahramani 2016); off in evaluation.
        weight_drop: DropConnect on ``weight_hh``, one mask per call (Merity et al. 2017); off in
            evaluation. The options are described in :mod:`rnnkit.nn.options`.

    Inputs: ``input``, ``{hx}``
        - input: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, unbatched ``(T, I)``, or a
          ``PackedSequence``.
        - {hx}: ``(D * num_layers, B, H_out)`` (``(D * num_layers, H_out)`` unbatched); zeros if
          omitted. ``D`` is 2 if bidirectional else 1.

    Outputs: ``output``, ``{hn}``
        - output: ``(T, B, D * H_out)`` (or batch first, unbatched, or a ``PackedSequence``).
        - {hn}: the final states, shaped like the initial ones.
"""


class RNN(RNNBase):
    r"""Elman RNN: :math:`h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` (or ReLU)."""

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(
        extra="\n        nonlinearity: ``'tanh'`` or ``'relu'``.", hx="hx", hn="h_n"
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        impl: str = "rnnkit",
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            impl=impl, layer_norm=layer_norm, zoneout=zoneout,
            recurrent_dropout=recurrent_dropout, weight_drop=weight_drop, device=device,
            dtype=dtype,
        )  # fmt: skip


class LSTM(RNNBase):
    r"""Long short-term memory; gates ``i, f, g, o`` as in torch.nn, optional projection of ``h``.

    .. math::
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = W_{hr} (o_t \odot \tanh(c_t))

    (without ``proj_size``, :math:`W_{hr}` is the identity and :math:`H_{out} = H`).
    """

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(
        extra="\n        proj_size: if > 0, project ``h`` to this size with ``weight_hr_l{k}``.",
        hx="(h_0, c_0)",
        hn="(h_n, c_n)",
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        impl: str = "rnnkit",
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, impl=impl, layer_norm=layer_norm, zoneout=zoneout,
            recurrent_dropout=recurrent_dropout, weight_drop=weight_drop, device=device,
            dtype=dtype,
        )  # fmt: skip


class GRU(RNNBase):
    r"""Gated recurrent unit, torch.nn's variant (reset gate applied after :math:`W_{hn}`)."""

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(extra="", hx="hx", hn="h_n")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        impl: str = "rnnkit",
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            impl=impl, layer_norm=layer_norm, zoneout=zoneout,
            recurrent_dropout=recurrent_dropout, weight_drop=weight_drop, device=device,
            dtype=dtype,
        )  # fmt: skip
