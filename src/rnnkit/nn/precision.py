"""The dtype a layer or cell computes in under ``torch.autocast``: torch.nn's, as a pure policy.

torch's recurrent operators sit on autocast's lower-precision lists, differently per device:

* CUDA: the fused layers (cuDNN) and all four cell operators (``lstm_cell``, ``gru_cell``,
  ``rnn_tanh_cell``, ``rnn_relu_cell``) compute, and return, the autocast dtype;
* CPU: the LSTM and RNN layers return the autocast dtype (oneDNN); the GRU layer's gate math runs
  at its input's precision; the cells are not on the list, so their matrix products follow
  autocast and the gate math type promotion (measured against torch 2.13: RNNCell the autocast
  dtype, LSTMCell and GRUCell float32).

The CTC loss (``"ctc"``) is on autocast's float32 list on the CPU only (torch 2.13 registers an
``AutocastCPU`` kernel for ``aten::ctc_loss`` and no ``AutocastCUDA`` one): on the CPU its
lower-precision input is cast to float32 and the loss is float32; on CUDA it runs in the input's
dtype, as ``F.ctc_loss`` does.

float64 is never cast (autocast leaves it alone). :func:`policy` is the decision as a function of
plain values, so the CUDA rows are tested on a machine without a GPU; :func:`layer_dtype` and
:func:`cell_dtype` read the autocast state of a tensor's device.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

LAYERS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
FLOAT32_ON = {"ctc": ("cpu",)}  # what autocast runs in float32, on which devices


def policy(what: str, device: str, dtype: torch.dtype, lower: torch.dtype | None) -> torch.dtype:
    """The compute dtype of ``what`` (a layer mode of :data:`LAYERS`, ``"cell"`` or ``"ctc"``)
    for input of ``dtype`` on ``device`` (``"cpu"``, ``"cuda"``, ...), with autocast's
    lower-precision dtype ``lower`` (None: autocast is off there)."""
    if lower is None or dtype == torch.float64 or not dtype.is_floating_point:
        return dtype
    if what in FLOAT32_ON:
        return torch.float32 if device in FLOAT32_ON[what] else dtype
    if what == "cell":
        return lower if device == "cuda" else dtype  # CPU cells: autocast per matrix product
    if what == "GRU" and device == "cpu":
        return dtype
    return lower


def autocast_lower(device: str) -> torch.dtype | None:
    """Autocast's lower-precision dtype on ``device``, or None when autocast is off there."""
    if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


def layer_dtype(mode: str, input: Tensor) -> torch.dtype:
    """The dtype a layer of ``mode`` computes in, and returns, for ``input``."""
    device = input.device.type
    return policy(mode, device, input.dtype, autocast_lower(device))


def cell_dtype(input: Tensor) -> torch.dtype | None:
    """The dtype the cells cast input and state to, or None: leave them (autocast then casts each
    matrix product)."""
    device = input.device.type
    lower = policy("cell", device, torch.float32, autocast_lower(device))  # a float32 argument's
    return None if lower == torch.float32 else lower


def no_autocast(device: str) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` (for code that has cast once, for a whole call)."""
    if autocast_lower(device) is None:
        return contextlib.nullcontext()
    return torch.autocast(device, enabled=False)
