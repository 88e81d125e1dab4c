"""The C time loops of ``native.c``: compiled on first use, called through ``ctypes``.

The loop over time steps is where a Python implementation pays per-step interpreter overhead; the C
loops do each step with one call to the BLAS that torch itself uses (``sgemm_``/``dgemm_`` exported
by ``libtorch_cpu``) plus one fused pass over the gates. The matrix products over all N rows stay in
torch (see :mod:`rnnkit.nn.kernels`). Everything here is optional: if there is no C compiler, no
exported BLAS symbol, or the tensors are not float32/float64 on the CPU, :func:`available` says no
and the kernels run their pure-PyTorch loops, which compute the same function.

The shared library is built on first use by :mod:`rnnkit.cbuild` (the system ``cc``, cached
under ``~/.cache/rnnkit/native``, rebuilt when the source changes).
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit import cbuild
from rnnkit.nn.loops import project
from rnnkit.nn.schedule import Schedule

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
# Threads split the batch inside the C loops (OpenMP, the runtime torch itself loads); a compiler
# without OpenMP support builds single-threaded loops instead.
OPENMP = ("-fopenmp",)
_TYPES = {
    torch.float32: ("float", ("-DVECTOR_MATH",), "sgemm_"),
    torch.float64: ("double", ("-DEXP=exp", "-DTANH=tanh"), "dgemm_"),
}


def _recipe(dtype: torch.dtype) -> tuple[Path, str, tuple[str, ...], tuple[str, ...]]:
    """``(source, name, flags, optional flags)`` of the loops for ``dtype``, for rnnkit.cbuild."""
    real, math, _ = _TYPES[dtype]
    return SOURCE, f"rnnkit_loops_{real}", (f"-DREAL={real}", *math), OPENMP


def _build(dtype: torch.dtype) -> Path:
    return cbuild.build(*_recipe(dtype))


@functools.cache
def _torch_symbol(symbol: str) -> ctypes._CFuncPtr | None:
    """A C function exported by torch's ``libtorch_cpu`` (its BLAS), or None."""
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        if (lib_dir / name).exists():
            try:
                return getattr(ctypes.CDLL(str(lib_dir / name)), symbol)
            except (OSError, AttributeError):
                return None
    return None


@functools.cache
def _library(dtype: torch.dtype) -> tuple[ctypes.CDLL, int] | None:
    """The compiled loops for ``dtype`` and the BLAS address, or None when unavailable."""
    gemm = _torch_symbol(_TYPES[dtype][2])
    if gemm is None:
        log.info("torch exports no %s; using the PyTorch loops", _TYPES[dtype][2])
        return None
    lib = cbuild.load(*_recipe(dtype))
    if lib is None:
        return None
    return lib, ctypes.cast(gemm, ctypes.c_void_p).value


def available(*tensors: Tensor) -> bool:
    """Whether the C loops can run on tensors like these: all on the CPU, all float32 or all
    float64 (never a mix: the loops have one element type), and the library built."""
    dtype = tensors[0].dtype
    same = all(t.is_cpu and t.dtype == dtype for t in tensors)
    return same and dtype in _TYPES and _library(dtype) is not None


# Below this many floating-point operations per step, the per-step matrix products run on one
# thread: splitting a small product costs a thread synchronisation per step, which dominates (and
# stalls badly when other processes share the cores). See benchmarks/README.md.
SMALL_STEP_FLOPS = 2**24
# The C loops index rows with int: a packed batch must have fewer rows than this.
MAX_ROWS = 2**31 - 1


