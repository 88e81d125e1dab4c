"""Helpers for the rnnkit.nn tests: a torch.nn twin with the same weights, a scaled tolerance."""

import torch

import rnnkit.nn as rnn

# Relative tolerances of the issue: 1e-5 in float32, 1e-10 in float64.
RTOL = {torch.float32: 1e-5, torch.float64: 1e-10}

CLASSES = {"LSTM": (rnn.LSTM, torch.nn.LSTM), "GRU": (rnn.GRU, torch.nn.GRU)}
CLASSES["RNN"] = (rnn.RNN, torch.nn.RNN)


def twins(kind: str, *args, impl: str = "rnnkit", **kwargs):
    """An rnnkit layer and a torch.nn layer of the same configuration holding the same weights."""
    ours_cls, torch_cls = CLASSES[kind]
    ours = ours_cls(*args, impl=impl, **kwargs)
    theirs = torch_cls(*args, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Equal within the dtype's relative tolerance, measured against the larger of the tensor's
    largest entry and 1.

    Elementwise relative error is meaningless for entries that are zero up to rounding, and a
    gradient that is a small sum of larger terms (here: entries of order 1) carries rounding
    errors of the order of those terms.
    """
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    rtol = RTOL[expected.dtype]
    scale = max(expected.abs().max().item(), 1.0) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{what}: {m}"
    )
