"""torch.compile (fullgraph), torch.export and torch.jit.trace see one opaque rnnkit operator per
layer-direction, and what they build runs rnnkit's kernels with the eager results."""

import warnings

import pytest
import torch
from nn_oracle import assert_close

import rnnkit.nn as rnn


def _layer(kind, num_layers=2):
    torch.manual_seed(0)
    kw = {"proj_size": 2} if kind == "LSTM" else {}
    return getattr(rnn, kind)(3, 4, num_layers, bidirectional=True, **kw)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_compile_fullgraph_forward_and_backward(kind):
    layer = _layer(kind, num_layers=1)
    x = torch.randn(5, 2, 3, requires_grad=True)
    expected = layer(x)[0]
    (expected_dx,) = torch.autograd.grad(expected.square().sum(), x)
    torch._dynamo.reset()
    # torch.nn's recurrent classes (and so rnnkit's) need allow_rnn for dynamo to trace them.
    with torch._dynamo.config.patch(allow_rnn=True):
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        out = compiled(x)[0]
    assert_close(out, expected)
    (dx,) = torch.autograd.grad(out.square().sum(), x)
    assert_close(dx, expected_dx)


def test_export_has_one_rnnkit_operator_per_layer_direction_and_runs():
    layer = _layer("LSTM").eval()
    x = torch.randn(5, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own note on _flat_weights, as for torch.nn.LSTM
        program = torch.export.export(layer, (x,))
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count("rnnkit.recurrent.default") == 4
    assert not any("lstm" in t for t in targets)
    assert_close(program.module()(x)[0], layer(x)[0])


def test_jit_trace_records_the_operator_and_runs():
    layer = _layer("GRU")
    x = torch.randn(5, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shapes become constants of the trace
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    assert str(traced.graph).count("rnnkit::recurrent") == 4
    assert_close(traced(x)[0], layer(x)[0])


def test_fake_tensors_give_shapes_without_running_c():
    from torch._subclasses.fake_tensor import FakeTensorMode

    layer = _layer("LSTM")
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        out, (h, c) = layer(mode.from_tensor(torch.randn(7, 3, 3)))
    assert out.shape == (7, 3, 4) and h.shape == (4, 3, 2) and c.shape == (4, 3, 4)
