"""Cells against torch.nn cells and against the layers; state dicts, dropout, impl and repr."""

import pytest
import torch
from nn_oracle import assert_close, twins

import rnnkit.nn as rnn

CELLS = [
    (rnn.RNNCell, torch.nn.RNNCell, rnn.RNN, {"nonlinearity": "tanh"}),
    (rnn.RNNCell, torch.nn.RNNCell, rnn.RNN, {"nonlinearity": "relu"}),
    (rnn.LSTMCell, torch.nn.LSTMCell, rnn.LSTM, {}),
    (rnn.GRUCell, torch.nn.GRUCell, rnn.GRU, {}),
]


@pytest.mark.parametrize(("cell_cls", "torch_cls", "layer_cls", "kw"), CELLS)
def test_cell_matches_torch_cell(cell_cls, torch_cls, layer_cls, kw):
    torch.manual_seed(0)
    cell = cell_cls(3, 4, **kw).double()
    ref = torch_cls(3, 4, **kw).double()
    ref.load_state_dict(cell.state_dict())
    x = torch.randn(2, 3, dtype=torch.float64)
    for inp in (x, x[0]):  # batched and unbatched
        ours, theirs = cell(inp), ref(inp)
        if not isinstance(ours, tuple):
            ours, theirs = (ours,), (theirs,)
        for a, b in zip(ours, theirs):
            assert_close(a, b)


@pytest.mark.parametrize(("cell_cls", "torch_cls", "layer_cls", "kw"), CELLS)
def test_stepping_the_cell_by_hand_equals_the_layer(cell_cls, torch_cls, layer_cls, kw):
    """The cell is the readable reference: a Python loop over time gives the layer's result."""
    torch.manual_seed(1)
    layer = layer_cls(3, 5, **kw).double()
    cell = cell_cls(3, 5, **kw).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lstm = layer_cls is rnn.LSTM
    state = (torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64))
    state = state if lstm else state[0]
    out, final = layer(x, tuple(s.unsqueeze(0) for s in state) if lstm else state.unsqueeze(0))
    steps = []
    for t in range(x.shape[0]):
        state = cell(x[t], state)  # the new state feeds the next step; h0 only at t = 0
        steps.append(state[0] if lstm else state)
    assert_close(out, torch.stack(steps))
    for a, b in zip(final if lstm else [final], state if lstm else [state]):
        assert_close(a.squeeze(0), b)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_load_state_dict_both_ways(kind):
    torch.manual_seed(2)
    kw = {"num_layers": 2, "bidirectional": True}
    ours, theirs = twins(kind, 3, 4, **kw)  # rnnkit -> torch
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(5, 2, 3)
    assert_close(ours(x)[0], theirs(x)[0])
    other = torch.nn.LSTM(3, 4, **kw) if kind == "LSTM" else getattr(torch.nn, kind)(3, 4, **kw)
    ours.load_state_dict(other.state_dict())  # torch -> rnnkit
    assert_close(ours(x)[0], other(x)[0])


def test_initialisation_matches_torch_distribution():
    torch.manual_seed(3)
    layer = rnn.LSTM(8, 16, proj_size=4)
    bound = 1 / 16**0.5
    for p in layer.parameters():
        assert p.abs().max() <= bound and p.abs().max() > 0.8 * bound
    torch.manual_seed(3)
    same = torch.nn.LSTM(8, 16, proj_size=4)
    for a, b in zip(layer.parameters(), same.parameters()):
        assert a.shape == b.shape


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(4)
    ours, theirs = twins("GRU", 3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    ours.eval(), theirs.eval()
    assert_close(ours(x)[0], theirs(x)[0])  # eval: no dropout
    ours.train()
    a, b = ours(x)[0], ours(x)[0]
    assert not torch.allclose(a, b)  # training: random masks
    # dropout=1 zeroes layer 0's output in both libraries: a deterministic check of its place.
    ours1, theirs1 = twins("LSTM", 3, 4, num_layers=2, dropout=1.0)
    assert_close(ours1(x)[0], theirs1(x)[0])
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        rnn.RNN(3, 4, dropout=0.2)


def test_impl_choice_and_repr():
    """torch's repr plus rnnkit's choice in torch's key=value form: where the time loop runs."""
    assert repr(rnn.LSTM(3, 4)) == "LSTM(3, 4, impl='rnnkit', loop='C')"
    layer = rnn.GRU(3, 4, num_layers=2, bidirectional=True, impl="torch")
    assert repr(layer) == "GRU(3, 4, num_layers=2, bidirectional=True, impl='torch')"
    assert repr(rnn.RNN(3, 4, impl="auto")) == "RNN(3, 4, impl='auto', loop='C')"
    assert rnn.auto_impl(torch.device("cpu")) == "rnnkit"
    assert rnn.auto_impl(torch.device("cuda")) == "torch"
    assert repr(rnn.RNN(3, 4, impl="rnnkit-pytorch")).endswith("loop='PyTorch')")
    half = rnn.LSTM(3, 4, dtype=torch.bfloat16)  # no C kernel for bfloat16: visibly PyTorch's
    assert repr(half) == "LSTM(3, 4, impl='rnnkit', loop='PyTorch')"
    ours = rnn.LSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True,
                    proj_size=2)  # fmt: skip
    theirs = torch.nn.LSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True,
                           proj_size=2)  # fmt: skip
    assert repr(ours) == repr(theirs)[:-1] + ", impl='rnnkit', loop='C')"


def test_device_and_dtype_arguments():
    layer = rnn.LSTM(3, 4, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    out, (h, c) = layer(torch.randn(2, 3, dtype=torch.float64))  # unbatched
    assert out.shape == (2, 4) and h.shape == (1, 4) and c.shape == (1, 4)
