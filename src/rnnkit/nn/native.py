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
from pathlib import Path

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


def available(x: Tensor) -> bool:
    """Whether the C loops can run on tensors like ``x`` (CPU, float32/float64)."""
    return x.device.type == "cpu" and x.dtype in _TYPES and _library(x.dtype) is not None


# Below this many floating-point operations per step, the per-step matrix products run on one
# thread: splitting a small product costs a thread synchronisation per step, which dominates (and
# stalls badly when other processes share the cores). See benchmarks/README.md.
SMALL_STEP_FLOPS = 2**24


def _call(name: str, sched: Schedule, weight: Tensor, *args: object) -> None:
    """Call ``name(gemm, T, sizes, starts, reverse, *args)``; tensors are passed as pointers.

    ``weight`` is the recurrent weight, which sets the size of the per-step matrix product.
    """
    lib, gemm = _library(args_dtype(args))
    steps = len(sched.sizes)
    sizes = (ctypes.c_int * steps)(*sched.sizes)
    starts = (ctypes.c_int * steps)()
    converted = []
    for a in args:
        if isinstance(a, Tensor):
            assert a.is_contiguous()
            converted.append(ctypes.c_void_p(a.data_ptr()))
        elif a is None:
            converted.append(ctypes.c_void_p(0))
        else:
            converted.append(ctypes.c_int(int(a)))
    set_threads = _torch_symbol("MKL_Set_Num_Threads_Local")  # C interface: int by value
    small = 2 * sched.batch * weight.numel() < SMALL_STEP_FLOPS and set_threads is not None
    previous = set_threads(1) if small else 0
    try:
        function = getattr(lib, name)
        function(ctypes.c_void_p(gemm), steps, sizes, starts, int(sched.reverse), *converted)
    finally:
        if small:
            set_threads(previous)  # 0 restores torch's (global) setting


def args_dtype(args: tuple) -> torch.dtype:
    return next(a.dtype for a in args if isinstance(a, Tensor))


def lstm_forward(
    sched: Schedule, gates: Tensor, w_hh: Tensor, w_hr: Tensor | None, h0: Tensor, c0: Tensor
) -> tuple[Tensor, ...]:
    """Returns ``(h_prev, c_prev, c, tanh_c, h_full, y, h_n, c_n)``, as ``loops.lstm_forward``."""
    n, hidden = sched.total, c0.shape[1]
    out = h0.shape[1]
    h_n, c_n = h0.contiguous().clone(), c0.contiguous().clone()
    h_prev, y = gates.new_empty(n, out), gates.new_empty(n, out)
    c_prev, c, tanh_c = (gates.new_empty(n, hidden) for _ in range(3))
    h_full = gates.new_empty(n, hidden) if w_hr is not None else None
    w_hr = w_hr.contiguous() if w_hr is not None else None
    _call("lstm_forward", sched, w_hh, hidden, out, gates, w_hh.contiguous(), w_hr, h_n, c_n,
          h_prev, c_prev, c, tanh_c, h_full, y)  # fmt: skip
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
    hidden = h0.shape[1]
    h_n, c_n = h0.contiguous().clone(), c0.contiguous().clone()
    y = x.new_empty(sched.total, hidden)
    chunk = max(sched.batch, INFER_CHUNK_BYTES // (4 * hidden * x.element_size()))
    gates = x.new_empty(min(chunk, sched.total), 4 * hidden)
    bias = bias.contiguous() if bias is not None else None
    _call("lstm_infer", sched, w_hh, hidden, x.shape[1], x.contiguous(), w_ih.contiguous(), bias,
          w_hh.contiguous(), h_n, c_n, gates, chunk, y)  # fmt: skip
    return y, h_n, c_n


def lstm_backward(
    sched: Schedule, gates: Tensor, c_prev: Tensor, tanh_c: Tensor, w_hh: Tensor,
    w_hr: Tensor | None, dy: Tensor, dh_n: Tensor, dc_n: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(d_gates, dh_total, dh0, dc0)``."""
    hidden, out = tanh_c.shape[1], dy.shape[1]
    dh_total = dy.contiguous().clone()
    dh, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()
    d_gates = torch.empty_like(gates)
    scratch = gates.new_empty(sched.batch, hidden) if w_hr is not None else None
    w_hr = w_hr.contiguous() if w_hr is not None else None
    _call("lstm_backward", sched, w_hh, hidden, out, gates, c_prev, tanh_c, w_hh.contiguous(),
          w_hr, dh_total, d_gates, scratch, dh, dc)  # fmt: skip
    return d_gates, dh_total, dh, dc


def gru_forward(
    sched: Schedule, gi: Tensor, w_hh: Tensor, b_hh: Tensor | None, h0: Tensor
) -> tuple[Tensor, ...]:
    """Returns ``(gh, h_prev, y, h_n)``; ``gi`` is overwritten with the gates r, z, n."""
    n, hidden = sched.total, h0.shape[1]
    h_n = h0.contiguous().clone()
    gh = torch.empty_like(gi)
    h_prev, y = gi.new_empty(n, hidden), gi.new_empty(n, hidden)
    b_hh = b_hh.contiguous() if b_hh is not None else None
    _call("gru_forward", sched, w_hh, hidden, gi, gh, w_hh.contiguous(), b_hh, h_n, h_prev, y)
    return gh, h_prev, y, h_n


def gru_backward(
    sched: Schedule, gi: Tensor, gh: Tensor, h_prev: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(d_gi, d_gh, dh0)``."""
    dh = dh_n.contiguous().clone()
    d_gi, d_gh = torch.empty_like(gi), torch.empty_like(gh)
    _call("gru_backward", sched, w_hh, h_prev.shape[1], gi, gh, h_prev, w_hh.contiguous(),
          dy.contiguous(), d_gi, d_gh, dh)  # fmt: skip
    return d_gi, d_gh, dh


def rnn_forward(
    sched: Schedule, x: Tensor, w_ih: Tensor, bias: Tensor | None, w_hh: Tensor, h0: Tensor,
    relu: bool,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns ``(h_prev, y, h_n)``."""
    y = project(x, w_ih, bias)  # (N, H): pre-activations, overwritten with h_t
    h_n = h0.contiguous().clone()
    h_prev = torch.empty_like(y)
    _call("rnn_forward", sched, w_hh, h0.shape[1], relu, w_hh.contiguous(), h_n, h_prev, y)
    return h_prev, y, h_n


def rnn_backward(
    sched: Schedule, y: Tensor, w_hh: Tensor, dy: Tensor, dh_n: Tensor, relu: bool
) -> tuple[Tensor, Tensor]:
    """Returns ``(d_pre, dh0)``."""
    dh = dh_n.contiguous().clone()
    d_pre = torch.empty_like(y)
    _call("rnn_backward", sched, w_hh, y.shape[1], relu, y, w_hh.contiguous(), dy.contiguous(),
          d_pre, dh)  # fmt: skip
    return d_pre, dh
