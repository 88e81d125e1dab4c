"""Layer options (layer_norm, zoneout, recurrent_dropout, weight_drop): kernels against the
plain-autograd reference cells with the same masks, gradcheck, and what each option promises."""

import pytest
import torch
from nn_oracle import CLASSES
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit.nn as rnn
from rnnkit.nn import options, regularized_native
from rnnkit.nn.regularized import (
    RegularizedGRUFunction,
    RegularizedLSTMFunction,
    RegularizedRNNFunction,
)

MODES = ["LSTM", "GRU", "RNN"]
ALL = {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.25, "weight_drop": 0.4}
OPTION_SETS = [{k: v} for k, v in ALL.items()] + [ALL]


def _layer(kind, *args, **kwargs):
    torch.manual_seed(0)
    layer = CLASSES[kind][0](*args, **kwargs).double()
    with torch.no_grad():  # make the normalization parameters differ from the identity
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


def _run(layer, x, h0, seed, reference):
    """The layer's output, final states and gradients, by its kernels or the reference cells."""
    original = options.run
    if reference:
        options.run = lambda *a, **k: original(*a, **k, reference=True)
    try:
        torch.manual_seed(seed)
        out, finals = layer(x, h0)
    finally:
        options.run = original
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    data = out.data if hasattr(out, "batch_sizes") else out
    gen = torch.Generator().manual_seed(7)
    loss = (data * torch.randn(data.shape, generator=gen, dtype=data.dtype)).sum()
    loss = loss + sum((f * f).sum() for f in finals)
    inputs = [t for t in (x.data if hasattr(x, "batch_sizes") else x, *h0_list(h0))]
    grads = torch.autograd.grad(loss, inputs + list(layer.parameters()))
    return [data, *finals, *grads]


def h0_list(h0):
    return list(h0) if isinstance(h0, tuple) else [h0]


def _inputs(kind, layer, packed, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, layer.input_size, generator=gen, dtype=torch.float64)
    d = layer.num_layers * (2 if layer.bidirectional else 1)
    h0 = tuple(torch.randn(d, 3, layer.hidden_size, generator=gen, dtype=torch.float64)
               for _ in range(2 if kind == "LSTM" else 1))  # fmt: skip
    for t in h0:
        t.requires_grad_(True)
    x.requires_grad_(True)
    if packed:
        x = pack_padded_sequence(x, torch.tensor([4, 5, 2]), enforce_sorted=False)
    return x, (h0 if kind == "LSTM" else h0[0])


def _assert_same(layer, x, h0, seed):
    ours = _run(layer, x, h0, seed=seed, reference=False)
    theirs = _run(layer, x, h0, seed=seed, reference=True)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


REFERENCE_CASES = [(o, True) for o in OPTION_SETS] + [(ALL, False)]  # (options, packed)


def _case_id(value):
    return "+".join(value) if isinstance(value, dict) else ("packed" if value else "padded")


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize(("opts", "packed"), REFERENCE_CASES, ids=lambda c: _case_id(c))
def test_kernels_equal_reference_cells(kind, opts, packed):
    """Two bidirectional layers in training: outputs, final states and every gradient."""
    layer = _layer(kind, 3, 4, 2, bidirectional=True, **opts)
    x, h0 = _inputs(kind, layer, packed)
    _assert_same(layer, x, h0, seed=11)


@pytest.mark.parametrize("kind", MODES)
def test_kernels_equal_reference_cells_in_eval(kind):
    """Evaluation: layer normalization and zoneout's expectation (the dropouts are off)."""
    layer = _layer(kind, 3, 4, bidirectional=True, **ALL).eval()
    x, h0 = _inputs(kind, layer, packed=True)
    _assert_same(layer, x, h0, seed=12)


def test_kernels_in_pytorch_loop_and_relu():
    layer = _layer("RNN", 3, 4, nonlinearity="relu", impl="rnnkit-pytorch", **ALL)
    x, h0 = _inputs("RNN", layer, packed=True)
    _assert_same(layer, x, h0, seed=3)


