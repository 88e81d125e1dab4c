"""MinGRU / MinLSTM: the parallel scan against stepping, and the scan's hand-written backward."""

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit.nn as rnn
from rnnkit.nn.scan import LinearScan, linear_scan, sequential_scan

CLASSES = [rnn.MinGRU, rnn.MinLSTM]


def _coefficients(steps, batch=2, hidden=3, seed=0, requires_grad=True):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(steps, batch, hidden, generator=gen, dtype=torch.float64)
    b = torch.randn(steps, batch, hidden, generator=gen, dtype=torch.float64)
    h0 = torch.randn(batch, hidden, generator=gen, dtype=torch.float64)
    return [t.requires_grad_(requires_grad) for t in (a, b, h0)]


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 8, 33])
def test_scan_equals_sequential_loop(steps):
    a, b, h0 = _coefficients(steps, requires_grad=False)
    expected = sequential_scan(a, b, h0)
    torch.testing.assert_close(LinearScan.apply(a, b, h0), expected, rtol=1e-10, atol=1e-10)
    b0 = b.clone()
    b0[0] += a[0] * h0
    torch.testing.assert_close(linear_scan(a, b0), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("steps", [1, 4, 5])
def test_scan_gradcheck(steps):
    assert gradcheck(LinearScan.apply, _coefficients(steps), fast_mode=False)


def test_scan_backward_equals_autograd_through_loop():
    a, b, h0 = _coefficients(13, seed=3)
    weights = torch.randn(13, 2, 3, dtype=torch.float64)
    ours = torch.autograd.grad((LinearScan.apply(a, b, h0) * weights).sum(), (a, b, h0))
    theirs = torch.autograd.grad((sequential_scan(a, b, h0) * weights).sum(), (a, b, h0))
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)


def _step_through(layer, x, h0):
    """The layer's one-step method applied step by step: the sequential reference."""
    h, outs = h0, []
    for x_t in x:
        y, h = layer.step(x_t, h)
        outs.append(y)
    return torch.stack(outs), h


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("impl", ["rnnkit", "rnnkit-pytorch"])  # C sweep; parallel scan
def test_parallel_equals_stepping_values_and_gradients(cls, num_layers, impl):
    torch.manual_seed(0)
    layer = cls(4, 5, num_layers, impl=impl).double()
    x = torch.randn(11, 3, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(num_layers, 3, 5, dtype=torch.float64, requires_grad=True)
    out, h_n = layer(x, h0)
    ref_out, ref_h = _step_through(layer, x, h0)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-10)
    w_out, w_h = torch.randn_like(out), torch.randn_like(h_n)
    inputs = (x, h0, *layer.parameters())
    ours = torch.autograd.grad((out * w_out).sum() + (h_n * w_h).sum(), inputs)
    theirs = torch.autograd.grad((ref_out * w_out).sum() + (ref_h * w_h).sum(), inputs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls", CLASSES)
def test_layer_gradcheck(cls):
    torch.manual_seed(1)
    layer = cls(2, 3, 2).double()
    x = torch.randn(6, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, h0: layer(x, h0), (x, h0))


def test_mingru_equations():
    """One step by the paper's equations, written out independently."""
    torch.manual_seed(2)
    layer = rnn.MinGRU(3, 2).double()
    x, h = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    k, v = (x @ layer.weight_ih_l0.T + layer.bias_ih_l0).split(2, -1)
    z = torch.sigmoid(k)
    cand = torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
    _, h_new = layer.step(x, h.unsqueeze(0))
    torch.testing.assert_close(h_new[0], (1 - z) * h + z * cand, rtol=1e-12, atol=1e-12)


def test_minlstm_equations():
    torch.manual_seed(3)
    layer = rnn.MinLSTM(3, 2).double()
    x, h = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    kf, ki, v = (x @ layer.weight_ih_l0.T + layer.bias_ih_l0).split(2, -1)
    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
    cand = torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
    _, h_new = layer.step(x, h.unsqueeze(0))
    expected = f / (f + i) * h + i / (f + i) * cand
    torch.testing.assert_close(h_new[0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_batch_first_and_unbatched_layouts(cls):
    torch.manual_seed(4)
    layer = cls(3, 4, 2)
    x = torch.randn(5, 2, 3)
    out, h_n = layer(x)
    layer.batch_first = True
    out_bf, h_bf = layer(x.transpose(0, 1).contiguous())
    torch.testing.assert_close(out_bf, out.transpose(0, 1))
    torch.testing.assert_close(h_bf, h_n)
    out_one, h_one = layer(x[:, 1])  # unbatched (T, I), batch_first does not apply
    torch.testing.assert_close(out_one, out[:, 1])
    torch.testing.assert_close(h_one, h_n[:, 1])
    assert out_one.shape == (5, 4) and h_one.shape == (2, 4)


def test_long_sequence_stays_finite_and_exact_in_float32():
    """Products of thousands of coefficients underflow to 0 without harm."""
    torch.manual_seed(5)
    layer = rnn.MinGRU(2, 3)
    x = 3 * torch.randn(2000, 1, 2)
    out, _ = layer(x)
    ref, _ = _step_through(layer.double(), x.double(), None)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((3, 0), {}, ValueError, "hidden_size must be greater than zero"),
        ((3, 4, 0), {}, ValueError, "num_layers must be greater than zero"),
        ((3, 4), {"batch_first": 1}, TypeError, "batch_first should be of type bool"),
        ((3, 4), {"impl": "torch"}, ValueError, "impl must be one of"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        rnn.MinGRU(*args, **kwargs)


def test_bad_inputs():
    layer = rnn.MinLSTM(3, 4)
    with pytest.raises(RuntimeError, match="input_size"):
        layer(torch.randn(5, 2, 2))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D"):
        layer(torch.randn(5))
    with pytest.raises(RuntimeError, match="Expected hx size"):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 3, 4))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(6)
    layer = rnn.MinGRU(3, 4, 2, dropout=0.5).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, _ = layer(x)
    again, _ = layer(x)
    assert not torch.allclose(out, again)
    layer.eval()
    plain = rnn.MinGRU(3, 4, 2).double()
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(layer(x)[0], plain(x)[0])
    with pytest.raises(ValueError, match="dropout should be a probability"):
        rnn.MinLSTM(3, 4, 2, dropout=1.0)


@pytest.mark.parametrize("steps", [1, 4, 7])
def test_scan_gradgradcheck(steps):
    """The scan's backward is a scan in differentiable ops: second derivatives, both as the
    autograd Function (eager) and as the custom operator (graphs)."""
    from rnnkit.nn.scan import linear_scan_op

    args = _coefficients(steps)
    assert torch.autograd.gradgradcheck(LinearScan.apply, args)
    assert torch.autograd.gradgradcheck(linear_scan_op, args, fast_mode=True)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("impl", ["rnnkit", "rnnkit-pytorch"])
def test_gradient_penalty_matches_stepping(cls, impl):
    """d/dparams of |dL/dx|^2 through the C sweep / parallel scan against the one-step method."""
    torch.manual_seed(2)
    layer = cls(3, 4, 2, impl=impl).double()
    x = torch.randn(9, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    grads = []
    for run in (lambda: layer(x, h0), lambda: _step_through(layer, x, h0)):
        out, h_n = run()
        loss = out.square().sum() + h_n.sum()
        dx, dh0 = torch.autograd.grad(loss, (x, h0), create_graph=True)
        penalty = dx.square().sum() + dh0.square().sum()
        grads.append(torch.autograd.grad(penalty, [x, h0, *layer.parameters()]))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert sum(g.norm() for g in grads[0][2:]) > 1e-3
