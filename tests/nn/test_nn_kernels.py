"""The hand-written BPTT kernels: float64 gradcheck, variable lengths, and the packed schedule."""

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit.nn as rnn
from rnnkit.nn.schedule import Schedule

# Variable lengths (batch sizes per step) and the uniform (padded) case.
SIZES = [[3, 3, 3, 3], [4, 3, 3, 1, 1], [2, 1]]


def _tensors(*shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("proj", "bias"), [(0, True), (2, True), (2, False)])
def test_lstm_gradcheck(native, sizes, reverse, proj, bias):
    hidden, inp, batch, n = 3, 2, sizes[0], sum(sizes)
    out = proj or hidden
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = _tensors(
        (n, inp), (batch, out), (batch, hidden), (4 * hidden, inp), (4 * hidden, out),
        (4 * hidden,), (4 * hidden,), (out, hidden),
    )  # fmt: skip
    args = [x, h0, c0, w_ih, w_hh, b_ih if bias else None, b_hh if bias else None]
    args += [w_hr if proj else None, sizes, reverse, native]
    assert gradcheck(rnn.LSTMFunction.apply, args, fast_mode=True)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_gradcheck(native, sizes, reverse, bias):
    hidden, inp, batch, n = 3, 2, sizes[0], sum(sizes)
    x, h0, w_ih, w_hh, b_ih, b_hh = _tensors(
        (n, inp), (batch, hidden), (3 * hidden, inp), (3 * hidden, hidden), (3 * hidden,),
        (3 * hidden,),
    )  # fmt: skip
    biases = [b_ih, b_hh] if bias else [None, None]
    args = [x, h0, w_ih, w_hh, *biases, sizes, reverse, native]
    assert gradcheck(rnn.GRUFunction.apply, args, fast_mode=True)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_gradcheck(native, sizes, reverse, relu):
    hidden, inp, batch, n = 3, 2, sizes[0], sum(sizes)
    x, h0, w_ih, w_hh, b_ih, b_hh = _tensors(
        (n, inp), (batch, hidden), (hidden, inp), (hidden, hidden), (hidden,), (hidden,), seed=1
    )
    args = [x, h0, w_ih, w_hh, b_ih, b_hh, relu, sizes, reverse, native]
    assert gradcheck(rnn.RNNFunction.apply, args, fast_mode=True)


def test_finished_sequences_stop_and_padding_gets_no_gradient():
    """A sequence's state is frozen after its last step; padded steps get exactly zero gradient."""
    torch.manual_seed(0)
    layer = rnn.LSTM(3, 4, bidirectional=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    out, (h_n, _) = layer(packed)
    out.data.sum().backward()
    assert torch.all(x.grad[2:, 1] == 0)  # padding of the short sequence
    assert torch.all(x.grad[:2, 1] != 0)
    # The short sequence alone gives the same final state as inside the batch.
    _, (h_short, _) = layer(x[:2, 1:2].detach())
    torch.testing.assert_close(h_n[:, 1], h_short[:, 0], rtol=1e-12, atol=1e-12)


def test_default_impl_never_calls_torch_recurrent_ops(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("torch's recurrent operator was called")

    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell"):
        monkeypatch.setattr(torch._VF, name, boom)
        monkeypatch.setattr(torch, name, boom)
    x = torch.randn(4, 2, 3, requires_grad=True)
    for layer in (rnn.LSTM(3, 5, proj_size=2), rnn.GRU(3, 5), rnn.RNN(3, 5, nonlinearity="relu")):
        out, _ = layer(x)
        out.sum().backward()
    with pytest.raises(AssertionError, match="recurrent operator"):
        rnn.GRU(3, 5, impl="torch")(x)


def test_schedule_rows_and_order():
    sched = Schedule([3, 2, 2, 1], reverse=True)
    assert sched.total == 8 and sched.batch == 3 and not sched.uniform
    assert sched.order == [3, 2, 1, 0]
    assert [sched.rows(t) for t in range(4)] == [slice(0, 3), slice(3, 5), slice(5, 7), slice(7, 8)]
    with pytest.raises(ValueError, match="non-increasing"):
        Schedule([1, 2], reverse=False)