def test_weight_drop_with_projection_matches_reference():
    layer = _layer("LSTM", 3, 5, 2, proj_size=2, weight_drop=0.5)
    x, h0 = _inputs("LSTM", layer, packed=False)
    h0 = (h0[0][..., :2].detach().requires_grad_(True), h0[1])
    _assert_same(layer, x, h0, seed=5)


def _kernel_args(kind, opts, sizes, reverse, seed=0, hidden=3):
    batch, n = sizes[0], sum(sizes)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind] * hidden
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, low=None):
        t = torch.randn(*shape, generator=gen, dtype=torch.float64)
        if low is not None:  # weights of the previous state: anywhere in [0, 1]
            t = torch.rand(*shape, generator=gen, dtype=torch.float64)
        return t.requires_grad_(low is None)

    gx, h0, c0, w_hh = rand(n, gates), rand(batch, hidden), rand(batch, hidden), rand(gates, hidden)
    ln_h = (1 + 0.3 * rand(gates).detach()).requires_grad_() if "ln" in opts else None
    ln_cw = (1 + 0.3 * rand(hidden).detach()).requires_grad_() if "ln" in opts else None
    ln_cb = rand(hidden) if "ln" in opts else None
    mask = (rand(batch, hidden, low=0) > 0.3).double() / 0.7 if "mask" in opts else None
    keep_h = rand(n, hidden, low=0) if "zone" in opts else None
    keep_c = rand(n, hidden, low=0) if "zone" in opts else None
    if kind == "LSTM":
        args = [gx, h0, c0, w_hh, ln_h, ln_cw, ln_cb, mask, keep_h, keep_c, sizes, reverse]
        return RegularizedLSTMFunction, args
    if kind == "GRU":
        return RegularizedGRUFunction, [gx, h0, w_hh, rand(gates), ln_h, mask, keep_h, sizes,
                                        reverse]  # fmt: skip
    return RegularizedRNNFunction, [gx, h0, w_hh, ln_h, mask, keep_h, False, sizes, reverse]


