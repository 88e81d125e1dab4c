"""Recurrent layers written from scratch, drop-in replacements for torch.nn's.

``RNN``, ``LSTM`` and ``GRU`` run whole sequences with hand-written backpropagation through time
(:mod:`rnnkit.nn.kernels`); ``RNNCell``, ``LSTMCell`` and ``GRUCell`` are one time step in plain
autograd code, the readable reference.
"""

from rnnkit.nn.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.nn.dropout import EmbeddingDropout, LockedDropout
from rnnkit.nn.kernels import GRUFunction, LSTMFunction, RNNFunction
from rnnkit.nn.layers import GRU, LSTM, RNN, RNNBase, auto_impl
from rnnkit.nn.minrnn import MinGRU, MinLSTM

__all__ = [
    "EmbeddingDropout",
    "GRU",
    "GRUCell",
    "GRUFunction",
    "LSTM",
    "LSTMCell",
    "LSTMFunction",
    "LockedDropout",
    "MinGRU",
    "MinLSTM",
    "RNN",
    "RNNBase",
    "RNNCell",
    "RNNFunction",
    "auto_impl",
]