def check_buffer(what: str, t: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Raise ``ValueError`` unless ``t`` is a contiguous CPU tensor of ``dtype`` and ``shape``.

    Every buffer handed to C goes through here: the C code trusts the pointer to hold exactly
    ``prod(shape)`` elements of its element type, so anything else would read or write out of
    bounds. (``None`` passes: C receives a null pointer and knows the buffer is absent.)
    """
    if t is None or (t.is_cpu and t.dtype == dtype and t.shape == shape and t.is_contiguous()):
        return
    problems = []
    if t.device.type != "cpu":
        problems.append(f"device {t.device}")
    if t.dtype != dtype:
        problems.append(f"dtype {t.dtype}")
    if tuple(t.shape) != shape:
        problems.append(f"shape {tuple(t.shape)}")
    if not t.is_contiguous():
        problems.append("not contiguous")
    if problems:
        raise ValueError(
            f"C loop buffer {what} must be a contiguous {dtype} CPU tensor of shape {shape}, "
            f"got {', '.join(problems)}"
        )


def _call(
    name: str, sched: Schedule, weight: Tensor, scalars: tuple[int, ...],
    buffers: list[tuple[str, Tensor | None, tuple[int, ...]]], *,
    libraries: Callable[[torch.dtype], tuple[ctypes.CDLL, int] | None] | None = None,
    source: str = SOURCE.name,
) -> None:  # fmt: skip
    """Call ``name(gemm, T, sizes, starts, reverse, B, N, *scalars, *buffers)`` after checking
    every buffer against its expected shape and the element type of ``weight``.

    ``weight`` is the recurrent weight: its dtype picks the library (float or double) and its size
    the threading of the per-step matrix product. The C function checks the schedule against
    ``B`` and ``N`` again and returns nonzero, touching nothing, when they disagree.
    ``libraries`` gives the compiled loops of a dtype (this module's by default; the layer options'
    loops of ``source`` share this call, see :mod:`rnnkit.nn.regularized_native`).
    """
    dtype = weight.dtype
    library = (libraries or _library)(dtype) if dtype in _TYPES else None
    if library is None:
        raise ValueError(f"no C loop for {dtype} tensors on this machine; use the PyTorch loop")
    lib, gemm = library
    steps, sizes, starts, pointers = c_arguments(sched, buffers, dtype)
    set_threads = _torch_symbol("MKL_Set_Num_Threads_Local")  # C interface: int by value
    small = 2 * sched.batch * weight.numel() < SMALL_STEP_FLOPS and set_threads is not None
    previous = set_threads(1) if small else 0
    try:
        function = getattr(lib, name)
        function.restype = ctypes.c_int
        status = function(
            ctypes.c_void_p(gemm), steps, sizes, starts, int(sched.reverse), sched.batch,
            ctypes.c_long(sched.total), *(ctypes.c_int(int(v)) for v in scalars), *pointers,
        )  # fmt: skip
    finally:
        if small:
            set_threads(previous)  # 0 restores torch's (global) setting
    if status == 2:
        raise MemoryError(f"{source} {name}: out of memory for its scratch space")
    if status != 0:
        raise ValueError(f"{source} {name} refused the schedule {sched.sizes} (a bug in rnnkit)")


def c_arguments(sched: Schedule, buffers: list, dtype: torch.dtype) -> tuple[int, Any, Any, list]:
    """Check every ``(what, tensor, shape)`` of ``buffers`` against its shape and ``dtype`` and
    the schedule against the C loops' row limit; returns the C arguments ``(steps, sizes,
    starts, pointers)`` shared by every loop entry (``starts`` is filled in by C)."""
    if sched.total > MAX_ROWS:
        raise ValueError(f"the C loops take at most {MAX_ROWS} rows, got {sched.total}")
    for what, tensor, shape in buffers:
        check_buffer(what, tensor, shape, dtype)
    steps = len(sched.sizes)
    sizes = (ctypes.c_int * steps)(*sched.sizes)
    starts = (ctypes.c_int * steps)()
    pointers = [ctypes.c_void_p(t.data_ptr() if t is not None else 0) for _, t, _ in buffers]
    return steps, sizes, starts, pointers


def lstm_forward(
    sched: Schedule, gates: Tensor, w_hh: Tensor, w_hr: Tensor | None, h0: Tensor, c0: Tensor
) -> tuple[Tensor, ...]:
    """Returns ``(h_prev, c_prev, c, tanh_c, h_full, y, h_n, c_n)``, as ``loops.lstm_forward``."""
    n, b, hidden = sched.total, sched.batch, c0.shape[1]
    out = h0.shape[1]
    h_n, c_n = h0.contiguous().clone(), c0.contiguous().clone()
    h_prev, y = gates.new_empty(n, out), gates.new_empty(n, out)
    c_prev, c, tanh_c = (gates.new_empty(n, hidden) for _ in range(3))
    h_full = gates.new_empty(n, hidden) if w_hr is not None else None
    w_hr = w_hr.contiguous() if w_hr is not None else None
    _call("lstm_forward", sched, w_hh, (hidden, out), [
        ("gates", gates, (n, 4 * hidden)), ("w_hh", w_hh.contiguous(), (4 * hidden, out)),
        ("w_hr", w_hr, (out, hidden)), ("h", h_n, (b, out)), ("c", c_n, (b, hidden)),
        ("h_prev", h_prev, (n, out)), ("c_prev", c_prev, (n, hidden)), ("c_all", c, (n, hidden)),
        ("tanh_c", tanh_c, (n, hidden)), ("h_full", h_full, (n, hidden)), ("y", y, (n, out)),
    ])  # fmt: skip
    return h_prev, c_prev, c, tanh_c, (y if h_full is None else h_full), y, h_n, c_n


# Rows of input projection that lstm_infer computes at a time: about 4 MB of gates, which stay in
# the cache until the steps read them.
INFER_CHUNK_BYTES = 4 << 20


def lstm_infer(
    sched: Schedule, x: Tensor, w_ih: Tensor, bias: Tensor | None, w_hh: Tensor, h0: Tensor,
    c0: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The LSTM forward pass without anything kept for backward (no projection): ``(y, h_n, c_n)``.

    For inference (no gradient wanted): the input projection is formed step by step (threads
    splitting the hidden units, or each its rows) or, where rnnkit's packed kernel does not apply,
    a few steps at a time into ``gates``; the N x 4H gates never go to memory in full. Same
    function as :func:`lstm_forward`.
    """
    n, b, hidden, features = sched.total, sched.batch, h0.shape[1], x.shape[1]
    h_n, c_n = h0.contiguous().clone(), c0.contiguous().clone()
    y = x.new_empty(n, hidden)
    chunk = max(b, INFER_CHUNK_BYTES // (4 * hidden * x.element_size()))
    gates = x.new_empty(min(chunk, n), 4 * hidden)
    bias = bias.contiguous() if bias is not None else None
    _call("lstm_infer", sched, w_hh, (hidden, features, chunk), [
        ("x", x.contiguous(), (n, features)), ("w_ih", w_ih.contiguous(), (4 * hidden, features)),
        ("bias", bias, (4 * hidden,)), ("w_hh", w_hh.contiguous(), (4 * hidden, hidden)),
        ("h", h_n, (b, hidden)), ("c", c_n, (b, hidden)),
        ("gates", gates, (min(chunk, n), 4 * hidden)), ("y", y, (n, hidden)),
    ])  # fmt: skip
    return y, h_n, c_n


def lstm_backward(
    sched: Schedule, gates: Tensor, c_prev: Tensor, tanh_c: Tensor, w_hh: Tensor,
    w_hr: Tensor | None, dy: Tensor, dh_n: Tensor, dc_n: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(d_gates, dh_total, dh0, dc0)``."""
    n, b, hidden, out = sched.total, sched.batch, tanh_c.shape[1], dy.shape[1]
    dh_total = dy.contiguous().clone()
    dh, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()
    d_gates = torch.empty_like(gates)
    scratch = gates.new_empty(b, hidden) if w_hr is not None else None
    w_hr = w_hr.contiguous() if w_hr is not None else None
    _call("lstm_backward", sched, w_hh, (hidden, out), [
        ("gates", gates, (n, 4 * hidden)), ("c_prev", c_prev, (n, hidden)),
        ("tanh_c", tanh_c, (n, hidden)), ("w_hh", w_hh.contiguous(), (4 * hidden, out)),
        ("w_hr", w_hr, (out, hidden)), ("dy", dh_total, (n, out)),
        ("d_gates", d_gates, (n, 4 * hidden)), ("scratch", scratch, (b, hidden)),
        ("dh", dh, (b, out)), ("dc", dc, (b, hidden)),
    ])  # fmt: skip
    return d_gates, dh_total, dh, dc


def gru_forward(
    sched: Schedule, gi: Tensor, w_hh: Tensor, b_hh: Tensor | None, h0: Tensor
) -> tuple[Tensor, ...]:
    """Returns ``(gh, h_prev, y, h_n)``; ``gi`` is overwritten with the gates r, z, n."""
    n, b, hidden = sched.total, sched.batch, h0.shape[1]
    h_n = h0.contiguous().clone()
    gh = torch.empty_like(gi)
    h_prev, y = gi.new_empty(n, hidden), gi.new_empty(n, hidden)
    b_hh = b_hh.contiguous() if b_hh is not None else None
    _call("gru_forward", sched, w_hh, (hidden,), [
        ("gi", gi, (n, 3 * hidden)), ("gh", gh, (n, 3 * hidden)),
        ("w_hh", w_hh.contiguous(), (3 * hidden, hidden)), ("b_hh", b_hh, (3 * hidden,)),
        ("h", h_n, (b, hidden)), ("h_prev", h_prev, (n, hidden)), ("y", y, (n, hidden)),
    ])  # fmt: skip
    return gh, h_prev, y, h_n


def gru_backward(
    sched: Schedule, gi: Tensor, gh: Tensor, h_prev: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(d_gi, d_gh, dh0)``."""
    n, b, hidden = sched.total, sched.batch, h_prev.shape[1]
    dh = dh_n.contiguous().clone()
    d_gi, d_gh = torch.empty_like(gi), torch.empty_like(gh)
    _call("gru_backward", sched, w_hh, (hidden,), [
        ("gi", gi, (n, 3 * hidden)), ("gh", gh, (n, 3 * hidden)), ("h_prev", h_prev, (n, hidden)),
        ("w_hh", w_hh.contiguous(), (3 * hidden, hidden)), ("dy", dy.contiguous(), (n, hidden)),
        ("d_gi", d_gi, (n, 3 * hidden)), ("d_gh", d_gh, (n, 3 * hidden)), ("dh", dh, (b, hidden)),
    ])  # fmt: skip
    return d_gi, d_gh, dh


def rnn_forward(
    sched: Schedule, x: Tensor, w_ih: Tensor, bias: Tensor | None, w_hh: Tensor, h0: Tensor,
    relu: bool,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(h_prev, y, h_n)``."""
    n, b, hidden = sched.total, sched.batch, h0.shape[1]
    y = project(x, w_ih, bias)  # (N, H): pre-activations, overwritten with h_t
    h_n = h0.contiguous().clone()
    h_prev = torch.empty_like(y)
    _call("rnn_forward", sched, w_hh, (hidden, relu), [
        ("w_hh", w_hh.contiguous(), (hidden, hidden)), ("h", h_n, (b, hidden)),
        ("h_prev", h_prev, (n, hidden)), ("y", y, (n, hidden)),
    ])  # fmt: skip
    return h_prev, y, h_n


def rnn_backward(
    sched: Schedule, y: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor, relu: bool
) -> tuple[Tensor, Tensor]:
    """Returns ``(d_pre, dh0)``."""
    n, b, hidden = sched.total, sched.batch, y.shape[1]
    dh = dh_n.contiguous().clone()
    d_pre = torch.empty_like(y)
    _call("rnn_backward", sched, w_hh, (hidden, relu), [
        ("y", y, (n, hidden)), ("w_hh", w_hh.contiguous(), (hidden, hidden)),
        ("dy", dy.contiguous(), (n, hidden)), ("d_pre", d_pre, (n, hidden)),
        ("dh", dh, (b, hidden)),
    ])  # fmt: skip
    return d_pre, dh
