"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers: drop-ins for torch.nn's.

The classes *are* torch.nn's classes as far as any caller can tell: :class:`LSTM` subclasses
``torch.nn.LSTM`` (and so ``torch.nn.RNNBase``), and likewise :class:`GRU` and :class:`RNN`. The
constructor, its checks and errors, the parameters (names, shapes, gate order, initialisation),
``state_dict``, ``repr``, pickling and the helper methods (``check_input``, ``check_forward_args``,
``get_expected_hidden_size``, ``permute_hidden``, ``_flat_weights``, ``all_weights``,
``flatten_parameters``) are torch's own. Only ``forward`` is rnnkit's: it checks its input as
torch.nn's does (same exception types and messages), turns it into packed rows ``(N, features)``
plus per-step batch sizes (see :mod:`rnnkit.nn.schedule`), runs one kernel per layer and direction
(:mod:`rnnkit.nn.dispatch` picks which), and returns torch.nn's output format.

``impl=`` chooses the implementation: ``'rnnkit'`` (default) runs rnnkit's own kernels and never
calls PyTorch's recurrent operators (their time loop runs in C when it could be compiled and the
dtype is float32/float64, see :mod:`rnnkit.nn.native`, else in PyTorch); ``'rnnkit-pytorch'``
forces rnnkit's PyTorch time loop; ``'torch'`` calls PyTorch's fused operator (``torch._VF``);
``'auto'`` picks whichever ``benchmarks/layers.py`` measured faster (see :func:`auto_impl`), except
that options inside the cell always run rnnkit's kernels. Weight drop runs with every ``impl``
(with ``'torch'``, PyTorch's operator takes the dropped ``weight_hh``).
``repr`` shows it in torch's ``key=value`` form: ``LSTM(3, 4, impl='rnnkit', loop='C')``.

Beyond torch.nn, keyword-only and off by default: ``layer_norm``, ``zoneout``,
``recurrent_dropout`` and ``weight_drop`` (see :mod:`rnnkit.nn.options`).

Mixed precision: under ``torch.autocast`` the layers compute in the dtype torch.nn's outputs
have (:mod:`rnnkit.nn.precision`), casting weights, input and state for the call; bfloat16 and
float16 run rnnkit's PyTorch time loop (the C loops have no kernel for them).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit.nn import dispatch, native, options, precision
from rnnkit.nn.transforms import transformed

IMPLS = ("rnnkit", "rnnkit-pytorch", "torch", "auto")
_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}
_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def auto_impl(device: torch.device) -> str:
    """The implementation ``impl='auto'`` runs: the one ``benchmarks/layers.py`` measured faster.

    On the CPU that is rnnkit's kernels with the C time loop, for every layer type and shape class
    measured (training and inference, batch 1 to 64; see ``benchmarks/README.md``); on other
    devices (CUDA) it is torch's fused operator (cuDNN), as rnnkit's time loop runs step by step
    from Python there.
    """
    return "rnnkit" if device.type == "cpu" else "torch"


def _cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got impl={impl!r}")
    return impl


