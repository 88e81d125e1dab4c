"""The sequence functions of each cell type, by name: ``FORWARD["lstm"] is lstm_forward``."""

from rnnkit.reference.gru import gru_backward, gru_forward
from rnnkit.reference.lstm import lstm_backward, lstm_forward
from rnnkit.reference.rnn import rnn_backward, rnn_forward

FORWARD = {"rnn": rnn_forward, "lstm": lstm_forward, "gru": gru_forward}
BACKWARD = {"rnn": rnn_backward, "lstm": lstm_backward, "gru": gru_backward}