KERNEL_OPTIONS = [(), ("ln",), ("mask",), ("zone",), ("ln", "mask", "zone")]


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", KERNEL_OPTIONS)
@pytest.mark.parametrize(("sizes", "reverse"), [([3, 3, 3], False), ([3, 2, 2, 1], True)])
def test_kernel_gradcheck(kind, opts, sizes, reverse):
    function, args = _kernel_args(kind, opts, sizes, reverse)
    assert gradcheck(function.apply, args, fast_mode=True)


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", KERNEL_OPTIONS)
@pytest.mark.parametrize(("sizes", "reverse"), [([3, 3, 3], False), ([3, 2, 2, 1], True)])
def test_c_loop_equals_pytorch_loop(kind, opts, sizes, reverse):
    """The C loops (regularized.c): the same outputs and gradients as the PyTorch loops to
    1e-12 (float64), so the PyTorch loops' gradcheck covers them; one gradcheck of their own
    with every option."""
    function, args = _kernel_args(kind, opts, sizes, reverse)
    if kind == "RNN" and reverse:
        args[6] = True  # the ReLU variant
    assert regularized_native.available(args[0])
    if len(opts) == 3:
        assert gradcheck(lambda *a: function.apply(*a, True), args, fast_mode=True)
    for a, b in zip(*_loops_results(function, args, args), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _loops_results(function, args, c_args):
    """Outputs and input gradients of the PyTorch loop on ``args`` and of the C loop on
    ``c_args`` (the same values, possibly in another dtype)."""
    weights = [torch.randn_like(t) for t in function.apply(*args, False)]
    results = []
    for native, given in ((False, args), (True, c_args)):
        outs = function.apply(*given, native)
        inputs = [a for a in given if isinstance(a, torch.Tensor) and a.requires_grad]
        loss = sum((o * w.to(o.dtype)).sum() for o, w in zip(outs, weights))
        results.append([*outs, *torch.autograd.grad(loss, inputs)])
    return results


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opts", [("ln",), ("zone",), ("ln", "mask", "zone")])
def test_c_loop_float32_packed_kernel_and_threads(kind, threads, opts):
    """float32 at a width rnnkit's packed kernel takes (16 columns a panel) with enough rows to
    pack the weight, the batch split across ``threads``: the C loop against the float64 PyTorch
    loop, to float32 precision. The vectorized row passes are compiled once with and once
    without zoneout, and the gains' gradients are summed per thread: both cases, 1 and 2
    threads."""
    sizes = [8] * 6 + [5] * 3 + [2] * 2  # 67 rows, 8 sequences: a packed weight, 2 threads
    function, args = _kernel_args(kind, opts, sizes, True, hidden=16)
    if kind == "RNN":
        args[6] = True  # the ReLU variant
    single = [a.detach().float().requires_grad_(a.requires_grad)
              if isinstance(a, torch.Tensor) else a for a in args]  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        expected, got = _loops_results(function, args, single)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(expected, got, strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", MODES)
def test_layer_gradcheck_with_every_option(kind):
    """The whole layer, masks fixed by reseeding on every evaluation."""
    layer = _layer(kind, 2, 3, bidirectional=True, **ALL)
    x, h0 = _inputs(kind, layer, packed=False)
    x = x[:3].detach().requires_grad_(True)

    def f(x, *h0):
        torch.manual_seed(3)
        out, finals = layer(x, tuple(h0) if kind == "LSTM" else h0[0])
        return out, *(finals if kind == "LSTM" else (finals,))

    assert gradcheck(f, (x, *h0_list(h0)), fast_mode=True)


def test_zoneout_gru_gradient_haste43():
    """haste's zoneout GRU dropped the direct path h_{t-1} -> h_t from dL/dh_{t-1} (haste#43).

    A GRU with zoneout only, in float64: gradients of h0 and weight_hh against finite differences
    (gradcheck), and every gradient against autograd through the reference cells.
    """
    layer = _layer("GRU", 2, 3, zoneout=0.5)
    x, h0 = _inputs("GRU", layer, packed=False)

    def f(h0, w_hh):
        torch.manual_seed(4)
        return torch.func.functional_call(layer, {"weight_hh_l0": w_hh}, (x.detach(), h0))[0]

    w = layer.weight_hh_l0.detach().clone().requires_grad_(True)
    assert gradcheck(f, (h0, w))
    _assert_same(layer, x, h0, seed=9)


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", [{"recurrent_dropout": 0.5}, {"weight_drop": 0.5}])
def test_eval_equals_plain_layer_exactly(kind, opts):
    layer = _layer(kind, 3, 4, 2, bidirectional=True, **opts).float().eval()
    plain = CLASSES[kind][0](3, 4, 2, bidirectional=True)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    for a, b in zip(layer(x), plain.eval()(x)):
        assert torch.equal(torch.as_tensor(a[0] if isinstance(a, tuple) else a),
                           torch.as_tensor(b[0] if isinstance(b, tuple) else b))  # fmt: skip


@pytest.mark.parametrize("kind", MODES)
def test_zero_options_and_identity_norm_change_nothing(kind):
    """zoneout=0 etc. is the plain layer; the eval expectation of zoneout mixes with p."""
    layer = _layer(kind, 3, 4, zoneout=0.0, recurrent_dropout=0.0, weight_drop=0.0)
    plain = CLASSES[kind][0](3, 4).double()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert torch.equal(layer(x)[0], plain(x)[0])


@pytest.mark.parametrize("kind", MODES)
def test_zoneout_one_keeps_initial_state(kind):
    layer = _layer(kind, 3, 4, 2, bidirectional=True, zoneout=1.0)
    x, h0 = _inputs(kind, layer, packed=False)
    out, finals = layer(x, h0)
    h = h0[0] if kind == "LSTM" else h0
    top = h[2:]  # the last layer's two directions, (2, B, H)
    expected = torch.cat([top[0], top[1]], -1).expand(x.shape[0], -1, -1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    for final, start in zip(h0_list(finals), h0_list(h0)):
        torch.testing.assert_close(final, start, rtol=0, atol=0)


def test_recurrent_dropout_one_mask_per_sequence():
    """An identity recurrence h_t = relu(m * h_{t-1}) shows the mask: h_t = m^t * h_0."""
    p, steps = 0.5, 6
    layer = rnn.RNN(1, 64, nonlinearity="relu", bias=False, recurrent_dropout=p).double()
    with torch.no_grad():
        layer.weight_ih_l0.zero_()
        layer.weight_hh_l0.copy_(torch.eye(64))
    x = torch.zeros(steps, 3, 1, dtype=torch.float64)
    h0 = torch.ones(1, 3, 64, dtype=torch.float64)
    torch.manual_seed(0)
    out, _ = layer(x, h0)
    kept = out[0] != 0  # (B, H): the one mask of each sequence
    for t in range(steps):
        expected = kept.double() * (1 / (1 - p)) ** (t + 1)
        torch.testing.assert_close(out[t], expected, rtol=1e-12, atol=0)
    assert not torch.equal(kept[0], kept[1])  # each sequence has its own mask
    assert 0.3 < kept.double().mean() < 0.7
    again, _ = layer(x, h0)
    assert not torch.equal(again[0] != 0, kept)  # a new mask per call


def test_weight_drop_leaves_parameter_and_changes_output():
    layer = _layer("LSTM", 3, 4, weight_drop=0.5)
    before = layer.weight_hh_l0.detach().clone()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    first, _ = layer(x)
    second, _ = layer(x)
    assert torch.equal(layer.weight_hh_l0, before)
    assert not torch.allclose(first, second)
    second.sum().backward()
    zero_rows = layer.weight_hh_l0.grad == 0
    assert zero_rows.any() and not zero_rows.all()  # dropped weights get no gradient
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])


@pytest.mark.parametrize("kind", MODES)
def test_packed_sequences_equal_each_sequence_alone(kind):
    """Eval mode (deterministic): normalization and zoneout's expectation, per sequence."""
    layer = _layer(kind, 3, 4, 2, bidirectional=True, layer_norm=True, zoneout=0.3).eval()
    x, _ = _inputs(kind, layer, packed=False)
    x = x.detach()
    lengths = [4, 5, 2]
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    out, _ = layer(packed)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out)
    for b, n in enumerate(lengths):
        alone, _ = layer(x[:n, b : b + 1])
        torch.testing.assert_close(padded[:n, b : b + 1], alone, rtol=1e-12, atol=1e-12)