class RNNBase(nn.RNNBase):
    """rnnkit's ``forward`` for :class:`RNN`, :class:`LSTM` and :class:`GRU` (not used directly).

    Everything else is ``torch.nn.RNNBase``'s; the subclasses list torch's class second
    (``class LSTM(RNNBase, torch.nn.LSTM)``) so that its ``__init__`` and helper methods apply.
    """

    impl: str

    def reset_parameters(self) -> None:
        super().reset_parameters()
        options.reset_layer_norm(self)  # the normalization's gains and shifts: ones and zeros

    def extra_repr(self) -> str:
        s = super().extra_repr() + options.extra_repr(self) + f", impl={self.impl!r}"
        runs = self._impl_for(self._flat_weights[0].device)
        if runs.startswith("rnnkit"):
            c_loop = runs == "rnnkit" and native.available(*self._flat_weights)
            s += f", loop={'C' if c_loop else 'PyTorch'!r}"
        elif self.impl == "auto":
            s += f", loop={runs!r}"
        return s

    def flatten_parameters(self) -> None:
        """torch.nn's, except under ``torch.func`` transforms: their wrapped weights have no
        storage, and torch's version reads every weight's data pointer on CUDA (``vmap(grad)``
        of a ``functional_call`` failed there, torch.nn's own layers too); rnnkit's kernels need
        no flat buffer."""
        if transformed([w for w in self._flat_weights if isinstance(w, Tensor)]):
            return
        super().flatten_parameters()

    def _impl_for(self, device: torch.device) -> str:
        """The implementation this call runs: ``impl``, or for ``'auto'`` :func:`auto_impl`'s
        choice, except where that is torch's fused operator and options inside the cell are on
        (layer norm, zoneout, recurrent dropout in training): rnnkit's kernels then."""
        if self.impl != "auto":
            return self.impl
        chosen = auto_impl(device)
        return "rnnkit" if chosen == "torch" and options.in_cell(self) else chosen

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple | None = None) -> tuple:
        self._update_flat_weights()
        lstm = self.mode == "LSTM"
        name = _NAMES[self.mode]
        batch_sizes = sorted_indices = unsorted_indices = None
        packed = isinstance(input, PackedSequence)
        batched = True
        if packed:
            input, batch_sizes, sorted_indices, unsorted_indices = input
        else:
            if input.dim() not in (2, 3):
                tensor = " tensor" if name == "RNN" else ""
                raise ValueError(
                    f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{tensor} instead"
                )
            batched = input.dim() == 3
            if not batched:
                input = input.unsqueeze(0 if self.batch_first else 1)
            if hx is not None:
                hx = self._batch_hidden(hx, batched)
        hx = self._zero_hidden(input, batch_sizes) if hx is None else hx
        hx = self.permute_hidden(hx, sorted_indices)
        self.check_forward_args(input, hx, batch_sizes)
        self._check_dtypes(input, list(hx) if lstm else [hx])
        output, hidden = self._run(input, batch_sizes, hx)
        if packed:
            output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
        elif not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            hidden = tuple(h.squeeze(1) for h in hidden) if lstm else hidden.squeeze(1)
        return output, self.permute_hidden(hidden, unsorted_indices)

    def _batch_hidden(self, hx: Tensor | tuple, batched: bool) -> Tensor | tuple:
        """The state's dimensions checked as torch.nn checks them; unbatched -> ``(L, 1, H)``."""
        want, kind = (3, "batched 3-D") if batched else (2, "unbatched 2-D")
        if self.mode == "LSTM":
            if hx[0].dim() != want or hx[1].dim() != want:
                raise RuntimeError(
                    f"For {kind} input, hx and cx should also be {want}-D but got "
                    f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
                )
            return hx if batched else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        if hx.dim() != want:
            raise RuntimeError(
                f"For {kind} input, hx should also be {want}-D but got {hx.dim()}-D tensor"
            )
        return hx if batched else hx.unsqueeze(1)

    def _zero_hidden(self, input: Tensor, batch_sizes: Tensor | None) -> Tensor | tuple:
        layers = self.num_layers * (2 if self.bidirectional else 1)
        batch = self.get_expected_hidden_size(input, batch_sizes)[1]
        kw = {"dtype": input.dtype, "device": input.device}
        h = torch.zeros(layers, batch, self.proj_size or self.hidden_size, **kw)
        return (h, torch.zeros(layers, batch, self.hidden_size, **kw)) if self.mode == "LSTM" else h

    def _check_dtypes(self, input: Tensor, states: list[Tensor]) -> None:
        """Every weight has the first one's dtype and the input's device, and (outside autocast)
        the state has the input's dtype: torch.nn fails deep in its operator otherwise (a
        ``RuntimeError``), and rnnkit's C loop must never read a buffer as another type."""
        name, first = _NAMES[self.mode], self._flat_weights[0]
        all_cpu = input.is_cpu and all(w.is_cpu for w in self._flat_weights)
        for wname, w in zip(self._flat_weights_names, self._flat_weights):
            if w.dtype != first.dtype:
                raise RuntimeError(
                    f"{name}: {wname} has dtype {w.dtype} but {self._flat_weights_names[0]} has "
                    f"{first.dtype}; the weights must share one dtype: model.to({first.dtype})"
                )
            if not all_cpu and w.device != input.device:
                raise RuntimeError(
                    f"{name}: {wname} is on {w.device} but the input is on {input.device}; move "
                    f"the model with model.to({str(input.device)!r})"
                )
        for what, state in zip(("hx", "cx"), states):
            if state.dtype != input.dtype and precision.autocast_lower(input.device.type) is None:
                raise RuntimeError(
                    f"{name}: {what} dtype ({state.dtype}) does not match input dtype "
                    f"({input.dtype}); convert it with {what}.to({input.dtype})"
                )

    def _run(self, input: Tensor, batch_sizes: Tensor | None, hx: Any) -> tuple[Tensor, Any]:
        """The layers on checked input: padded ``(T, B, I)`` (or batch first) or packed rows."""
        lstm = self.mode == "LSTM"
        states = list(hx) if lstm else [hx]
        if batch_sizes is not None:
            data, sizes = input, batch_sizes.tolist()
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            data = x.reshape(steps * batch, x.shape[2])  # (N, I), rows in time-major order
            sizes = [batch] * steps
        dtype = precision.layer_dtype(self.mode, input)
        if sizes[0] == 0:  # an empty batch: empty outputs, as torch.nn gives
            out = data.new_zeros(len(sizes), 0, self._output_width(), dtype=dtype)
            finals = [s.to(dtype) for s in states]
            if torch.is_grad_enabled():  # in the graph, so that backward runs (zero gradients)
                nothing = sum(w.sum() for w in self._flat_weights) * 0
                out, finals = out + nothing.to(dtype), [f + nothing.to(dtype) for f in finals]
        else:
            with precision.no_autocast(data.device.type):  # the layer casts once, for the call
                states = [_cast(s, dtype) for s in states]
                out, finals = self._run_rows(_cast(data, dtype), sizes, states, batch_sizes)
            if batch_sizes is None:
                out = out.view(len(sizes), sizes[0], out.shape[-1])  # (T, B, D * H_out)
        if batch_sizes is None and self.batch_first:
            out = out.transpose(0, 1)
        return out, (tuple(finals) if lstm else finals[0])

    def _output_width(self) -> int:
        return (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)

    def _run_rows(
        self, data: Tensor, sizes: list[int], states: list[Tensor], batch_sizes: Tensor | None
    ) -> tuple[Tensor, list[Tensor]]:
        weights = [_cast(w, data.dtype) for w in self._flat_weights]  # (autocast: per call)
        impl = self._impl_for(data.device)
        if impl == "torch":
            dropped = options.drop_weights(self, weights)  # weight drop: the only option it runs
            if dropped is weights:
                return self._run_torch(data, sizes, states, weights, batch_sizes)
            with warnings.catch_warnings():  # the dropped weights are new tensors at every call
                warnings.filterwarnings("ignore", "RNN module weights are not part of single")
                return self._run_torch(data, sizes, states, dropped, batch_sizes)
        named = dict(zip(self._flat_weights_names, weights))
        if options.active(self):
            return options.run(self, data, sizes, states, named, use_c=impl != "rnnkit-pytorch")
        directions = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in states]
        run = dispatch.plan(self.mode, data, weights, use_c=impl == "rnnkit", proj=self.proj_size)
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                params = [named.get(n + suffix) for n in _PARAMS]
                y, fin = run(data, [s[k] for s in states], params, sizes, direction == 1)
                outs.append(y)
                for acc, f in zip(finals, fin):
                    acc.append(f)
            data = outs[0] if len(outs) == 1 else torch.cat(outs, 1)  # (N, D * H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                data = F.dropout(data, self.dropout, training=True)
        return data, [torch.stack(f) for f in finals]

    def _run_torch(
        self, data: Tensor, sizes: list[int], states: list[Tensor], weights: list[Tensor],
        batch_sizes: Tensor | None,
    ) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
        """PyTorch's fused recurrent operator (``impl='torch'``), on the same packed rows."""
        op = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}
        hx = tuple(states) if self.mode == "LSTM" else states[0]
        flags = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if batch_sizes is not None:
            result = op[self.mode](data, batch_sizes, hx, weights, *flags)
        else:
            x = data.view(len(sizes), sizes[0], -1)
            result = op[self.mode](x, hx, weights, *flags, False)
        out = result[0].reshape(data.shape[0], -1)
        return out, list(result[1:])


