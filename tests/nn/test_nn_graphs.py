"""torch.compile (fullgraph), torch.export and torch.jit.trace see one opaque rnnkit operator per
layer-direction, and what they build runs rnnkit's kernels with the eager results."""

import warnings

import pytest
import torch
from nn_oracle import assert_close

import rnnkit.nn as rnn


def _proj(kind):
    return {"proj_size": 2} if kind == "LSTM" else {}


def _layer(kind, num_layers=2):
    torch.manual_seed(0)
    return getattr(rnn, kind)(3, 4, num_layers, bidirectional=True, **_proj(kind))


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


def _penalty_grads(model, x, params):
    """Gradient-penalty gradients: d/dparams of |dL/dx|^2 (double backward)."""
    y = model(x)[0]
    (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    return torch.autograd.grad(dx.square().sum(), params)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_double_backward_through_export_and_trace_matches_torch_nn(kind):
    """Exported and traced programs run rnnkit::recurrent eagerly; its autograd formula gives
    exact first and second derivatives (the first-order one once failed on the LSTM's aliased
    bias gradients)."""
    layer = _layer(kind).double()
    theirs = getattr(torch.nn, kind)(3, 4, 2, bidirectional=True, **_proj(kind)).double()
    theirs.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = _penalty_grads(theirs, x, list(theirs.parameters()))
    (expected_dw,) = torch.autograd.grad(theirs(x)[0].sum(), theirs.weight_hh_l0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(layer, (x,)).module()
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    for program in (exported, traced):
        (dw,) = torch.autograd.grad(program(x)[0].sum(), program.weight_hh_l0)
        assert_close(dw, expected_dw)
        for ours, want in zip(_penalty_grads(program, x, list(program.parameters())), expected):
            assert_close(ours, want)


def test_compiled_double_backward_is_refused_as_for_torch_nn():
    """AOTAutograd (every torch.compile backend but "eager") refuses double backward for any
    compiled function; the error comes on the second backward, for torch.nn as for rnnkit, and
    never a wrong number. Dynamo's "eager" backend runs the operator eagerly: exact."""
    layer = _layer("LSTM", num_layers=1).double()
    theirs = torch.nn.LSTM(3, 4, bidirectional=True, proj_size=2).double()
    theirs.load_state_dict(layer.state_dict())
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = _penalty_grads(theirs, x, list(theirs.parameters()))
    with torch._dynamo.config.patch(allow_rnn=True):
        for model in (layer, theirs):
            torch._dynamo.reset()
            compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
            with pytest.raises(RuntimeError, match="does not currently support double backward"):
                _penalty_grads(compiled, x, list(model.parameters()))
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=True, backend="eager")
        for ours, want in zip(_penalty_grads(compiled, x, list(layer.parameters())), expected):
            assert_close(ours, want)
