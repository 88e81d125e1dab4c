"""The layer options of ``rnnkit.nn.RNN``, ``LSTM`` and ``GRU`` beyond torch.nn's feature set.

``layer_norm`` (Ba et al. 2016), ``zoneout`` (Krueger et al. 2017), ``recurrent_dropout`` (Gal &
Ghahramani 2016) and ``weight_drop`` (DropConnect on ``weight_hh``: Wan et al. 2013, Merity et al.
2017), all keyword-only and off by default. This module checks them, adds the normalization
parameters, draws the random masks and runs a layer with them: the recurrence by the kernels with
hand-written BPTT (:mod:`rnnkit.nn.regularized`), or, for tests, by the reference cells
(:mod:`rnnkit.nn.regularized_cells`) with the very same masks.

Masks, in the order they are drawn from torch's global generator, per layer and direction:

* weight drop: one Bernoulli mask over ``weight_hh`` per forward call
  (:func:`rnnkit.nn.dropout.drop_connect`, scaled by ``1/(1-p)``); the stored parameter is
  untouched, its gradient flows through the mask. Where the plain kernels run the layer (weight
  drop alone, gradients wanted), they take the stored weight and the mask
  (:func:`rnnkit.nn.dropout.drop_weight`) and mask the weight gradient as they form it;
* recurrent dropout: one ``(B, H)`` mask per sequence (in the packed batch's order, which for a
  ``PackedSequence`` is sorted by length), scaled by ``1/(1-p)``, applied to ``h_{t-1}`` at every
  step;
* zoneout: a fresh 0/1 mask per step and unit for ``h`` (and then ``c``), 1 = keep the previous
  value, with probability ``p``.

In evaluation mode recurrent dropout and weight drop are off (the layer is the plain layer, bit for
bit) and zoneout uses its expectation, ``h_t = p h_{t-1} + (1 - p) \\tilde h_t``, as in the paper
(like dropout's rescaling, this keeps training and evaluation on the same scale). Layer
normalization is part of the function in both modes.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import dispatch
from rnnkit.nn.dropout import check_probability, drop_connect, drop_weight, mask_seed, random_mask
from rnnkit.nn.kernels import run_kernel, sum_bias
from rnnkit.nn.regularized import (
    RegularizedGRUFunction,
    RegularizedLSTMFunction,
    RegularizedRNNFunction,
)
from rnnkit.nn.regularized_cells import EPS, CellWeights, run_reference

OPTIONS = ("layer_norm", "zoneout", "recurrent_dropout", "weight_drop")


def check_options(mode: str, proj_size: int, impl: str, layer_norm: object, zoneout: object,
                  recurrent_dropout: object, weight_drop: object) -> None:  # fmt: skip
    """``TypeError``/``ValueError`` naming the bad option, in torch.nn's style."""
    if not isinstance(layer_norm, bool):
        raise TypeError(f"layer_norm should be of type bool, got: {type(layer_norm).__name__}")
    # zoneout=1 is meaningful (every unit keeps its state); dropping everything is not.
    check_probability(zoneout, "zoneout", one=True)
    check_probability(recurrent_dropout, "recurrent_dropout")
    check_probability(weight_drop, "weight_drop")
    in_cell = [n for n, v in zip(OPTIONS, (layer_norm, zoneout, recurrent_dropout)) if v]
    if proj_size and in_cell:
        raise ValueError(
            f"proj_size is not supported together with {', '.join(in_cell)}: "
            "drop proj_size or the option (weight_drop does work with proj_size)"
        )
    if impl == "torch" and in_cell:
        raise ValueError(
            f"impl='torch' cannot run {', '.join(in_cell)}: use impl='rnnkit' (the default) or "
            "'auto' (weight_drop does run with impl='torch')"
        )


_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def setup(layer: nn.Module, layer_norm: bool, zoneout: float, recurrent_dropout: float,
          weight_drop: float) -> None:  # fmt: skip
    """Check the options of a constructed torch.nn-style layer, store them on it and add the
    normalization parameters ``ln_*_l{k}[_reverse]`` (after torch's own, initialised 1 and 0)."""
    check_options(layer.mode, layer.proj_size, layer.impl, layer_norm, zoneout,
                  recurrent_dropout, weight_drop)  # fmt: skip
    layer.layer_norm = layer_norm
    layer.zoneout = float(zoneout)
    layer.recurrent_dropout = float(recurrent_dropout)
    layer.weight_drop = float(weight_drop)
    if not layer_norm:
        return
    first = layer.weight_ih_l0
    for k in range(layer.num_layers):
        for direction in range(2 if layer.bidirectional else 1):
            suffix = f"_l{k}" + ("_reverse" if direction else "")
            for name, size in _layer_norm_shapes(layer.mode, layer.hidden_size):
                weight = torch.empty(size, device=first.device, dtype=first.dtype)
                layer.register_parameter(name + suffix, nn.Parameter(weight))
    reset_layer_norm(layer)