def test_layer_norm_parameters_and_repr():
    layer = rnn.LSTM(3, 4, bidirectional=True, layer_norm=True, zoneout=0.1)
    names = dict(layer.named_parameters())
    assert names["ln_weight_ih_l0"].shape == (16,) and names["ln_bias_c_l0_reverse"].shape == (4,)
    assert torch.equal(names["ln_weight_c_l0"], torch.ones(4))
    assert torch.equal(names["ln_bias_c_l0"], torch.zeros(4))
    assert "weight_ih_l0" in layer.state_dict() and "ln_weight_hh_l0_reverse" in layer.state_dict()
    assert "layer_norm=True, zoneout=0.1" in repr(layer)
    assert not any(n.startswith("ln_") for n, _ in rnn.GRU(3, 4).named_parameters())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"zoneout": 1.5}, ValueError, r"zoneout should be a probability in \[0, 1\]"),
        ({"zoneout": -0.1}, ValueError, "zoneout"),
        ({"recurrent_dropout": 1.0}, ValueError, r"recurrent_dropout .* \[0, 1\)"),
        ({"weight_drop": "0.5"}, ValueError, "weight_drop should be a probability"),
        ({"weight_drop": True}, ValueError, "weight_drop"),
        ({"layer_norm": 1}, TypeError, "layer_norm should be of type bool"),
        ({"layer_norm": True, "proj_size": 2}, ValueError, "proj_size is not supported"),
        ({"zoneout": 0.1, "impl": "torch"}, ValueError, "impl='torch' cannot run zoneout"),
        (
            {"layer_norm": True, "weight_drop": 0.2, "impl": "torch"},
            ValueError,
            r"cannot run layer_norm: .*weight_drop does run with impl='torch'",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        rnn.LSTM(3, 4, **kwargs)


def test_locked_dropout_one_mask_over_time():
    drop = rnn.LockedDropout(0.5)
    x = torch.ones(7, 4, 32)
    torch.manual_seed(0)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))  # the same at every step
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(y[0, 0], y[0, 1])  # per sequence
    y_bf = rnn.LockedDropout(0.5, batch_first=True)(x.transpose(0, 1))
    assert torch.equal(y_bf, y_bf[:, :1].expand_as(y_bf))
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match=r"p should be a probability in \[0, 1\)"):
        rnn.LockedDropout(1.0)


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = rnn.EmbeddingDropout(50, 6, dropout=0.5)
    before = emb.weight.detach().clone()
    tokens = torch.arange(50).repeat(3, 1)  # every word three times
    out = emb(tokens)  # (3, 50, 6)
    dropped = (out == 0).all(-1)  # (3, 50)
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))  # a word is dropped everywhere
    assert 10 < dropped[0].sum() < 40
    kept = ~dropped[0]
    torch.testing.assert_close(out[0, kept], 2 * before[kept])
    assert torch.equal(emb.weight, before)
    emb.eval()
    assert torch.equal(emb(tokens), torch.nn.functional.embedding(tokens, before))
    with pytest.raises(ValueError, match="dropout should be a probability"):
        rnn.EmbeddingDropout(5, 2, dropout=-0.1)


