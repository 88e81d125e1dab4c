"""Argument checks shared by the searches."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor


def check_lengths(max_length: int, min_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if min_length < 0:
        raise ValueError(f"min_length must be >= 0, got {min_length}")
    if max_length < min_length:
        raise ValueError(f"max_length={max_length} is below min_length={min_length}")


def start_tokens(bos: int | Tensor) -> Tensor:
    if isinstance(bos, Tensor):
        if bos.dim() != 1 or bos.numel() == 0 or bos.dtype != torch.long:
            raise ValueError(
                f"bos must be an int or a non-empty LongTensor (B,), got a {bos.dtype} tensor "
                f"of shape {tuple(bos.shape)}"
            )
        return bos
    if isinstance(bos, numbers.Integral):
        return torch.tensor([int(bos)])
    raise TypeError(f"bos must be an int or a LongTensor (B,), got {type(bos).__name__}")


def check_log_probs(log_probs: Tensor, n: int) -> None:
    if log_probs.dim() != 2 or log_probs.size(0) != n:
        raise ValueError(
            f"decoder.step returned log_probs of shape {tuple(log_probs.shape)} for {n} tokens; "
            f"expected ({n}, V); pass bos as a LongTensor (B,), one token per input of the state"
        )