_LAYER_DOC = """
    Args: torch.nn.{cls}'s, positional or by keyword, with torch's defaults and checks:
        ``input_size, hidden_size, num_layers=1, {extra}bias=True, batch_first=False, dropout=0.0,
        bidirectional=False, {proj}device=None, dtype=None``; and, by keyword only,
        impl: ``'rnnkit'`` (own kernels), ``'rnnkit-pytorch'`` (own kernels, time loop in
            PyTorch), ``'torch'`` (PyTorch's operator) or ``'auto'``;
        layer_norm: layer normalization inside the cell (Ba et al. 2016), parameters
            ``ln_weight_ih_l{{k}}``, ``ln_weight_hh_l{{k}}`` (and for the LSTM
            ``ln_weight_c_l{{k}}``, ``ln_bias_c_l{{k}}``); equations in
            :mod:`rnnkit.nn.regularized_cells`;
        zoneout: probability that a unit keeps its previous state at a step (Krueger et al.
            2017); evaluation uses the expectation;
        recurrent_dropout: dropout on ``h_{{t-1}}`` where it enters the gates, one mask per
            sequence (Gal & Ghahramani 2016); off in evaluation;
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


class RNN(RNNBase, nn.RNN):
    r"""Elman RNN: :math:`h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` (or ReLU)."""

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(
        cls="RNN", extra="nonlinearity='tanh', ", proj="", hx="hx", hn="h_n"
    )

    def __init__(
        self, *args: Any, impl: str = "rnnkit", layer_norm: bool = False, zoneout: float = 0.0,
        recurrent_dropout: float = 0.0, weight_drop: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        nn.RNN.__init__(self, *args, **kwargs)
        self.impl = check_impl(impl)
        options.setup(self, layer_norm, zoneout, recurrent_dropout, weight_drop)


class LSTM(RNNBase, nn.LSTM):
    r"""Long short-term memory; gates ``i, f, g, o`` as in torch.nn, optional projection of ``h``.

    .. math::
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = W_{hr} (o_t \odot \tanh(c_t))

    (without ``proj_size``, :math:`W_{hr}` is the identity and :math:`H_{out} = H`).
    """

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(
        cls="LSTM", extra="", proj="proj_size=0, ", hx="(h_0, c_0)", hn="(h_n, c_n)"
    )

    def __init__(
        self, *args: Any, impl: str = "rnnkit", layer_norm: bool = False, zoneout: float = 0.0,
        recurrent_dropout: float = 0.0, weight_drop: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        nn.LSTM.__init__(self, *args, **kwargs)
        self.impl = check_impl(impl)
        options.setup(self, layer_norm, zoneout, recurrent_dropout, weight_drop)


class GRU(RNNBase, nn.GRU):
    r"""Gated recurrent unit, torch.nn's variant (reset gate applied after :math:`W_{hn}`)."""

    __doc__ = (__doc__ or "") + _LAYER_DOC.format(cls="GRU", extra="", proj="", hx="hx", hn="h_n")

    def __init__(
        self, *args: Any, impl: str = "rnnkit", layer_norm: bool = False, zoneout: float = 0.0,
        recurrent_dropout: float = 0.0, weight_drop: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        nn.GRU.__init__(self, *args, **kwargs)
        self.impl = check_impl(impl)
        options.setup(self, layer_norm, zoneout, recurrent_dropout, weight_drop)