def test_docs_example_runs():
    """The example at the top of docs/cells.md runs and its assertions hold."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "cells.md"
    (block,) = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    exec(compile(block, str(doc), "exec"), {})


@pytest.mark.parametrize("kind", MODES)
def test_unbatched_and_batch_first_inputs(kind):
    layer = _layer(kind, 3, 4, layer_norm=True, zoneout=0.2).eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    out, _ = layer(x)
    batched, _ = layer(x.unsqueeze(1))
    torch.testing.assert_close(out, batched[:, 0], rtol=0, atol=0)
    layer.batch_first = True
    first, _ = layer(x.unsqueeze(0))
    torch.testing.assert_close(first[0], out, rtol=0, atol=0)


def test_drop_connect_distribution():
    from rnnkit.nn.dropout import drop_connect

    torch.manual_seed(0)
    w = torch.ones(200, 100, dtype=torch.float64, requires_grad=True)
    dropped = drop_connect(w, 0.3)
    assert set(dropped.unique().tolist()) == {0.0, 1 / 0.7}
    assert 0.28 < (dropped == 0).double().mean() < 0.32
    dropped.sum().backward()
    torch.testing.assert_close(w.grad, dropped.detach())  # gradient = the scaled mask


@pytest.mark.parametrize("threads", [1, 2])
def test_drop_connect_backward_draws_the_forward_mask_again(threads):
    """Backward keeps no mask: it draws it again from the forward's seed (float32, an odd number
    of entries large enough for the threads); the gradient is the incoming one times that mask."""
    from rnnkit.nn.dropout import drop_connect

    torch.manual_seed(1)
    w = (torch.rand(513, 513) + 0.5).requires_grad_()
    incoming = torch.randn(513, 513)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dropped = drop_connect(w, 0.4)
        (dropped * incoming).sum().backward()
    finally:
        torch.set_num_threads(before)
    mask = dropped.detach() / w.detach()  # 0 or 1/0.6
    assert 0.38 < (mask == 0).float().mean() < 0.42
    torch.testing.assert_close(w.grad, incoming * mask, rtol=1e-6, atol=0)


def test_random_masks_in_c():
    """The C masks (weight drop, zoneout, recurrent dropout): Bernoulli(keep) entries with keep
    rounded to 16 bits, the two entries of one random number (k and k + n/2) independent,
    neighbours independent, the same mask for any number of threads, reproduced by
    torch.manual_seed and new at every call."""
    from rnnkit.nn.dropout import random_mask

    n = (1 << 20) + 1  # enough entries for the threads, and an odd last one
    q = (n + 1) // 2  # entry k and entry k + q come from one 32-bit number
    seeded = {}
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            seeded[threads] = regularized_native.random_mask((n,), 0.3, 2.0, 12345,
                                                             dtype=torch.float64)[0]  # fmt: skip
        finally:
            torch.set_num_threads(before)
    assert torch.equal(seeded[1], seeded[2])
    for keep in (0.1, 0.3, 0.5, 0.9):
        kept = random_mask(torch.zeros(1), (n,), keep, 3.0).double()
        assert set(kept.unique().tolist()) == {0.0, 3.0}
        kept = kept / 3.0
        rate = round(keep * 2**16) / 2**16  # what the 16-bit threshold realises
        bound = 5 * (rate * (1 - rate) / n) ** 0.5  # five standard deviations
        assert abs(kept.mean().item() - rate) < bound
        for first, second in ((kept[: n - q], kept[q:]), (kept[:-1:2], kept[1::2])):
            both = (first * second).mean().item()
            assert abs(both - rate * rate) < 5 * (rate * rate / len(first)) ** 0.5
    assert random_mask(torch.zeros(1), (1000,), 1.0).eq(1).all()
    assert random_mask(torch.zeros(1), (1000,), 0.4 / 2**16).eq(0).all()  # rounds to 0
    torch.manual_seed(3)
    first = random_mask(torch.zeros(1), (64,), 0.5)
    torch.manual_seed(3)
    assert torch.equal(random_mask(torch.zeros(1), (64,), 0.5), first)
    assert not torch.equal(random_mask(torch.zeros(1), (64,), 0.5), first)


@pytest.mark.parametrize("in_place", [False, True])
def test_drop_connect_gradient_in_place_only_when_asked(in_place):
    """The layers let weight drop's backward mask their fresh dL/dW_hh in place; a direct caller's
    gradient tensor is never written."""
    from rnnkit.nn.dropout import drop_connect

    torch.manual_seed(4)
    w = torch.randn(101, 33, requires_grad=True)
    dropped = drop_connect(w, 0.3, grad_in_place=in_place)
    incoming = torch.randn(101, 33)
    given = incoming.clone()
    dropped.backward(given)
    mask = dropped.detach() / w.detach()
    torch.testing.assert_close(w.grad, incoming * mask, rtol=1e-6, atol=0)
    assert torch.equal(given, incoming) != in_place  # written only in place


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [9, 120])
def test_weight_drop_mask_bytes_and_masked_gradient(dtype, threads, rows):
    """The forward's mask bytes mark exactly the kept entries of the same mask drop_connect
    draws from that seed, and the masked weight gradient equals the whole product times the
    mask: an odd number of entries; with 9 rows the BLAS product a block of rows at a time, each
    block masked (a width of 600 gives several blocks), with 120 rows (h_{t-1} over 256 KB) one
    product and one masking pass."""
    from rnnkit.nn.dropout import _DropConnect, drop_weight

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(5)
        w = (torch.rand(201, 600, generator=gen, dtype=dtype) + 0.5).requires_grad_()
        dropped = drop_weight(w, 0.3, seed=77)
        assert dropped.kept.dtype == torch.uint8 and not dropped.weight.requires_grad
        reference = _DropConnect.apply(w, 0.3, False, 77)  # drop_connect's mask for this seed
        assert torch.equal(dropped.weight, reference.detach())
        assert torch.equal(dropped.kept.bool(), reference.detach() != 0)
        torch.testing.assert_close(dropped.factor(), reference.detach() / w.detach())
        d_pre = torch.randn(rows, 201, generator=gen, dtype=dtype)
        h_prev = torch.randn(rows, 600, generator=gen, dtype=dtype)
        want = (d_pre.t() @ h_prev) * dropped.factor()
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(dropped.grad(d_pre, h_prev), want, rtol=tol, atol=tol)
    finally:
        torch.set_num_threads(before)


def test_masked_weight_gradient_refuses_bad_buffers():
    d_pre, h_prev = torch.randn(4, 6), torch.randn(4, 5)
    kept = torch.ones(6, 5, dtype=torch.uint8)
    regularized_native.masked_weight_grad(d_pre, h_prev, kept, 2.0)  # fine
    with pytest.raises(ValueError, match=r"kept.*dtype torch.float32"):
        regularized_native.masked_weight_grad(d_pre, h_prev, kept.float(), 2.0)
    with pytest.raises(ValueError, match=r"kept.*shape \(5, 6\)"):
        regularized_native.masked_weight_grad(d_pre, h_prev, kept.t().contiguous(), 2.0)
    with pytest.raises(ValueError, match=r"h_prev.*shape \(3, 5\)"):
        regularized_native.masked_weight_grad(d_pre, h_prev[:3], kept, 2.0)
    with pytest.raises(ValueError, match=r"h_prev.*dtype torch.float64"):
        regularized_native.masked_weight_grad(d_pre, h_prev.double(), kept, 2.0)
    with pytest.raises(ValueError, match="kept needs a weight"):
        regularized_native.random_mask((6, 5), 0.5, 2.0, 1, dtype=torch.float32, kept=True)


@pytest.mark.parametrize("kind", MODES)
def test_weight_drop_alone_masks_the_gradient_in_the_kernels(kind, monkeypatch):
    """Weight drop alone in training: the plain kernels take the stored weight and the mask and
    form its masked gradient themselves (no drop_connect node); the result equals the reference
    cells with the same mask (float64), and under no_grad the dropped weight goes to the plain
    runner as before."""
    from rnnkit.nn import dropout

    calls = []
    original = dropout.DroppedWeight.grad
    monkeypatch.setattr(dropout.DroppedWeight, "grad",
                        lambda self, *a: calls.append(1) or original(self, *a))  # fmt: skip
    layer = _layer(kind, 3, 4, 2, bidirectional=True, weight_drop=0.5)
    x, h0 = _inputs(kind, layer, packed=True)
    _assert_same(layer, x, h0, seed=8)
    assert len(calls) == 4  # two layers, two directions, one fused gradient each
    with torch.no_grad():
        torch.manual_seed(8)
        out = layer(x, h0)[0].data
    torch.manual_seed(8)
    torch.testing.assert_close(out, layer(x, h0)[0].data, rtol=1e-12, atol=1e-12)  # same mask


@pytest.mark.parametrize("kind", MODES)
def test_weight_drop_alone_second_derivatives(kind):
    """Double backward through the kernels with weight drop (the mask fixed by reseeding): the
    gradient graph multiplies the stored weight by the same mask."""
    layer = _layer(kind, 2, 2, weight_drop=0.5)
    x, h0 = _inputs(kind, layer, packed=False)
    x = x[:3].detach().requires_grad_(True)
    w_hh = layer.weight_hh_l0

    def f(x, w):
        torch.manual_seed(3)
        out, _ = torch.func.functional_call(layer, {"weight_hh_l0": w}, (x,))
        return out

    assert torch.autograd.gradgradcheck(f, (x, w_hh), fast_mode=True)


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", [("ln",), ("mask",), ("zone",)])
@pytest.mark.parametrize("native", [False, True])
def test_kernel_gradgradcheck(kind, opts, native):
    """Second derivatives of each option kernel, PyTorch and C loops (float64, finite
    differences of the gradient), with respect to the initial state, the recurrent weight and
    the normalization gain (the layer tests cover every input through the reference cells)."""
    function, args = _kernel_args(kind, opts, [2, 1], True, hidden=2)
    w_hh = 3 if kind == "LSTM" else 2
    ln_h = w_hh + (2 if kind == "GRU" else 1)
    wrt = {1, w_hh, ln_h}
    args = [a.detach() if isinstance(a, torch.Tensor) and i not in wrt else a
            for i, a in enumerate(args)]  # fmt: skip
    assert torch.autograd.gradgradcheck(lambda *a: function.apply(*a, native), args,
                                        fast_mode=True)  # fmt: skip


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: "+".join(o))
def test_options_under_autocast_follow_the_plain_layer(kind, opts):
    """Under CPU autocast a layer with options computes in the dtype the plain layer does
    (torch.nn's: bfloat16 for RNN and LSTM, float32 for the CPU GRU), close to its float32 output;
    in training its weights get float32 gradients."""
    torch.manual_seed(0)
    plain = getattr(rnn, kind)(3, 8, num_layers=2)
    layer = getattr(rnn, kind)(3, 8, num_layers=2, **opts).eval()
    x = torch.randn(6, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = plain(x)[0].dtype
        out, h = layer(x)
    h = h[0] if kind == "LSTM" else h
    assert out.dtype == h.dtype == want
    assert want == (torch.float32 if kind == "GRU" else torch.bfloat16)
    assert (out.float() - layer(x)[0]).abs().max() < 0.05
    layer.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)[0].float().square().sum().backward()
    grads = [p.grad for p in layer.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and g.isfinite().all() for g in grads)


@pytest.fixture
def auto_is_fused(monkeypatch):
    """impl='auto' choosing torch's fused operator, as it does on CUDA (checked on the CPU)."""
    from rnnkit.nn import layers

    monkeypatch.setattr(layers, "auto_impl", lambda device: "torch")


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("opts", [{"layer_norm": True}, {"zoneout": 0.3},
                                  {"recurrent_dropout": 0.25}, ALL], ids=_case_id)  # fmt: skip
def test_auto_never_hands_in_cell_options_to_the_fused_operator(auto_is_fused, kind, opts):
    """Where auto picks torch's operator (CUDA), options inside the cell run rnnkit's kernels:
    the same outputs and gradients as impl='rnnkit' with the same masks, not a plain layer's."""
    auto = _layer(kind, 3, 4, 2, bidirectional=True, impl="auto", **opts)
    assert auto._impl_for(torch.device("cpu")) == "rnnkit"
    ours = _layer(kind, 3, 4, 2, bidirectional=True, impl="rnnkit", **opts)
    x, h0 = _inputs(kind, auto, packed=True)
    for a, b in zip(_run(auto, x, h0, 11, False), _run(ours, x, h0, 11, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    plain = _layer(kind, 3, 4, 2, bidirectional=True, impl="torch")
    plain.load_state_dict({k: v for k, v in auto.state_dict().items() if not k.startswith("ln_")})
    assert not torch.allclose(_run(auto, x, h0, 11, False)[0], _run(plain, x, h0, 11, False)[0])


@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("impl", ["torch", "auto"])
def test_weight_drop_through_the_fused_operator_equals_the_kernels(auto_is_fused, kind, impl):
    """Weight drop alone runs in torch's operator on the dropped weights: the same masks, so the
    same outputs and gradients as rnnkit's kernels (float64), the stored weights untouched; in
    evaluation the plain layer exactly."""
    fused = _layer(kind, 3, 4, 2, bidirectional=True, impl=impl, weight_drop=0.4)
    ours = _layer(kind, 3, 4, 2, bidirectional=True, impl="rnnkit", weight_drop=0.4)
    assert fused._impl_for(torch.device("cpu")) == "torch"
    stored = {k: v.clone() for k, v in fused.state_dict().items()}
    x, h0 = _inputs(kind, fused, packed=True)
    got = _run(fused, x, h0, 11, False)
    for a, b in zip(got, _run(ours, x, h0, 11, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for k, v in fused.state_dict().items():
        assert torch.equal(v, stored[k]), k
    assert not torch.allclose(got[0], _run(fused, x, h0, 12, False)[0])  # a new mask per call
    plain = _layer(kind, 3, 4, 2, bidirectional=True, impl="torch").eval()
    plain.load_state_dict(fused.state_dict())
    assert torch.equal(_run(fused.eval(), x, h0, 11, False)[0], _run(plain, x, h0, 11, False)[0])
