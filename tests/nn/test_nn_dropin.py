"""The drop-in contract: torch.nn's types, helpers, edge cases and mixed precision."""

import copy
import pickle

import pytest
import torch
from nn_oracle import assert_close, twins

import rnnkit.nn as rnn

KINDS = ["RNN", "LSTM", "GRU"]


def test_layers_and_cells_are_torch_nn_classes():
    for kind in KINDS:
        layer = getattr(rnn, kind)(3, 4)
        assert isinstance(layer, getattr(torch.nn, kind))
        assert isinstance(layer, torch.nn.RNNBase) and isinstance(layer, rnn.RNNBase)
        cell = getattr(rnn, kind + "Cell")(3, 4)
        assert isinstance(cell, getattr(torch.nn, kind + "Cell"))
        assert isinstance(cell, torch.nn.RNNCellBase)


def test_the_eager_path_runs_rnnkits_kernels_not_torchs(monkeypatch):
    """Subclassing torch's classes must not route forward to torch's operators."""
    from torch import _VF

    for op in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        monkeypatch.setattr(_VF, op, None, raising=False)
    for kind in KINDS:
        layer = getattr(rnn, kind)(3, 4)
        out, _ = layer(torch.randn(5, 2, 3, requires_grad=True))
        out.sum().backward()
        assert layer.weight_hh_l0.grad is not None


@pytest.mark.parametrize("kind", KINDS)
def test_torchs_helper_methods_behave_as_torchs(kind):
    ours, theirs = twins(kind, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    assert ours.get_expected_hidden_size(x, None) == theirs.get_expected_hidden_size(x, None)
    assert [n for n in ours._flat_weights_names] == theirs._flat_weights_names
    assert all(a is getattr(ours, n) for a, n in zip(ours._flat_weights, ours._flat_weights_names))
    assert [[p.shape for p in g] for g in ours.all_weights] == [
        [p.shape for p in g] for g in theirs.all_weights
    ]
    h = torch.randn(4, 2, 4)
    hx = (h, h.clone()) if kind == "LSTM" else h
    ours.check_forward_args(x, hx, None)
    perm = torch.tensor([1, 0])
    permuted = ours.permute_hidden(hx, perm)
    expected = theirs.permute_hidden(hx, perm)
    for a, b in zip(
        permuted if kind == "LSTM" else [permuted], expected if kind == "LSTM" else [expected]
    ):  # noqa: E501
        assert torch.equal(a, b)
    ours.flatten_parameters()
    ours.double()  # _apply refreshes _flat_weights, as in torch
    assert ours._flat_weights[0].dtype == torch.float64


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch_gives_empty_outputs_as_torch(kind):
    ours, theirs = twins(kind, 3, 4, num_layers=2, bidirectional=True)
    for batch_first in (False, True):
        ours.batch_first = theirs.batch_first = batch_first
        x = torch.randn(0, 5, 3) if batch_first else torch.randn(5, 0, 3)
        (out, h), (t_out, t_h) = ours(x), theirs(x)
        assert out.shape == t_out.shape
        for a, b in zip(h if kind == "LSTM" else [h], t_h if kind == "LSTM" else [t_h]):
            assert a.shape == b.shape


def test_cells_with_hidden_size_zero_and_empty_batch_behave_as_torchs():
    for kind in KINDS:
        for size, x in ((0, torch.randn(2, 3)), (4, torch.randn(0, 3))):
            ours = getattr(rnn, kind + "Cell")(3, size)
            theirs = getattr(torch.nn, kind + "Cell")(3, size)
            a, b = ours(x), theirs(x)
            for u, v in zip(a if kind == "LSTM" else [a], b if kind == "LSTM" else [b]):
                assert u.shape == v.shape


def test_device_and_dtype_accepted_positionally():
    """In torch.nn's positional order (which, for RNN and GRU too, has a proj_size slot)."""
    args = {
        "LSTM": (3, 4, 1, True, False, 0.0, False, 0, "cpu", torch.float64),
        "GRU": (3, 4, 1, True, False, 0.0, False, 0, "cpu", torch.float64),
        "RNN": (3, 4, 1, "relu", True, False, 0.0, False, 0, "cpu", torch.float64),
        "LSTMCell": (3, 4, True, "cpu", torch.float64),
        "RNNCell": (3, 4, True, "relu", "cpu", torch.float64),
    }
    for kind, given in args.items():
        ours, theirs = getattr(rnn, kind)(*given), getattr(torch.nn, kind)(*given)
        assert [p.dtype for p in ours.parameters()] == [p.dtype for p in theirs.parameters()]
        assert all(p.dtype == torch.float64 for p in ours.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_pickle_deepcopy_and_state_dict_round_trips(kind):
    ours, theirs = twins(kind, 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    for clone in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert type(clone) is type(ours) and clone.impl == "rnnkit"
        assert_close(clone(x)[0], theirs(x)[0])
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    assert_close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_autocast_gives_torch_nns_output_dtypes(kind, low):
    """Under CPU autocast the outputs have torch.nn's dtypes, and values close to float32's."""
    torch.manual_seed(0)
    ours, theirs = twins(kind, 3, 8, num_layers=2)
    x = torch.randn(6, 2, 3, requires_grad=True)
    for inp in (x, x.detach().to(low)):
        with torch.autocast("cpu", dtype=low):
            out, h = ours(inp)
            try:
                t_out, t_h = theirs(inp)
            except RuntimeError:  # torch.nn's LSTM fails in oneDNN on float32 input here
                assert kind == "LSTM" and inp.dtype == torch.float32
                t_out, t_h = torch.empty(0, dtype=low), (torch.empty(0, dtype=low),) * 2
        assert out.dtype == t_out.dtype
        for a, b in zip(h if kind == "LSTM" else [h], t_h if kind == "LSTM" else [t_h]):
            assert a.dtype == b.dtype
        reference = theirs(inp.float())[0]
        assert (out.float() - reference).abs().max() < 0.05
    with torch.autocast("cpu", dtype=low):
        ours(x)[0].float().square().sum().backward()
    assert x.grad is not None and ours.weight_ih_l0.grad.dtype == torch.float32


def test_cells_follow_autocast_as_torchs():
    for kind in KINDS:
        ours, theirs = getattr(rnn, kind + "Cell")(3, 4), getattr(torch.nn, kind + "Cell")(3, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = ours(torch.randn(2, 3)), theirs(torch.randn(2, 3))
        a, b = (a[0], b[0]) if kind == "LSTM" else (a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_low_precision_layers_train_as_torch_nns(kind, low):
    """bfloat16/float16 parameters and input: forward and backward through rnnkit's PyTorch loop,
    close to torch.nn's in the same precision."""
    torch.manual_seed(1)
    ours, theirs = twins(kind, 3, 8, num_layers=2, bidirectional=True)
    ours, theirs = ours.to(low), theirs.to(low)
    x = torch.randn(6, 2, 3, dtype=low)
    results = []
    for model in (ours, theirs):
        out, _ = model(x)
        out.float().square().sum().backward()
        results.append([out.float(), *(p.grad.float() for p in model.parameters())])
        assert out.dtype == low
    for a, b in zip(*results):
        assert (a - b).abs().max() <= 0.05 * max(b.abs().max().item(), 1.0)
