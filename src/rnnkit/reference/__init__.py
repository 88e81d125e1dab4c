"""A NumPy reference for recurrent networks: forward passes and BPTT written out by hand.

No torch here: this package is both a teaching text and the independent oracle that rnnkit's torch
kernels are checked against. Parameters are dicts keyed by torch.nn's names
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ...), so the same weights move
between ``rnnkit.reference``, ``rnnkit.nn`` and ``torch.nn``. Inputs are time-first,
``x`` of shape (T, B, input_size); states are (num_layers, B, H), a pair (h, c) for the LSTM.

Modules: ``rnn``, ``lstm``, ``gru`` (one step each, forward and backward), ``sequence`` (the loop
over time and layers), ``loss`` (softmax cross-entropy over time), ``tbptt`` (truncated BPTT,
clipping), ``charmodel`` and ``train`` (a character-level trainer), ``gradcheck`` (finite
differences). See docs/bptt.md for the equations and which function implements each.
"""

from rnnkit.reference.gru import gru_backward, gru_forward
from rnnkit.reference.loss import output_loss_backward, output_loss_forward
from rnnkit.reference.lstm import lstm_backward, lstm_forward
from rnnkit.reference.params import init_params, param_shapes
from rnnkit.reference.rnn import rnn_backward, rnn_forward
from rnnkit.reference.tbptt import clip_grad_norm, truncated_bptt

__all__ = [
    "clip_grad_norm",
    "gru_backward",
    "gru_forward",
    "init_params",
    "lstm_backward",
    "lstm_forward",
    "output_loss_backward",
    "output_loss_forward",
    "param_shapes",
    "rnn_backward",
    "rnn_forward",
    "truncated_bptt",
]
