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


def test_compile_sees_one_rnnkit_operator_per_layer_direction():
    """Dynamo once made every compiled layer look like a torch.func transform (its wrapper of
    the functorch stack is never None), so the graph held the unrolled steps instead."""
    layer = _layer("GRU")
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):
        torch.compile(layer, fullgraph=True, backend=backend)(torch.randn(5, 2, 3))
    targets = [str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert sum("rnnkit.recurrent" in t for t in targets) == 4
    assert not any("tanh" in t or "sigmoid" in t for t in targets)


@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
def test_min_rnn_compile_fullgraph_export_and_trace(cls):
    """The scan is one custom operator (rnnkit::linear_scan) per layer in every graph."""
    torch.manual_seed(0)
    layer = cls(3, 4, 2)
    x = torch.randn(6, 2, 3, requires_grad=True)
    expected = layer(x)[0]
    (expected_dx,) = torch.autograd.grad(expected.square().sum(), x)
    torch._dynamo.reset()
    out = torch.compile(layer, fullgraph=True, backend="aot_eager")(x)[0]
    assert_close(out, expected)
    assert_close(torch.autograd.grad(out.square().sum(), x)[0], expected_dx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(layer, (x.detach(),))
        traced = torch.jit.trace(layer, (x.detach(),), check_trace=False)
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count("rnnkit.linear_scan.default") == 2
    assert str(traced.graph).count("rnnkit::linear_scan") == 2
    for run in (program.module(), traced):
        out = run(x)[0]
        assert_close(out, expected)
        assert_close(torch.autograd.grad(out.square().sum(), x)[0], expected_dx)


def _option_layer():
    torch.manual_seed(1)
    layer = rnn.GRU(3, 4, layer_norm=True, zoneout=0.2).double().eval()
    with torch.no_grad():
        layer.ln_weight_hh_l0.add_(0.3 * torch.randn_like(layer.ln_weight_hh_l0))
    return layer


@pytest.mark.parametrize("model", ["min_gru", "options"])
def test_second_derivatives_through_graphs(model):
    """MinGRU and a layer with options (evaluation: layer norm, zoneout's expectation): the
    gradient penalty through exported and traced programs and dynamo's "eager" backend equals
    eager; AOTAutograd backends refuse double backward with torch's error, never a number."""
    torch.manual_seed(2)
    layer = rnn.MinGRU(3, 4).double() if model == "min_gru" else _option_layer()
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = _penalty_grads(layer, x, list(layer.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        programs = [torch.export.export(layer, (x.detach(),)).module(),
                    torch.jit.trace(layer, (x.detach(),), check_trace=False)]  # fmt: skip
    for program in programs:
        for ours, want in zip(_penalty_grads(program, x, list(program.parameters())), expected):
            assert_close(ours, want)
    with torch._dynamo.config.patch(allow_rnn=True):
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=True, backend="eager")
        for ours, want in zip(_penalty_grads(compiled, x, list(layer.parameters())), expected):
            assert_close(ours, want)
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        with pytest.raises(RuntimeError, match="does not currently support double backward"):
            _penalty_grads(compiled, x, list(layer.parameters()))


def test_option_layer_in_training_compiles_with_fullgraph():
    """Training draws the masks with torch.rand inside the graph; the compiled layer trains."""
    torch.manual_seed(3)
    layer = rnn.LSTM(3, 4, layer_norm=True, zoneout=0.2, recurrent_dropout=0.2, weight_drop=0.3)
    x = torch.randn(3, 2, 3)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):
        out = torch.compile(layer, fullgraph=True, backend="aot_eager")(x)[0]
    out.square().sum().backward()
    assert out.shape == (3, 2, 4) and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
