"""The behaviours PyTorch's own recurrent tests check (``test/test_nn.py``:
``test_rnn_args_check``, ``test_projections_lstm_args_check``, ``test_cudnn_forward_exception``,
``test_rnn_initial_hidden_state``, ``test_projections_lstm_initial_hidden_state``,
``test_projections_errors_on_gru_and_rnn``,
``_test_RNN_cpu_vs_cudnn``, ``test_RNN_dropout``, ``test_RNN_dropout_state``,
``test_RNN_change_dropout``, ``test_error_RNN_seq_len_zero``, ``test_RNN_input_size_zero``,
``test_partial_flat_weights``, ``test_RNN_cudnn_weight_norm``, ``test_cudnn_weight_tying``; and the
module-database cases of ``nn.RNN/GRU/LSTM``), written for rnnkit.nn. Where PyTorch compares its
CPU and cuDNN kernels, these compare rnnkit's with torch.nn's; CUDA-only and multi-GPU checks are
left out (see ``docs/nn-dropin.md``).
"""

import io
import itertools
import re

import pytest
import torch
import torch.nn.utils.rnn as rnn_utils
from nn_oracle import assert_close

import rnnkit.nn as nn

MODES = ["RNN", "GRU", "LSTM"]


def _with_size(shape, dim, size):
    shape = list(shape)
    shape[dim] = size
    return tuple(shape)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_args_check(mode):
    inputs, hidden, layers, bad = (6, 4, 3), (2, 4, 5), 2, 7
    cases = [
        (_with_size(inputs, 1, bad), hidden),
        (inputs, _with_size(hidden, 1, bad)),
        (_with_size(inputs, 2, bad), hidden),
        (inputs, _with_size(hidden, 2, bad)),
        (inputs, _with_size(hidden, 0, bad)),
    ]
    for input_shape, hidden_shape in cases:
        model = getattr(nn, mode)(3, 5, layers)
        x, h = torch.randn(input_shape), torch.randn(hidden_shape)
        good = torch.randn(hidden)
        states = [(h, good), (good, h)] if mode == "LSTM" and hidden_shape != hidden else [h]
        if mode == "LSTM" and hidden_shape == hidden:
            states = [(h, h)]
        for state in states:
            with pytest.raises(RuntimeError):
                model(x, state)


def test_projections_lstm_args_check():
    inputs, h_shape, c_shape, bad = (6, 4, 3), (2, 4, 2), (2, 4, 5), 7
    cases = [
        (_with_size(inputs, 1, bad), h_shape, c_shape),
        (inputs, _with_size(h_shape, 1, bad), _with_size(c_shape, 1, bad)),
        (_with_size(inputs, 2, bad), h_shape, c_shape),
        (inputs, _with_size(h_shape, 2, bad), _with_size(c_shape, 2, bad)),
        (inputs, _with_size(h_shape, 0, bad), _with_size(c_shape, 0, bad)),
        (inputs, _with_size(h_shape, 0, 5), c_shape),
        (inputs, _with_size(h_shape, 0, bad), c_shape),
        (inputs, h_shape, _with_size(c_shape, 0, bad)),
    ]
    for input_shape, hs, cs in cases:
        model = nn.LSTM(3, 5, 2, proj_size=2)
        with pytest.raises(RuntimeError):
            model(torch.randn(input_shape), (torch.randn(hs), torch.randn(cs)))


