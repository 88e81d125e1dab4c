"""torch.func transforms (vmap, grad, jacrev, jvp) on the kernels' autograd Functions used
directly, and double backward of the CTC loss: against the Functions applied sample by sample."""

import pytest
import torch
from nn_oracle import assert_close
from torch.func import grad, jacrev, jvp, vmap

import rnnkit.nn as rnn
from rnnkit.nn.ctc import ctc_loss
from rnnkit.nn.regularized import (
    RegularizedGRUFunction,
    RegularizedLSTMFunction,
    RegularizedRNNFunction,
)
from rnnkit.nn.scan import LinearScan

SIZES = [3, 3, 2, 1]  # a packed batch: 3 sequences, lengths 4, 3, 2
B, N, H, I = 3, sum(SIZES), 3, 2


def _randn(*shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _first(out):
    return out[0] if isinstance(out, tuple | list) else out


def _check_transforms(fn, args, batched, wrt):
    """``vmap`` over ``args[batched]`` (3 samples), ``grad`` and ``jacrev`` with respect to
    ``args[wrt]`` and ``vmap(grad)``, each against the eager Function (the hand-written kernels)
    applied sample by sample."""
    samples = torch.stack([args[batched] + 0.1 * _randn(*args[batched].shape, seed=s)
                           for s in range(3)])  # fmt: skip
    in_dims = tuple(0 if i == batched else None for i in range(len(args)))

    def with_arg(i, value):
        return [value if j == i else a for j, a in enumerate(args)]

    outs = vmap(fn, in_dims)(*with_arg(batched, samples))
    for s in range(3):
        eager = fn(*with_arg(batched, samples[s]))
        for ours, want in zip(outs if isinstance(outs, tuple) else [outs], _first_all(eager)):
            assert_close(ours[s], want)

    weight = _randn(*_first(fn(*args)).shape, seed=9)

    def loss(value, i=wrt):
        return (_first(fn(*with_arg(i, value))) * weight).sum()

    leaf = args[wrt].clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(leaf), leaf)
    assert_close(grad(loss)(args[wrt]), expected)
    jac = torch.autograd.functional.jacobian(lambda v: _first(fn(*with_arg(wrt, v))), args[wrt])
    assert_close(jacrev(lambda v: _first(fn(*with_arg(wrt, v))))(args[wrt]), jac)
    if batched != wrt:
        return
    per_sample = vmap(grad(loss))(samples)
    for s in range(3):
        leaf = samples[s].clone().requires_grad_()
        assert_close(per_sample[s], torch.autograd.grad(loss(leaf), leaf)[0])


def _first_all(out):
    return list(out) if isinstance(out, tuple | list) else [out]


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_function(reverse):
    x, h0, c0 = _randn(N, I, seed=0), _randn(B, 2, seed=1), _randn(B, H, seed=2)
    w_ih, w_hh, w_hr = _randn(4 * H, I, seed=3), _randn(4 * H, 2, seed=4), _randn(2, H, seed=5)
    b_ih, b_hh = _randn(4 * H, seed=6), _randn(4 * H, seed=7)
    args = [x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, SIZES, reverse, True]
    _check_transforms(rnn.LSTMFunction.apply, args, batched=0, wrt=0)
    _check_transforms(rnn.LSTMFunction.apply, args, batched=4, wrt=7)


@pytest.mark.parametrize("relu", [False, True])
def test_gru_and_rnn_functions(relu):
    x, h0 = _randn(N, I, seed=0), _randn(B, H, seed=1)
    gru = [x, h0, _randn(3 * H, I, seed=2), _randn(3 * H, H, seed=3), _randn(3 * H, seed=4),
           _randn(3 * H, seed=5), SIZES, True, True]  # fmt: skip
    _check_transforms(rnn.GRUFunction.apply, gru, batched=0, wrt=3)
    elman = [x, h0, _randn(H, I, seed=2), _randn(H, H, seed=3), None, None, relu, SIZES, False,
             True]  # fmt: skip
    _check_transforms(rnn.RNNFunction.apply, elman, batched=1, wrt=1)


def _option_tensors(gates):
    """gx, h0, w_hh, LN gain, recurrent-dropout mask, zoneout weights (0/1) for ``gates``."""
    keep = (_randn(N, H, seed=14) > 0).double()
    mask = (_randn(B, H, seed=15) > -0.5).double() / 0.7
    return (_randn(N, gates * H, seed=10), _randn(B, H, seed=11), _randn(gates * H, H, seed=12),
            1 + 0.3 * _randn(gates * H, seed=13), mask, keep)  # fmt: skip


