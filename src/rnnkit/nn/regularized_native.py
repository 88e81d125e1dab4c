"""The C time loops of the layer options (``regularized.c``), through ``ctypes``.

Built on first use by :mod:`rnnkit.cbuild` like :mod:`rnnkit.nn.native`, with the same flags and
the same step machinery (``loop_kernels.h``: rnnkit's packed kernel for the per-step products in
float32, torch's BLAS otherwise; threads splitting the batch; vectorized exp and tanh), called
through the same checked entry (:func:`rnnkit.nn.native._call`). Optional: :func:`available`
says whether it can run, and otherwise :mod:`rnnkit.nn.regularized`'s Functions run their
PyTorch loops, which compute the same function. Every buffer is checked (device, dtype, shape,
contiguity) before it reaches C. The library also draws the options' random masks
(:func:`random_mask`).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit import cbuild
from rnnkit.nn import native
from rnnkit.nn.schedule import Schedule

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("regularized.c")


@functools.cache
def _library(dtype: torch.dtype) -> tuple[ctypes.CDLL, int] | None:
    """The compiled option loops for ``dtype`` and torch's BLAS, built as the plain loops are
    (the same flags: vectorized exp/tanh and rnnkit's packed kernel in float32, OpenMP)."""
    real, math, symbol = native._TYPES[dtype]
    gemm = native._torch_symbol(symbol)  # the BLAS torch exports, as for the plain loops
    if gemm is None:
        return None
    lib = cbuild.load(SOURCE, f"rnnkit_regularized_{real}", (f"-DREAL={real}", *math),
                      native.OPENMP)  # fmt: skip
    return None if lib is None else (lib, ctypes.cast(gemm, ctypes.c_void_p).value)


def available(*tensors: Tensor) -> bool:
    """Whether the C loop can run on these tensors: CPU, one float type, library built."""
    dtype = tensors[0].dtype
    same = all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
    return same and dtype in native._TYPES and _library(dtype) is not None


def _call(name: str, sched: Schedule, hidden: int, w_hh: Tensor, buffers: list,
          flag: bool | None = None) -> None:  # fmt: skip
    """``name(gemm, T, sizes, starts, reverse, B, N, H, [flag,] *buffers)`` through the plain
    loops' call (buffer checks, threads), with ``w_hh``'s element type."""
    scalars = (hidden,) if flag is None else (hidden, int(flag))
    native._call(name, sched, w_hh, scalars, buffers, libraries=_library, source=SOURCE.name)


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def lstm_forward(sched: Schedule, gx: Tensor, w_hh: Tensor, ln_h: Tensor | None,
                 ln_c: tuple[Tensor | None, Tensor | None], mask: Tensor | None,
                 keep: tuple[Tensor | None, Tensor | None], h0: Tensor, c0: Tensor,
                 buffers: dict[str, Tensor | None]) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Run the forward loop; fills ``buffers`` (``hin, cp, g, rec_in, rec_mean, rec_rstd, c_in,
    c_mean, c_rstd, tc``, each ``(N, ...)`` or None) and returns ``(y, h_n, c_n)``."""
    n, b, hidden = sched.total, sched.batch, c0.shape[1]
    gates = 4 * hidden
    h_n, c_n = h0.contiguous().clone(), c0.contiguous().clone()
    y = gx.new_empty(n, hidden)
    shapes = {"hin": (n, hidden), "cp": (n, hidden), "g": (n, gates), "rec_in": (n, gates),
              "rec_mean": (n, 1), "rec_rstd": (n, 1), "c_in": (n, hidden), "c_mean": (n, 1),
              "c_rstd": (n, 1), "tc": (n, hidden)}  # fmt: skip
    _call("reg_lstm_forward", sched, hidden, w_hh, [
        ("gx", gx.contiguous(), (n, gates)), ("w_hh", w_hh.contiguous(), (gates, hidden)),
        ("ln_h", _contiguous(ln_h), (gates,)), ("ln_c_weight", _contiguous(ln_c[0]), (hidden,)),
        ("ln_c_bias", _contiguous(ln_c[1]), (hidden,)), ("mask", _contiguous(mask), (b, hidden)),
        ("keep_h", _contiguous(keep[0]), (n, hidden)),
        ("keep_c", _contiguous(keep[1]), (n, hidden)), ("h", h_n, (b, hidden)),
        ("c", c_n, (b, hidden)), *((k, buffers[k], shapes[k]) for k in shapes),
        ("scratch", gx.new_empty(b, hidden), (b, hidden)), ("y", y, (n, hidden)),
    ])  # fmt: skip
    return y, h_n, c_n


def lstm_backward(sched: Schedule, w_hh: Tensor, ln_h: Tensor | None, ln_cw: Tensor | None,
                  mask: Tensor | None, keep: tuple[Tensor | None, Tensor | None],
                  buffers: dict[str, Tensor | None], dy: Tensor, dh_n: Tensor,
                  dc_n: Tensor) -> tuple[Tensor, ...]:  # fmt: skip
    """Run the backward loop: ``(d_gates, d_rec, dh0, dc0, d_ln_h, d_ln_cw, d_ln_cb)``
    (``d_rec``: dL/d of the raw recurrent product, with ``ln_h``; the normalization gains'
    gradients, summed over all rows in C, None without ``ln_h`` / ``ln_cw``)."""
    n, b, hidden = sched.total, sched.batch, dh_n.shape[1]
    gates = 4 * hidden
    dh, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()
    d_gates = dy.new_empty(n, gates)
    d_rec, d_ln_h = _norm_outputs(dy, n, gates, ln_h)
    d_c_out = dy.new_empty(b, hidden) if ln_cw is not None else None  # scratch
    d_ln_cw, d_ln_cb = (dy.new_empty(hidden), dy.new_empty(hidden)) if ln_cw is not None else (
        None, None)  # fmt: skip
    scratch = dy.new_empty(b, hidden)
    shapes = {"g": (n, gates), "cp": (n, hidden), "tc": (n, hidden)}
    norm_shapes = {"rec_in": (n, gates), "rec_mean": (n, 1), "rec_rstd": (n, 1)}
    cell_shapes = {"c_in": (n, hidden), "c_mean": (n, 1), "c_rstd": (n, 1)}
    _call("reg_lstm_backward", sched, hidden, w_hh, [
        *((k, buffers[k], s) for k, s in shapes.items()),
        ("w_hh", w_hh.contiguous(), (gates, hidden)), ("ln_h", _contiguous(ln_h), (gates,)),
        *((k, buffers[k], s) for k, s in norm_shapes.items()),
        ("ln_c_weight", _contiguous(ln_cw), (hidden,)),
        *((k, buffers[k], s) for k, s in cell_shapes.items()),
        ("mask", _contiguous(mask), (b, hidden)), ("keep_h", _contiguous(keep[0]), (n, hidden)),
        ("keep_c", _contiguous(keep[1]), (n, hidden)), ("dy", dy.contiguous(), (n, hidden)),
        ("d_gates", d_gates, (n, gates)), ("d_rec", d_rec, (n, gates)),
        ("d_c_out", d_c_out, (b, hidden)), ("scratch", scratch, (b, hidden)),
        ("dh", dh, (b, hidden)), ("dc", dc, (b, hidden)), ("d_ln_h", d_ln_h, (gates,)),
        ("d_ln_cw", d_ln_cw, (hidden,)), ("d_ln_cb", d_ln_cb, (hidden,)),
    ])  # fmt: skip
    return d_gates, d_rec, dh, dc, d_ln_h, d_ln_cw, d_ln_cb


def _norm_outputs(like: Tensor, rows: int, width: int,
                  ln: Tensor | None) -> tuple[Tensor | None, Tensor | None]:  # fmt: skip
    """``d_rec (N, G)`` and ``d_ln_h (G)`` of a backward loop, or Nones without normalization."""
    if ln is None:
        return None, None
    return like.new_empty(rows, width), like.new_empty(width)


def _norm_buffers(like: Tensor, rows: int, width: int, ln: Tensor | None) -> dict:
    """``rec_in (N, G), rec_mean (N, 1), rec_rstd (N, 1)``, or Nones without normalization."""
    if ln is None:
        return {"rec_in": None, "rec_mean": None, "rec_rstd": None}
    return {"rec_in": like.new_empty(rows, width), "rec_mean": like.new_empty(rows, 1),
            "rec_rstd": like.new_empty(rows, 1)}  # fmt: skip


def _norm_entries(buffers: dict, rows: int, width: int) -> list:
    return [(k, buffers[k], (rows, width if k == "rec_in" else 1))
            for k in ("rec_in", "rec_mean", "rec_rstd")]  # fmt: skip


def gru_forward(sched: Schedule, gx: Tensor, w_hh: Tensor, b_hh: Tensor | None,
                ln_h: Tensor | None, mask: Tensor | None, keep_h: Tensor | None,
                h0: Tensor) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """``(y, h_n, buffers)``: buffers ``hp, hin, g, gh`` and the normalization's, for backward."""
    n, b, hidden = sched.total, sched.batch, h0.shape[1]
    gates = 3 * hidden
    h_n, y = h0.contiguous().clone(), gx.new_empty(n, hidden)
    buffers = {"hp": gx.new_empty(n, hidden), "hin": gx.new_empty(n, hidden),
               "g": gx.new_empty(n, gates), "gh": gx.new_empty(n, gates),
               **_norm_buffers(gx, n, gates, ln_h)}  # fmt: skip
    _call("reg_gru_forward", sched, hidden, w_hh, [
        ("gx", gx.contiguous(), (n, gates)), ("w_hh", w_hh.contiguous(), (gates, hidden)),
        ("b_hh", _contiguous(b_hh), (gates,)), ("ln_h", _contiguous(ln_h), (gates,)),
        ("mask", _contiguous(mask), (b, hidden)), ("keep_h", _contiguous(keep_h), (n, hidden)),
        ("h", h_n, (b, hidden)), ("hp", buffers["hp"], (n, hidden)),
        ("hin", buffers["hin"], (n, hidden)), ("g", buffers["g"], (n, gates)),
        ("gh", buffers["gh"], (n, gates)), *_norm_entries(buffers, n, gates), ("y", y, (n, hidden)),
    ])  # fmt: skip
    return y, h_n, buffers


def gru_backward(sched: Schedule, w_hh: Tensor, ln_h: Tensor | None, mask: Tensor | None,
                 keep_h: Tensor | None, buffers: dict, dy: Tensor,
                 dh_n: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:  # fmt: skip
    """``(d_gx, d_gh, d_rec, dh0, d_ln_h)``."""
    n, b, hidden = sched.total, sched.batch, dh_n.shape[1]
    gates = 3 * hidden
    dh = dh_n.contiguous().clone()
    d_gx, d_gh = dy.new_empty(n, gates), dy.new_empty(n, gates)
    d_rec, d_ln_h = _norm_outputs(dy, n, gates, ln_h)
    _call("reg_gru_backward", sched, hidden, w_hh, [
        ("g", buffers["g"], (n, gates)), ("gh", buffers["gh"], (n, gates)),
        ("hp", buffers["hp"], (n, hidden)), ("w_hh", w_hh.contiguous(), (gates, hidden)),
        ("ln_h", _contiguous(ln_h), (gates,)), *_norm_entries(buffers, n, gates),
        ("mask", _contiguous(mask), (b, hidden)), ("keep_h", _contiguous(keep_h), (n, hidden)),
        ("dy", dy.contiguous(), (n, hidden)), ("d_gx", d_gx, (n, gates)),
        ("d_gh", d_gh, (n, gates)), ("d_rec", d_rec, (n, gates)),
        ("scratch", dy.new_empty(b, hidden), (b, hidden)), ("dh", dh, (b, hidden)),
        ("d_ln_h", d_ln_h, (gates,)),
    ])  # fmt: skip
    return d_gx, d_gh, d_rec, dh, d_ln_h


def rnn_forward(sched: Schedule, gx: Tensor, w_hh: Tensor, ln_h: Tensor | None,
                mask: Tensor | None, keep_h: Tensor | None, relu: bool,
                h0: Tensor) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """``(y, h_n, buffers)``: buffers ``hin, act`` and the normalization's, for backward."""
    n, b, hidden = sched.total, sched.batch, h0.shape[1]
    h_n, y = h0.contiguous().clone(), gx.new_empty(n, hidden)
    buffers = {"hin": gx.new_empty(n, hidden), "act": gx.new_empty(n, hidden),
               **_norm_buffers(gx, n, hidden, ln_h)}  # fmt: skip
    _call("reg_rnn_forward", sched, hidden, w_hh, [
        ("gx", gx.contiguous(), (n, hidden)), ("w_hh", w_hh.contiguous(), (hidden, hidden)),
        ("ln_h", _contiguous(ln_h), (hidden,)), ("mask", _contiguous(mask), (b, hidden)),
        ("keep_h", _contiguous(keep_h), (n, hidden)), ("h", h_n, (b, hidden)),
        ("hin", buffers["hin"], (n, hidden)), ("act", buffers["act"], (n, hidden)),
        *_norm_entries(buffers, n, hidden), ("y", y, (n, hidden)),
    ], flag=relu)  # fmt: skip
    return y, h_n, buffers


def rnn_backward(sched: Schedule, w_hh: Tensor, ln_h: Tensor | None, mask: Tensor | None,
                 keep_h: Tensor | None, relu: bool, buffers: dict, dy: Tensor,
                 dh_n: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:  # fmt: skip
    """``(d_pre, d_rec, dh0, d_ln_h)``."""
    n, b, hidden = sched.total, sched.batch, dh_n.shape[1]
    dh = dh_n.contiguous().clone()
    d_pre = dy.new_empty(n, hidden)
    d_rec, d_ln_h = _norm_outputs(dy, n, hidden, ln_h)
    _call("reg_rnn_backward", sched, hidden, w_hh, [
        ("act", buffers["act"], (n, hidden)), ("w_hh", w_hh.contiguous(), (hidden, hidden)),
        ("ln_h", _contiguous(ln_h), (hidden,)), *_norm_entries(buffers, n, hidden),
        ("mask", _contiguous(mask), (b, hidden)), ("keep_h", _contiguous(keep_h), (n, hidden)),
        ("dy", dy.contiguous(), (n, hidden)), ("d_pre", d_pre, (n, hidden)),
        ("d_rec", d_rec, (n, hidden)), ("scratch", dy.new_empty(b, hidden), (b, hidden)),
        ("dh", dh, (b, hidden)), ("d_ln_h", d_ln_h, (hidden,)),
    ], flag=relu)  # fmt: skip
    return d_pre, d_rec, dh, d_ln_h


_REAL = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}


def random_mask(shape: tuple[int, ...], keep: float, scale: float, seed: int, *, dtype: torch.dtype,
                weight: Tensor | None = None, factor: bool = True, in_place: bool = False,
                kept: bool = False) -> tuple[Tensor | None, ...]:  # fmt: skip
    """``(factor, dropped)``: ``factor`` of ``shape`` holds ``scale`` with probability ``keep``
    rounded to a multiple of 2^-16 (16 random bits per entry, see ``regularized.c``) and 0
    otherwise, and ``dropped = weight * factor`` (None without ``weight``, which must then have
    ``shape``; ``factor=False`` returns no factor, only ``dropped``; ``in_place=True`` writes
    ``dropped`` into ``weight`` itself). The uniforms are a 32-bit hash of a counter keyed by
    ``seed`` (a 64-bit integer), the same for any number of threads, so the same seed draws the
    same mask again; ``dtype`` one :func:`available` takes. ``kept=True`` (with ``weight`` and
    ``factor=False``) appends a third result: the mask as ``uint8`` bytes, 1 where kept (for
    :func:`masked_weight_grad`), written in the same pass."""
    library = _library(dtype) if dtype in _REAL else None
    if library is None:
        raise ValueError(f"no C loop for {dtype} tensors on this machine; use PyTorch's")
    if weight is None and not factor:
        raise ValueError("random_mask: nothing to write (no weight and factor=False)")
    if kept and (weight is None or factor or not scale > 0):
        raise ValueError("random_mask: kept needs a weight, factor=False and a positive scale")
    out = torch.empty(shape, dtype=dtype) if factor else None
    if in_place and (weight is None or not weight.is_contiguous()):
        raise ValueError("random_mask: in_place needs a contiguous weight")
    w = None if weight is None else weight.detach().contiguous()
    dropped = None if w is None else (w if in_place else torch.empty_like(w))
    bytes_ = torch.empty(shape, dtype=torch.uint8) if kept else None
    for what, t in (("factor", out), ("weight", w), ("dropped", dropped)):
        native.check_buffer(what, t, tuple(shape), dtype)
    native.check_buffer("kept", bytes_, tuple(shape), torch.uint8)
    function = library[0].random_mask
    function.restype = ctypes.c_int
    status = function(
        ctypes.c_long(math.prod(shape)), ctypes.c_uint64(seed % 2**64),
        ctypes.c_uint64(round(keep * 2**16)), _REAL[dtype](scale),
        *(ctypes.c_void_p(0 if t is None else t.data_ptr()) for t in (w, dropped, out, bytes_)),
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"regularized.c random_mask refused keep={keep} (a bug in rnnkit)")
    return (out, dropped, bytes_) if kept else (out, dropped)


def masked_weight_grad(d_pre: Tensor, h_prev: Tensor, kept: Tensor, scale: float) -> Tensor:
    """``(d_pre^T h_prev) * kept * scale``: the gradient of a recurrent weight ``W`` ``(G, P)``
    whose time loop multiplied by ``W * kept * scale`` (weight drop), given the gradient of the
    per-step products ``d_pre`` ``(N, G)``, the rows ``h_prev`` ``(N, P)`` and the mask bytes
    ``kept`` ``(G, P)`` of :func:`random_mask`. One C call: the product on torch's BLAS a block of
    rows at a time, each block masked while it is in the cache."""
    dtype = d_pre.dtype
    library = _library(dtype) if dtype in _REAL else None
    if library is None:
        raise ValueError(f"no C loop for {dtype} tensors on this machine; use PyTorch's")
    rows, gates = d_pre.shape
    width = h_prev.shape[-1]
    if rows < 1 or rows > native.MAX_ROWS:
        raise ValueError(f"masked_weight_grad takes 1 to {native.MAX_ROWS} rows, got {rows}")
    d_pre, h_prev = d_pre.contiguous(), h_prev.contiguous()
    out = d_pre.new_empty(gates, width)
    for what, t, shape, kind in (("d_pre", d_pre, (rows, gates), dtype),
                                 ("h_prev", h_prev, (rows, width), dtype),
                                 ("kept", kept, (gates, width), torch.uint8),
                                 ("out", out, (gates, width), dtype)):  # fmt: skip
        native.check_buffer(what, t, shape, kind)
    lib, gemm = library
    function = lib.masked_weight_grad
    function.restype = ctypes.c_int
    status = function(
        ctypes.c_void_p(gemm), ctypes.c_long(rows), ctypes.c_int(gates), ctypes.c_int(width),
        *(ctypes.c_void_p(t.data_ptr()) for t in (d_pre, h_prev, kept)), _REAL[dtype](scale),
        ctypes.c_void_p(out.data_ptr()),
    )  # fmt: skip
    if status != 0:
        raise ValueError("regularized.c masked_weight_grad refused its sizes (a bug in rnnkit)")
    return out


class DroppedWeight(NamedTuple):
    """A recurrent weight after DropConnect, for the plain kernels to multiply with while they
    form the gradient of the stored weight themselves (:func:`rnnkit.nn.dropout.drop_weight`)."""

    weight: Tensor  # (G, P): W * mask / (1 - p), what the time loop multiplies with
    kept: Tensor  # (G, P) uint8: 1 where an entry of W is kept
    scale: float  # 1 / (1 - p)

    def factor(self) -> Tensor:
        """The mask as a tensor of ``scale`` and 0 (for the differentiable references)."""
        return self.kept.to(self.weight.dtype).mul_(self.scale)

    def grad(self, d_pre: Tensor, h_prev: Tensor) -> Tensor:
        """dL/dW of the stored weight from the loop's ``d_pre`` ``(N, G)`` and ``h_prev``
        ``(N, P)``: ``(d_pre^T h_prev) * mask``, one C pass (the mask applied block by block
        right after the product, where a product and a masking pass made two)."""
        return masked_weight_grad(d_pre, h_prev, self.kept, self.scale)
