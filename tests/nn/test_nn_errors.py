"""Bad arguments and inputs raise clear errors that name the problem, as torch.nn does."""

import pytest
import torch

import rnnkit.nn as rnn


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: rnn.LSTM(3, 0), ValueError, "hidden_size must be greater than zero"),
        (lambda: rnn.GRU(3, -2), ValueError, "hidden_size=-2"),
        (lambda: rnn.RNN(0, 4), ValueError, "input_size must be greater than zero"),
        (lambda: rnn.LSTM(3, 4.0), TypeError, "hidden_size should be of type int"),
        (lambda: rnn.GRU(3, 4, dropout=1.5), ValueError, r"range \[0, 1\].*dropout=1.5"),
        (lambda: rnn.LSTM(3, 4, dropout=-0.1), ValueError, r"range \[0, 1\]"),
        (lambda: rnn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller"),
        (lambda: rnn.LSTM(3, 4, proj_size=-1), ValueError, "proj_size should be a positive"),
        (lambda: rnn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity 'sig"),
        (lambda: rnn.RNNCell(3, 4, nonlinearity="gelu"), ValueError, "Unknown nonlinearity"),
        (lambda: rnn.LSTM(3, 4, num_layers=0), ValueError, "num_layers must be greater"),
        (lambda: rnn.LSTM(3, 4, dtype=torch.int64), TypeError, "floating-point.*int64"),
        (lambda: rnn.GRUCell(3, 4, dtype=torch.int32), TypeError, "floating-point"),
        (lambda: rnn.GRU(3, 4, impl="cudnn"), ValueError, "impl must be one of"),
        (lambda: rnn.GRU(3, 4, batch_first=1), TypeError, "batch_first should be of type bool"),
    ],
)
def test_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_input_errors():
    lstm = rnn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="Expected 3, got 5"):
        lstm(torch.randn(2, 1, 5))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        lstm(torch.randn(2, 1, 1, 3))
    with pytest.raises(TypeError, match="floating-point tensor, got dtype=torch.int64"):
        lstm(torch.ones(2, 1, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="does not match weight dtype"):
        lstm(torch.randn(2, 1, 3, dtype=torch.float64))
    h, c = torch.zeros(2, 1, 4), torch.zeros(2, 1, 4)
    with pytest.raises(RuntimeError, match=r"hidden\[0\] size \(2, 2, 4\), got \[2, 1, 4\]"):
        lstm(torch.randn(5, 2, 3), (h, c))  # batch 2, states for batch 1
    with pytest.raises(RuntimeError, match=r"hidden\[1\] size \(2, 1, 4\), got \[1, 1, 4\]"):
        lstm(torch.randn(5, 1, 3), (h, c[:1]))
    with pytest.raises(RuntimeError, match="batched 3-D input, hidden\\[0\\] should also be 3-D"):
        lstm(torch.randn(5, 1, 3), (h[:, 0], c))
    with pytest.raises(TypeError, match="tuple"):
        lstm(torch.randn(5, 1, 3), h)
    gru = rnn.GRU(3, 4)
    with pytest.raises(RuntimeError, match="unbatched 2-D input, hidden should also be 2-D"):
        gru(torch.randn(5, 3), torch.zeros(1, 1, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 4\), got \[1, 2, 5\]"):
        gru(torch.randn(5, 2, 3), torch.zeros(1, 2, 5))


def test_cell_input_errors():
    cell = rnn.LSTMCell(3, 4)
    with pytest.raises(RuntimeError, match="Expected 3, got 2"):
        cell(torch.randn(5, 2))
    with pytest.raises(ValueError, match="1D or 2D, got 3D"):
        cell(torch.randn(1, 5, 3))
    with pytest.raises(RuntimeError, match=r"Expected hx\[0\] size \(5, 4\), got \[4, 4\]"):
        cell(torch.randn(5, 3), (torch.zeros(4, 4), torch.zeros(5, 4)))
