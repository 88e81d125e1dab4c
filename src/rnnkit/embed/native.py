"""The C training loops of ``word2vec.c``: compiled on first use, called through ``ctypes``.

One call trains on one chunk of centre words, centre by centre, in place on the float32 weight
matrices (see the comment at the top of ``word2vec.c``). Both loops are word2vec's sequential SGD
exactly (Mikolov et al. 2013; word2vec.c, gensim): CBOW takes ``K`` negatives per centre word,
skip-gram ``K`` per (context word, centre word) pair, and uses them in order. ctypes releases the
GIL during the call, so :class:`rnnkit.embed.train._Trainer`'s worker threads run the loops
concurrently, without locks, as word2vec.c's and gensim's threads do. The library is built by
:mod:`rnnkit.cbuild`; when that fails, :func:`available` says no and training uses its PyTorch
steps (whose skip-gram shares a centre's negatives among its context words: Ji et al. 2016).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch
from torch import Tensor

from rnnkit import cbuild

SOURCE = Path(__file__).with_name("word2vec.c")
# Lets the compiler vectorize the dot products' sums (no OpenMP runtime is involved).
OPTIONAL_FLAGS = ("-fopenmp-simd",)
_POINTER, _INT = ctypes.c_void_p, ctypes.c_int64
_ARGUMENTS = [_POINTER, _POINTER, _INT, _POINTER, _POINTER, _INT, _INT, _INT, _POINTER, _POINTER]
_ARGUMENTS += [_INT, _INT, ctypes.c_float]


@functools.cache
def _library() -> ctypes.CDLL | None:
    lib = cbuild.load(SOURCE, "rnnkit_word2vec", optional=OPTIONAL_FLAGS)
    if lib is not None:
        for name in ("cbow_chunk", "sgns_chunk"):
            getattr(lib, name).argtypes = _ARGUMENTS
            getattr(lib, name).restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether the C loops are built (or can be): a C compiler is there."""
    return _library() is not None


def train_chunk(
    model: str, w_in: Tensor, w_out: Tensor, seq: Tensor, owner: Tensor, start: int, stop: int,
    width: Tensor, negatives: Tensor, *, window: int, lr: float,
) -> None:  # fmt: skip
    """Train ``model`` ("sgns" or "cbow") on the centre words ``seq[start:stop]``, in place.

    Args:
        w_in, w_out: the input and output vectors, float32 contiguous ``(V, D)``.
        seq, owner: the subsampled corpus and the sentence number of each token, int64 ``(n,)``.
        start, stop: the centre positions of the chunk.
        width: each centre's window half-width, int64 ``(stop - start,)``, in ``1..window``.
        negatives: int64; CBOW: each centre's negatives, ``(stop - start, K)``; skip-gram: the
            negatives of each centre's ``a``-th context word (in corpus order) at ``[:, a]``,
            ``(stop - start, 2 * window, K)`` (slots beyond a window's context are unused).
        window: the largest half-width; lr: the step size.
    """
    named = (("seq", seq), ("owner", owner), ("width", width), ("negatives", negatives))
    seq, owner, width, negatives = (_ids(name, t) for name, t in named)
    _check_buffers(model, w_in, w_out, seq, owner, start, stop, width, negatives, window)
    function = getattr(_library(), f"{model}_chunk")
    status = function(
        w_in.data_ptr(), w_out.data_ptr(), w_in.shape[1], seq.data_ptr(), owner.data_ptr(),
        len(seq), start, stop, width.data_ptr(), negatives.data_ptr(), negatives.shape[-1],
        window, lr,
    )  # fmt: skip
    if status == -2:
        raise ValueError(f"word2vec.c {model}_chunk refused its sizes (a bug in rnnkit)")
    if status != 0:
        raise MemoryError("word2vec.c could not allocate its scratch space")


def _ids(name: str, t: Tensor) -> Tensor:
    """An integer CPU tensor as the contiguous int64 the C code reads."""
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got {t.device}")
    return t.contiguous().long()


def _check_buffers(
    model: str, w_in: Tensor, w_out: Tensor, seq: Tensor, owner: Tensor, start: int, stop: int,
    width: Tensor, negatives: Tensor, window: int,
) -> None:  # fmt: skip
    """Raise ``ValueError`` unless every buffer is what the C loop indexes without bounds checks.

    The C code reads ``seq``/``owner`` at positions ``start - window .. stop + window`` and uses
    the word ids there and in ``negatives`` as rows of both weight matrices, so each of those ids
    must lie in ``0 .. V-1`` (checked on the chunk's range only: cheap).
    """
    if model not in ("sgns", "cbow"):
        raise ValueError(f"model must be 'sgns' or 'cbow', got {model!r}")
    for name, t in (("w_in", w_in), ("w_out", w_out)):
        if (
            t.dtype != torch.float32
            or not t.is_contiguous()
            or t.device.type != "cpu"
            or t.dim() != 2
        ):
            raise ValueError(f"{name} must be a contiguous 2-D float32 CPU tensor, got {t.dtype}")
    if w_in.shape != w_out.shape or w_in.shape[1] < 1:
        raise ValueError(f"w_in {tuple(w_in.shape)} and w_out {tuple(w_out.shape)} must match")
    n, vocab = len(seq), w_in.shape[0]
    if seq.shape != (n,) or owner.shape != (n,) or not 0 <= start <= stop <= n or window < 1:
        raise ValueError(
            f"need seq and owner of one length n and 0 <= start <= stop <= n, window >= 1; got "
            f"{tuple(seq.shape)}, {tuple(owner.shape)}, start={start}, stop={stop}, window={window}"
        )
    per_centre = (2 * window,) if model == "sgns" else ()
    if width.shape != (stop - start,) or negatives.shape[:-1] != (stop - start, *per_centre):
        expected = ", ".join(str(s) for s in (stop - start, *per_centre, "K"))
        raise ValueError(
            f"{model} needs width of shape ({stop - start},) and negatives of shape ({expected}), "
            f"got {tuple(width.shape)} and {tuple(negatives.shape)}"
        )
    if stop == start:
        return
    read = seq[max(0, start - window) : min(n, stop + window)]
    for name, ids in (("seq", read), ("negatives", negatives)):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"{name} holds word ids outside 0..{vocab - 1}")
    if int(width.min()) < 1 or int(width.max()) > window:
        raise ValueError(f"width must lie in 1..{window}")
