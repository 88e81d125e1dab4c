"""Argument checks shared by the cells and the layers, with torch.nn's messages."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

NONLINEARITIES = ("tanh", "relu")


def check_sizes(input_size: object, hidden_size: object) -> None:
    """Raise ``TypeError``/``ValueError`` unless both sizes are positive ints."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {name}={value}")


def check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")


def check_dtype(dtype: torch.dtype | None) -> None:
    """Parameters must be floating point (as in torch.nn, integer weights cannot be trained)."""
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point type, got dtype={dtype}")


def check_input(input: Tensor, weight: Tensor, input_size: int, name: str) -> None:
    """The input must be floating, match the weights' dtype and have ``input_size`` features."""
    if not input.dtype.is_floating_point:
        raise TypeError(
            f"{name}: input must be a floating-point tensor, got dtype={input.dtype}; "
            f"convert it with input.to({weight.dtype})"
        )
    if input.dtype != weight.dtype:
        raise ValueError(
            f"{name}: input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
            f"Convert input: input.to({weight.dtype}), or convert model: model.to({input.dtype})"
        )
    if input.shape[-1] != input_size:
        raise RuntimeError(
            f"{name}: input.size(-1) must be equal to input_size. "
            f"Expected {input_size}, got {input.shape[-1]}"
        )


def check_state(state: Tensor, expected: tuple[int, ...], what: str, input: Tensor) -> None:
    """A state tensor must have the expected shape and the input's dtype and device."""
    if tuple(state.shape) != expected:
        raise RuntimeError(f"Expected {what} size {expected}, got {list(state.shape)}")
    if state.dtype != input.dtype:
        raise ValueError(f"{what} dtype ({state.dtype}) does not match input dtype ({input.dtype})")
    if state.device != input.device:
        raise ValueError(f"{what} is on {state.device} but input is on {input.device}")


def init_uniform(parameters: Iterable[nn.Parameter], hidden_size: int) -> None:
    """torch.nn's initialisation: every weight and bias uniform in (-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in parameters:
            p.uniform_(-bound, bound)
