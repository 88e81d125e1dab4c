"""MinGRU's and MinLSTM's gates and recurrence in C (``minrnn.c``), through ``ctypes``.

Built on first use by :mod:`rnnkit.cbuild` with the plain loops' flags (vectorized ``exp`` in
float32, OpenMP; :mod:`rnnkit.nn.native`). Optional: :func:`available` says whether it can run,
and otherwise :mod:`rnnkit.nn.minrnn` computes the same function with torch ops and the parallel
scan of :mod:`rnnkit.nn.scan`. Every buffer is checked (device, dtype, shape, contiguity) before
it reaches C, and C checks the sizes again.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch
from torch import Tensor

from rnnkit import cbuild
from rnnkit.nn import native

SOURCE = Path(__file__).with_name("minrnn.c")
# The cell's number in C and its gates per hidden unit.
CELLS = {"mingru": (0, 2), "minlstm": (1, 3)}
_INT_MAX = 2**31 - 1


@functools.cache
def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    real, math, _ = native._TYPES[dtype]
    return cbuild.load(SOURCE, f"rnnkit_minrnn_{real}", (f"-DREAL={real}", *math), native.OPENMP)


def available(*tensors: Tensor) -> bool:
    """Whether the C sweep can run on these tensors: CPU, one float type, library built."""
    dtype = tensors[0].dtype
    same = all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
    return same and dtype in native._TYPES and _library(dtype) is not None


def _sizes(cell: str, pre: Tensor, h0: Tensor) -> tuple[int, int, int, int]:
    """``(cell number, T, B, H)`` of a call, or a ``ValueError`` naming what does not fit."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    number, gates = CELLS[cell]
    if pre.dim() != 3 or h0.dim() != 2:
        raise ValueError(f"expected pre (T, B, G*H) and h0 (B, H), got {pre.dim()}-D, {h0.dim()}-D")
    steps, batch, hidden = pre.shape[0], h0.shape[0], h0.shape[1]
    if min(steps, batch, hidden) < 1 or max(steps, batch, gates * hidden) > _INT_MAX:
        raise ValueError(f"minrnn.c takes 1 to {_INT_MAX} steps, rows and gate units")
    return number, steps, batch, hidden


def _run(name: str, sizes: tuple[int, ...], dtype: torch.dtype, buffers: list) -> None:
    library = _library(dtype) if dtype in native._TYPES else None
    if library is None:
        raise ValueError(f"no C sweep for {dtype} tensors on this machine; use the torch path")
    for what, t, shape in buffers:
        native.check_buffer(what, t, shape, dtype)
    function = getattr(library, name)
    function.restype = ctypes.c_int
    status = function(*(ctypes.c_int(v) for v in sizes),
                      *(ctypes.c_void_p(t.data_ptr()) for _, t, _ in buffers))  # fmt: skip
    if status != 0:
        raise ValueError(f"minrnn.c {name} refused the sizes {sizes} (a bug in rnnkit)")


def forward(cell: str, pre: Tensor, h0: Tensor) -> Tensor:
    """``h`` ``(T, B, H)`` of ``cell`` (``'mingru'`` or ``'minlstm'``) from the input
    projection ``pre`` ``(T, B, G*H)`` and the initial state ``h0`` ``(B, H)``."""
    number, steps, batch, hidden = sizes = _sizes(cell, pre, h0)
    gates = CELLS[cell][1] * hidden
    h = pre.new_empty(steps, batch, hidden)
    _run("min_forward", sizes, pre.dtype, [
        ("pre", pre.contiguous(), (steps, batch, gates)), ("h0", h0.contiguous(), (batch, hidden)),
        ("h", h, (steps, batch, hidden)),
    ])  # fmt: skip
    return h


def backward(cell: str, pre: Tensor, h0: Tensor, h: Tensor, dh: Tensor) -> tuple[Tensor, Tensor]:
    """``(d_pre, dh0)`` from :func:`forward`'s arguments and output ``h`` and ``dh = dL/dh``."""
    number, steps, batch, hidden = sizes = _sizes(cell, pre, h0)
    gates = CELLS[cell][1] * hidden
    d_pre, dh0 = pre.new_empty(steps, batch, gates), h0.new_empty(batch, hidden)
    _run("min_backward", sizes, pre.dtype, [
        ("pre", pre.contiguous(), (steps, batch, gates)), ("h0", h0.contiguous(), (batch, hidden)),
        ("h", h.contiguous(), (steps, batch, hidden)),
        ("dh", dh.contiguous(), (steps, batch, hidden)),
        ("d_pre", d_pre, (steps, batch, gates)), ("dh0", dh0, (batch, hidden)),
    ])  # fmt: skip
    return d_pre, dh0