def test_forward_exception_messages():
    cases = [
        (nn.LSTM(10, 20, batch_first=True), (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19))),
        (
            nn.LSTM(10, 20, batch_first=True, proj_size=10),
            (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19)),
        ),  # fmt: skip
        (nn.GRU(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
        (nn.RNN(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
    ]
    for model, hidden in cases:
        with pytest.raises(RuntimeError, match="Expected hidden.*size.*got"):
            model(torch.randn(2, 3, 10), hidden)
        with pytest.raises(
            RuntimeError, match=re.escape("input.size(-1) must be equal to input_size")
        ):
            model(torch.randn(2, 3, 3))


@pytest.mark.parametrize("mode", MODES)
def test_rnn_initial_hidden_state(mode):
    model = getattr(nn, mode)(30, 20, 2)
    x = torch.randn(10, 32, 30)
    hidden = torch.zeros(2, 32, 20)
    hidden = (hidden, hidden) if mode == "LSTM" else hidden
    out1, h1 = model(x, hidden)
    out2, h2 = model(x)
    assert torch.equal(out1, out2)
    for a, b in zip(h1 if mode == "LSTM" else [h1], h2 if mode == "LSTM" else [h2]):
        assert torch.equal(a, b)


def test_projections_lstm_initial_hidden_state():
    for bidirectional in (False, True):
        model = nn.LSTM(30, 20, 2, bidirectional=bidirectional, proj_size=10)
        dirs = 2 if bidirectional else 1
        x = torch.randn(10, 32, 30)
        hidden = (torch.zeros(2 * dirs, 32, 10), torch.zeros(2 * dirs, 32, 20))
        out1, h1 = model(x, hidden)
        out2, h2 = model(x)
        assert torch.equal(out1, out2) and all(torch.equal(a, b) for a, b in zip(h1, h2))


def test_projections_errors_on_gru_and_rnn():
    for mode in ("RNN", "GRU"):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            getattr(nn, mode)(30, 20, 2, proj_size=10)


def _noncontiguous(t):
    return torch.stack([t.clone().zero_(), t], t.dim()).select(t.dim(), 1)


def _forward_backward(model, x, grad_out, hx, grad_hy, cx=None, grad_cy=None):
    """rnnkit's or torch.nn's outputs and every gradient, for the same inputs."""
    lstm = isinstance(model, torch.nn.LSTM)
    if isinstance(x, rnn_utils.PackedSequence):
        data = x.data.detach().clone().requires_grad_()
        inp = rnn_utils.PackedSequence(data, x.batch_sizes)
    else:
        inp = data = x.detach().clone().requires_grad_()
    h = hx.detach().clone().requires_grad_()
    c = (cx if cx is not None else hx.add(1)).detach().clone().requires_grad_() if lstm else None
    out, hy = model(inp, (h, c) if lstm else h)
    out = out.data if isinstance(out, rnn_utils.PackedSequence) else out
    if lstm:
        grads = [grad_out, grad_hy, (grad_cy if grad_cy is not None else grad_hy) + 1]
        torch.autograd.backward([out, *hy], grads)
        states = list(hy)
    else:
        torch.autograd.backward([out, hy], [grad_out, grad_hy])
        states = [hy]
    leaves = [data, h] + ([c] if lstm else [])
    return [out, *states, *(t.grad for t in leaves), *(p.grad for p in model.parameters())]


@pytest.mark.parametrize("mode", MODES + ["LSTM-proj"])
def test_against_torch_nn_over_the_flag_product(mode):
    """``_test_RNN_cpu_vs_cudnn``: bias, bidirectional, batch_first, contiguous and variable-length
    input (lengths as a list or a tensor), float64. PyTorch runs all 64 combinations; here a
    covering set in which every flag and every pair of flags takes both values."""
    torch.manual_seed(0)
    size, hidden, layers, steps, batch = 10, 6, 2, 7, 6
    proj = 3 if mode == "LSTM-proj" else 0
    kind = mode.removesuffix("-proj")
    T, F = True, False
    flags = [(T, T, T, T, T, T), (F, F, F, F, F, F), (T, F, T, F, T, F), (F, T, F, T, T, T),
             (T, T, F, F, F, F), (F, F, T, T, T, F), (T, F, F, T, F, F),
             (F, T, T, F, T, T)]  # fmt: skip
    for bias, bidirectional, batch_first, contiguous, variable, lens_as_tensor in flags:
        dirs = 2 if bidirectional else 1
        out_width = proj or hidden
        shape = (batch, steps) if batch_first else (steps, batch)
        x = torch.randn(*shape, size, dtype=torch.float64)
        grad_out = torch.randn(*shape, out_width * dirs, dtype=torch.float64)
        hx = torch.randn(layers * dirs, batch, out_width, dtype=torch.float64)
        grad_hy = torch.randn(layers * dirs, batch, out_width, dtype=torch.float64)
        cx = torch.randn(layers * dirs, batch, hidden, dtype=torch.float64) if proj else None
        grad_cy = torch.randn(layers * dirs, batch, hidden, dtype=torch.float64) if proj else None
        if not contiguous:
            x, grad_out, hx, grad_hy = map(_noncontiguous, (x, grad_out, hx, grad_hy))
        if variable:
            lengths = [7, 5, 5, 2, 1, 1]
            lengths = torch.tensor(lengths) if lens_as_tensor else lengths
            x = rnn_utils.pack_padded_sequence(x, lengths, batch_first=batch_first)
            grad_out = rnn_utils.pack_padded_sequence(grad_out, lengths, batch_first=batch_first)
            grad_out = grad_out.data
        kw = {"bias": bias, "bidirectional": bidirectional, "batch_first": batch_first}
        kw.update({"proj_size": proj} if proj else {})
        ours = getattr(nn, kind)(size, hidden, layers, **kw).double()
        theirs = getattr(torch.nn, kind)(size, hidden, layers, **kw).double()
        theirs.load_state_dict(ours.state_dict())
        got = _forward_backward(ours, x, grad_out, hx, grad_hy, cx, grad_cy)
        expected = _forward_backward(theirs, x, grad_out, hx, grad_hy, cx, grad_cy)
        for a, b in zip(got, expected):
            assert_close(a, b, f"{mode} {kw} contiguous={contiguous} variable={variable}")


def test_rnn_nonlinearity_against_torch_nn():
    torch.manual_seed(1)
    for nonlinearity in ("tanh", "relu"):
        ours = nn.RNN(10, 6, 2, nonlinearity=nonlinearity).double()
        theirs = torch.nn.RNN(10, 6, 2, nonlinearity=nonlinearity).double()
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(7, 6, 10, dtype=torch.float64)
        hx = torch.randn(2, 6, 6, dtype=torch.float64)
        grads = torch.randn(7, 6, 6, dtype=torch.float64), torch.randn(2, 6, 6, dtype=torch.float64)
        for a, b in zip(_forward_backward(ours, x, *grads[:1], hx, grads[1]),
                        _forward_backward(theirs, x, *grads[:1], hx, grads[1])):  # fmt: skip
            assert_close(a, b)


def test_rnn_dropout_sits_between_layers():
    for p, train in itertools.product((0, 0.276, 0.731, 1), (True, False)):
        model = nn.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu").double()
        model.train(train)
        for w in model.parameters():
            w.data.fill_(1)
        out, hy = model(torch.ones(1, 1, 10, dtype=torch.float64))
        assert out.min() == out.max()
        value = out[0, 0, 0].item()
        if p == 0 or not train:
            assert value == 10000
        elif p == 1:
            assert value == 0
        else:
            assert 8000 < value < 12000
            denormalised = (value * (1 - p)) % 10
            assert min(denormalised, 10 - denormalised) < 1e-2
        assert hy[0].min() == hy[0].max() and hy[1].min() == hy[1].max()
        assert hy[0, 0, 0].item() == 10 and hy[1, 0, 0].item() == value


def test_rnn_dropout_state_survives_saving():
    for p, train in itertools.product((0, 0.1234), (True, False)):
        model = nn.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu")
        model.train(train)
        x, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
        out1, hy1 = model(x, hx)
        out2, hy2 = model(x, hx)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        reloaded = torch.load(buffer, weights_only=False)
        reloaded.flatten_parameters()
        assert type(reloaded) is nn.RNN
        out3, hy3 = reloaded(x, hx)
        same = p == 0 or not train
        assert torch.equal(out1, out2) == same and torch.equal(out1, out3) == same
        assert torch.equal(hy1, hy2) == same and torch.equal(hy1, hy3) == same


def test_rnn_change_dropout():
    for train in (True, False):
        model = nn.RNN(100, 100, 2, dropout=0, nonlinearity="relu").double()
        model.train(train)
        x = torch.rand(3, 2, 100, dtype=torch.float64)
        previous = None
        for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
            model.dropout = p
            out1, hy1 = model(x)
            out2, hy2 = model(x)
            same = p in (0, 1) or not train
            assert torch.equal(out1, out2) == same and torch.equal(hy1, hy2) == same
            if previous is not None:
                assert torch.equal(out1, previous) == (not train)
                assert torch.equal(out2, previous) == (not train)
            previous = out1


@pytest.mark.parametrize("mode", MODES)
def test_error_rnn_seq_len_zero(mode):
    for bidirectional in (True, False):
        model = getattr(nn, mode)(5, 6, bidirectional=bidirectional)
        with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
            model(torch.ones(0, 10, 5))


@pytest.mark.parametrize("mode", MODES)
def test_rnn_input_size_zero(mode):
    model = getattr(nn, mode)(input_size=3, hidden_size=4)
    outs = model(torch.zeros(5, 0, 3))
    assert outs[0].shape == (5, 0, 4)
    outs[0].sum().backward()  # no hard error


def test_partial_flat_weights():
    model = nn.LSTM(10, 6, 2)
    x = torch.randn(3, 2, 10)
    expected = model(x)[0]
    weight = model.weight_hh_l0
    del model.weight_hh_l0
    assert not hasattr(model, "weight_hh_l0")
    model.to(torch.float32)  # moving with a weight missing does not fail
    model.weight_hh_l0 = weight
    assert_close(model(x)[0], expected)


def test_weight_norm():
    torch.manual_seed(2)
    for model, name in ((nn.LSTM(10, 6, 2), "weight_hh_l0"),
                        (nn.LSTM(10, 6, 2, proj_size=3), "weight_hr_l0")):  # fmt: skip
        x = torch.randn(7, 6, 10)
        expected = model(x)[0]
        normed = torch.nn.utils.weight_norm(model, name=name)
        assert_close(normed(x)[0], expected)
        restored = torch.nn.utils.remove_weight_norm(normed, name=name)
        assert_close(restored(x)[0], expected)


@pytest.mark.parametrize("mode", MODES + ["LSTM-proj"])
def test_weight_tying(mode):
    """A parameter shared between two slots trains as in torch.nn."""
    torch.manual_seed(3)
    kind = mode.removesuffix("-proj")
    kw = {"batch_first": True, "bidirectional": True}
    kw.update({"proj_size": 10} if mode == "LSTM-proj" else {})
    models = [getattr(lib, kind)(10, 20, **kw).double() for lib in (nn, torch.nn)]
    models[1].load_state_dict(models[0].state_dict())
    x = torch.randn(5, 4, 10, dtype=torch.float64)
    outs = []
    for model in models:
        model.bias_ih_l0_reverse = model.bias_ih_l0
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model(x)[0].sum().backward()
        optimizer.step()
        outs.append(model(x)[0])
        assert model.bias_ih_l0_reverse is model.bias_ih_l0
    assert_close(outs[0], outs[1])


def _module_db_cases():
    """The shapes of torch's module database for nn.RNN/GRU/LSTM: batched and unbatched input,
    with and without an initial state, across constructor options."""
    options = [{}, {"bias": False}, {"batch_first": True}, {"num_layers": 2},
               {"bidirectional": True}, {"nonlinearity": "relu"}, {"proj_size": 2}]  # fmt: skip
    for mode in MODES:
        for kw in options:
            if ("nonlinearity" in kw and mode != "RNN") or ("proj_size" in kw and mode != "LSTM"):
                continue
            for batched, with_hx in itertools.product((True, False), repeat=2):
                yield mode, kw, batched, with_hx


@pytest.mark.parametrize(("mode", "kw", "batched", "with_hx"), list(_module_db_cases()))
def test_module_database_cases(mode, kw, batched, with_hx):
    torch.manual_seed(4)
    ours = getattr(nn, mode)(4, 3, **kw).double()
    theirs = getattr(torch.nn, mode)(4, 3, **kw).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(*((2, 5) if batched else (5,)), 4, dtype=torch.float64)
    if kw.get("batch_first") and batched:
        x = x.transpose(0, 1)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    lead = (layers, 5) if batched else (layers,)
    h = torch.randn(*lead, kw.get("proj_size") or 3, dtype=torch.float64)
    hx = (h, torch.randn(*lead, 3, dtype=torch.float64)) if mode == "LSTM" else h
    results = []
    for model in (ours, theirs):
        inputs = [a.detach().requires_grad_() for a in (x, *(hx if mode == "LSTM" else [hx]))]
        call = (
            (inputs[0], tuple(inputs[1:]) if mode == "LSTM" else inputs[1])
            if with_hx
            else inputs[:1]
        )
        out, hy = model(*call)
        flat = [out, *(hy if mode == "LSTM" else [hy])]
        loss = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view(t.shape)).sum()
                   for t in flat)  # fmt: skip
        grads = torch.autograd.grad(loss, [*inputs[: len(call) if with_hx else 1],
                                           *model.parameters()], allow_unused=True)  # fmt: skip
        results.append([*flat, *grads])
    for a, b in zip(*results):
        assert_close(a, b, f"{mode} {kw} batched={batched} hx={with_hx}")
