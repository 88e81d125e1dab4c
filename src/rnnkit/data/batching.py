"""Language-model batches: a token sequence as B contiguous streams, read in truncated-BPTT windows.

Batchify cuts the corpus into ``B`` equal, contiguous streams, one per batch column, dropping the
few tokens that do not fill the last row. With the alphabet as corpus and ``B = 4``::

    a b c d e f g h i j k l m n o p q r s t u v w x y z
    -> streams (T=6, B=4):   column 0    column 1    column 2    column 3
                              a           g           m           s
                              b           h           n           t
                              c           i           o           u
                              d           j           p           v
                              e           k           q           w
                              f           l           r           x

Window ``i`` with ``bptt = 2`` takes rows ``2i .. 2i+1`` as inputs and the rows one below as
targets: window 0 reads ``(a b | g h | m n | s t)`` and predicts ``(b c | h i | n o | t u)``.
Because column ``b`` of window ``i + 1`` continues column ``b`` of window ``i``, a model can carry
its hidden state from one window to the next (detached, so gradients stop at the window edge).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.errors import DataError


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Cut a 1-D token-id tensor into ``batch_size`` contiguous streams.

    Inputs: ids (L,). Outputs: streams (T, B) with ``T = L // B``; column ``b`` holds
    ``ids[b*T : (b+1)*T]``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    rows = ids.numel() // batch_size
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()  # (T, B)


def num_windows(streams: Tensor, bptt: int) -> int:
    """How many windows of up to ``bptt`` steps cover ``streams`` (the last may be shorter)."""
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    return max(0, (streams.size(0) - 1 + bptt - 1) // bptt)


def get_window(streams: Tensor, index: int, bptt: int) -> tuple[Tensor, Tensor]:
    """Inputs and targets of window ``index``: rows ``[index*bptt, index*bptt + t)`` and the rows
    one step later, with ``t = min(bptt, T - 1 - index*bptt)``.

    Outputs: inputs (t, B), targets (t, B).
    """
    start = index * bptt
    length = min(bptt, streams.size(0) - 1 - start)
    if length < 1:
        raise IndexError(f"window {index} is past the end of {streams.size(0)} rows")
    return streams[start : start + length], streams[start + 1 : start + 1 + length]


def check_long_enough(n_tokens: int, batch_size: int, bptt: int, *, what: str) -> None:
    """Raise :class:`DataError` unless ``n_tokens`` fill at least one ``batch_size x (bptt+1)``
    window (the least a training step needs)."""
    need = batch_size * (bptt + 1)
    if n_tokens < need:
        raise DataError(
            f"{what} has {n_tokens} tokens, fewer than one batch window of "
            f"{batch_size} x ({bptt} + 1) = {need}; give a longer text or lower "
            "--batch-size / --bptt"
        )


def as_tensor(ids: list[int]) -> Tensor:
    """Token ids as a 1-D int64 tensor."""
    return torch.tensor(ids, dtype=torch.long)