def _layer_norm_shapes(mode: str, hidden: int) -> list[tuple[str, int]]:
    """Names (without the ``_l{k}`` suffix) and sizes of one layer-direction's LN parameters."""
    gates = _GATES[mode] * hidden
    shapes = [("ln_weight_ih", gates), ("ln_weight_hh", gates)]
    if mode == "LSTM":
        shapes += [("ln_weight_c", hidden), ("ln_bias_c", hidden)]
    return shapes


def extra_repr(layer: nn.Module) -> str:
    """``, layer_norm=True, zoneout=0.1`` for the options that are on."""
    return "".join(f", {n}={getattr(layer, n)}" for n in OPTIONS if getattr(layer, n, None))


def reset_layer_norm(module: nn.Module) -> None:
    """Gains to one and shifts to zero (the identity normalization), as torch.nn.LayerNorm."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("ln_weight_"):
                p.fill_(1.0)
            elif name.startswith("ln_bias_"):
                p.zero_()


def in_cell(layer: nn.Module) -> bool:
    """Whether options inside the cell change this call: torch's fused operator cannot run
    them (weight drop it can: the dropped ``weight_hh`` is one of its inputs)."""
    on = {n: getattr(layer, n, None) for n in OPTIONS}  # layers pickled before the options
    return bool(on["layer_norm"] or on["zoneout"] or (layer.training and on["recurrent_dropout"]))


def drop_weights(layer: nn.Module, weights: list[Tensor]) -> list[Tensor]:
    """``weights`` (the layer's flat list, as its call uses them) with weight drop applied to
    every ``weight_hh``, for torch's fused operator: one mask per layer and direction, drawn
    before the operator runs (the kernels' path draws the same masks where the layer has no
    dropout between its layers, whose masks it draws in between)."""
    if not drops_weights(layer):
        return weights
    p = layer.weight_drop
    return [drop_connect(w, p) if name.startswith("weight_hh") else w
            for name, w in zip(layer._flat_weights_names, weights)]  # fmt: skip


def drops_weights(layer: nn.Module) -> bool:
    """Whether weight drop changes this call (in training, with a rate above 0)."""
    return bool(layer.training and getattr(layer, "weight_drop", None))  # (pickled before it)


def active(layer: nn.Module) -> bool:
    """Whether the options change this call's computation (else the plain path runs)."""
    return in_cell(layer) or drops_weights(layer)


def _zoneout_weights(layer: nn.Module, rows: int, widths: list[int], like: Tensor) -> list:
    """Per-row weights of the previous state: Bernoulli(p) in training, p in evaluation."""
    p = layer.zoneout
    if not p:
        return [None, None]
    shapes = [(rows, w) for w in widths]
    if layer.training:
        keep = [random_mask(like, s, p) for s in shapes]
    else:
        keep = [like.new_full(s, p) for s in shapes]
    return keep + [None] * (2 - len(keep))


def _recurrent_mask(layer: nn.Module, batch: int, width: int, like: Tensor) -> Tensor | None:
    """One ``(B, H)`` mask per sequence (in the packed batch's order), scaled by ``1/(1-p)``."""
    p = layer.recurrent_dropout
    if not (p and layer.training):
        return None
    return random_mask(like, (batch, width), 1 - p, 1 / (1 - p))


def _params(layer: nn.Module, named: dict[str, Tensor], k: int, direction: int,
            dtype: torch.dtype) -> tuple[CellWeights, tuple[float, int] | None]:  # fmt: skip
    """One layer-direction's parameters (torch's as the layer passes them, cast for the call) and
    its weight drop still to apply, ``(p, seed)`` of the C mask (else None: none, or already
    applied with ``torch.rand``'s mask). The seed is drawn here, so that the masks come from
    torch's generator in the order the module docstring gives, whoever applies them."""
    suffix = f"_l{k}" + ("_reverse" if direction else "")
    w_ih, w_hh, b_ih, b_hh, w_hr = (named.get(n + suffix) for n in _PARAMS)
    drop = None
    if layer.training and layer.weight_drop:
        seed = mask_seed(w_hh)
        if seed is None:
            w_hh = drop_connect(w_hh, layer.weight_drop)
        else:
            drop = (layer.weight_drop, seed)
    names = ("ln_weight_ih", "ln_weight_hh", "ln_weight_c", "ln_bias_c")
    norms = [getattr(layer, n + suffix, None) for n in names]
    norms = [n if n is None or n.dtype == dtype else n.to(dtype) for n in norms]
    return CellWeights(w_ih, w_hh, b_ih, b_hh, *norms, w_hr=w_hr), drop


def _dropped(w: CellWeights, drop: tuple[float, int] | None) -> CellWeights:
    """``w`` with its weight drop applied to ``w_hh`` (an autograd node; the kernels compute
    dL/dW_hh afresh, so backward may mask it in place)."""
    if drop is None:
        return w
    p, seed = drop
    return dataclasses.replace(w, w_hh=drop_connect(w.w_hh, p, grad_in_place=True, seed=seed))


def _input_side(mode: str, x: Tensor, w: CellWeights) -> Tensor:
    """``LN_ih(W_ih x)`` plus the biases that sit outside the recurrent side, for all N rows."""
    bias = w.b_ih if mode == "GRU" else sum_bias(w.b_ih, w.b_hh)
    if w.ln_ih is None:
        return F.linear(x, w.w_ih, bias)
    # torch's layer norm adds the bias in its own pass (and sums its gradient in its backward's)
    return F.layer_norm(F.linear(x, w.w_ih), w.ln_ih.shape, w.ln_ih, bias, EPS)


def _run_kernel(mode: str, x: Tensor, init: list[Tensor], w: CellWeights,
                drop: tuple[float, int] | None, mask: Tensor | None, keep: list, sizes: list[int],
                reverse: bool, use_c: bool, plain: dispatch.Runner) -> tuple:  # fmt: skip
    """One layer-direction by the kernels: the plain ones when only weight drop is on (given
    the stored weight and the mask where they run eagerly with gradients); while
    ``torch.compile``, ``torch.export`` or ``torch.jit.trace`` trace the call, the reference
    cells (one graph node per step and operation, no C loop)."""
    relu = mode == "RNN_RELU"
    if w.ln_ih is None and mask is None and keep[0] is None:
        params = [w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr]
        tensors = [x, *init, *(p for p in params if p is not None)]
        if drop is not None and torch.is_grad_enabled() and dispatch.eager(tensors):
            # dL/dW_hh masked as the kernels form it: no masking pass over it afterwards
            dropped = drop_weight(w.w_hh, *drop)
            y, fin = run_kernel(mode, x, init, params, sizes, reverse, use_c, dropped)
        else:
            params[1] = _dropped(w, drop).w_hh
            y, fin = plain(x, init, params, sizes, reverse)
        return (y, *fin)
    w = _dropped(w, drop)
    if dispatch.tracing([x, w.w_hh]):  # graphs: the reference cells, plain differentiable ops
        y, fin = run_reference(mode, x, init, w, mask, keep, sizes, reverse)
        return (y, *fin)
    gx = _input_side(mode, x, w)
    if mode == "LSTM":
        return RegularizedLSTMFunction.apply(gx, *init, w.w_hh, w.ln_hh, w.ln_c_weight,
                                             w.ln_c_bias, mask, *keep, sizes, reverse,
                                             use_c)  # fmt: skip
    if mode == "GRU":
        return RegularizedGRUFunction.apply(gx, *init, w.w_hh, w.b_hh, w.ln_hh, mask, keep[0],
                                            sizes, reverse, use_c)  # fmt: skip
    return RegularizedRNNFunction.apply(gx, *init, w.w_hh, w.ln_hh, mask, keep[0], relu, sizes,
                                        reverse, use_c)  # fmt: skip


def run(layer: nn.Module, data: Tensor, sizes: list[int], states: list[Tensor],
        named: dict[str, Tensor], *, use_c: bool = True,
        reference: bool = False) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """Every layer and direction of ``layer`` over packed rows ``data`` ``(N, I)``.

    Same contract as the layer's plain path: ``named`` holds torch's parameters by name (as the
    call uses them); returns the last layer's output rows ``(N, D * H)`` and the final states,
    each ``(L * D, B, H)``. ``reference=True`` steps the plain-autograd cells instead of the
    kernels (the oracle; masks are drawn identically).
    """
    finals: list[list[Tensor]] = [[] for _ in states]
    mode, batch, rows = layer.mode, sizes[0], data.shape[0]
    widths = [layer.hidden_size] * len(states)
    directions = 2 if layer.bidirectional else 1
    plain = dispatch.plan(mode, data, list(named.values()), use_c=use_c, proj=layer.proj_size)
    for k in range(layer.num_layers):
        outs = []
        for direction in range(directions):
            index = k * directions + direction
            w, drop = _params(layer, named, k, direction, data.dtype)
            mask = _recurrent_mask(layer, batch, layer.hidden_size, data)
            keep = _zoneout_weights(layer, rows, widths, data)
            init = [s[index] for s in states]
            reverse = direction == 1
            if reference:
                y, fin = run_reference(mode, data, init, _dropped(w, drop), mask, keep, sizes,
                                       reverse)  # fmt: skip
            else:
                y, *fin = _run_kernel(mode, data, init, w, drop, mask, keep, sizes, reverse, use_c,
                                      plain)  # fmt: skip
            outs.append(y)
            for acc, f in zip(finals, fin):
                acc.append(f)
        data = outs[0] if len(outs) == 1 else torch.cat(outs, 1)  # (N, D * H)
        if layer.dropout and layer.training and k < layer.num_layers - 1:
            data = F.dropout(data, layer.dropout, training=True)
    return data, [torch.stack(f) for f in finals]