def test_option_functions():
    gx, h0, w_hh, ln_h, mask, keep = _option_tensors(4)
    c0, ln_cw, ln_cb = _randn(B, H, seed=16), 1 + _randn(H, seed=17), _randn(H, seed=18)
    lstm = [gx, h0, c0, w_hh, ln_h, ln_cw, ln_cb, mask, keep, 1 - keep, SIZES, False, True]
    _check_transforms(RegularizedLSTMFunction.apply, lstm, batched=0, wrt=3)
    gx, h0, w_hh, ln_h, mask, keep = _option_tensors(3)
    gru = [gx, h0, w_hh, _randn(3 * H, seed=19), ln_h, mask, keep, SIZES, True, True]
    _check_transforms(RegularizedGRUFunction.apply, gru, batched=2, wrt=2)
    gx, h0, w_hh, ln_h, mask, keep = _option_tensors(1)
    elman = [gx, h0, w_hh, ln_h, mask, keep, False, SIZES, False, True]
    _check_transforms(RegularizedRNNFunction.apply, elman, batched=0, wrt=3)


def test_linear_scan_and_its_jvp():
    a = torch.sigmoid(_randn(5, 2, 3, seed=0))
    args = [a, _randn(5, 2, 3, seed=1), _randn(2, 3, seed=2)]
    _check_transforms(LinearScan.apply, args, batched=1, wrt=1)
    _check_transforms(LinearScan.apply, args, batched=2, wrt=0)
    tangent = _randn(5, 2, 3, seed=3)
    _, ours = jvp(lambda a: LinearScan.apply(a, *args[1:]), (a,), (tangent,))
    jac = torch.autograd.functional.jacobian(lambda a: LinearScan.apply(a, *args[1:]), a)
    assert_close(ours, (jac * tangent).sum((3, 4, 5)))  # the Jacobian by the eager backward


CTC_TARGETS = torch.tensor([[1, 2, 2], [3, 0, 0], [1, 1, 0]])
CTC_LENGTHS = (torch.tensor([6, 5, 2]), torch.tensor([3, 1, 2]))  # the last one is impossible


@pytest.mark.parametrize("impl", ["rnnkit", "rnnkit-pytorch"])
def test_ctc_loss(impl):
    def loss(logits):
        log_probs = logits.log_softmax(-1)
        return ctc_loss(log_probs, CTC_TARGETS, *CTC_LENGTHS, reduction="none",
                        zero_infinity=True, impl=impl)  # fmt: skip

    _check_transforms(loss, [_randn(6, 3, 5, seed=0)], batched=0, wrt=0)


def test_ctc_double_backward():
    """The gradient is computed in the forward pass; differentiating it again (a gradient
    penalty) once silently dropped the second-order term."""

    def loss(logits):
        return ctc_loss(logits.log_softmax(-1), CTC_TARGETS, *CTC_LENGTHS, zero_infinity=True)

    assert torch.autograd.gradgradcheck(loss, (_randn(6, 3, 5, seed=0).requires_grad_(),))


def test_layers_with_options_and_min_gru_under_vmap_and_grad():
    """The layers that call the Functions directly: options (layer norm, zoneout in evaluation)
    and MinGRU's scan."""
    torch.manual_seed(0)
    xs = _randn(3, 4, 2, I, seed=0)  # 3 samples of (T, B, I)
    for layer in (rnn.LSTM(I, H, layer_norm=True, zoneout=0.2), rnn.MinGRU(I, H, num_layers=2)):
        layer = layer.double().eval()
        params = dict(layer.named_parameters())

        def loss(p, x, layer=layer):
            return torch.func.functional_call(layer, p, (x,))[0].square().sum()

        outs = vmap(lambda x, layer=layer: layer(x)[0])(xs)
        per_sample = vmap(grad(loss), in_dims=(None, 0))(params, xs)
        for s in range(3):
            assert_close(outs[s], layer(xs[s])[0])
            expected = torch.autograd.grad(loss(params, xs[s]), list(params.values()))
            for name, want in zip(params, expected):
                assert_close(per_sample[name][s], want, name)
