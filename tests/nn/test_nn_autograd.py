"""Second derivatives and torch.func transforms through the layers, against torch.nn."""

import pytest
import torch
from nn_oracle import CLASSES, assert_close, twins
from torch.func import functional_call, grad, jacrev, jvp, vmap

KINDS = ["LSTM", "GRU", "RNN"]


def _outputs(out):
    return out.data if hasattr(out, "batch_sizes") else out


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_penalty_matches_torch_nn(kind):
    """The issue's case: a penalty on dL/dx must reach the weights (it silently did not)."""
    torch.manual_seed(0)
    kw = {"proj_size": 3} if kind == "LSTM" else {}
    ours, theirs = twins(kind, 3, 5, num_layers=2, bidirectional=True, **kw)
    ours, theirs = ours.double(), theirs.double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    grads = []
    for model in (ours, theirs):
        y, _ = model(x)
        (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        penalty = dx.square().sum()
        grads.append(torch.autograd.grad(penalty, list(model.parameters())))
    for a, b in zip(*grads):
        assert_close(a, b)
    assert sum(g.norm() for g in grads[0]) > 1e-3  # the penalty does reach the weights


@pytest.mark.parametrize("kind", KINDS)
def test_gradgradcheck_through_packed_bidirectional_input(kind):
    torch.manual_seed(1)
    kw = {"proj_size": 2} if kind == "LSTM" else {}
    layer = twins(kind, 2, 3, bidirectional=True, **kw)[0].double()
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().requires_grad_() for p in layer.parameters()]

    def f(x, *params):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([3, 2]))
        out, h = functional_call(layer, dict(zip(names, params)), (packed,))
        h = h[0] if kind == "LSTM" else h
        return _outputs(out), h

    assert torch.autograd.gradgradcheck(f, (x, *params))


@pytest.mark.parametrize("kind", KINDS)
def test_torch_func_transforms_match_torch_nn(kind):
    torch.manual_seed(2)
    ours, theirs = twins(kind, 3, 4)
    ours, theirs = ours.double(), theirs.double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    xs = torch.randn(3, 5, 2, 3, dtype=torch.float64)

    def loss(model):
        return lambda p, x: functional_call(model, p, (x,))[0].square().sum()

    params, t_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    a, b = grad(loss(ours))(params, x), grad(loss(theirs))(t_params, x)
    for name in a:
        assert_close(a[name], b[name], name)
    per_sample = vmap(grad(loss(ours)), in_dims=(None, 0))(params, xs)
    for i in range(3):
        assert_close(
            per_sample["weight_hh_l0"][i], grad(loss(theirs))(t_params, xs[i])["weight_hh_l0"]
        )
    assert_close(vmap(lambda x: ours(x)[0])(xs), torch.stack([theirs(x)[0] for x in xs]))
    expected = torch.autograd.functional.jacobian(lambda x: theirs(x)[0], x)
    assert_close(jacrev(lambda x: ours(x)[0])(x), expected)
    tangent = torch.randn_like(x)
    _, ours_t = jvp(lambda x: ours(x)[0], (x,), (tangent,))
    _, theirs_t = torch.autograd.functional.jvp(lambda x: theirs(x)[0], (x,), (tangent,))
    assert_close(ours_t, theirs_t)


def test_forward_mode_ad_outside_torch_func():
    import torch.autograd.forward_ad as fwAD

    ours, theirs = twins("LSTM", 3, 4)
    x, tangent = torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(ours(fwAD.make_dual(x, tangent))[0]).tangent
    _, expected = torch.autograd.functional.jvp(lambda x: theirs(x)[0], (x,), (tangent,))
    assert_close(out, expected)


OPTION_SETS = [
    {"layer_norm": True},
    {"zoneout": 0.3},
    {"recurrent_dropout": 0.25},
    {"weight_drop": 0.4},
    {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.25, "weight_drop": 0.4},
]


def _penalty_with_masks(layer, x, seed, reference):
    """Gradient-penalty gradients of ``layer`` with the masks drawn from ``seed``: by its kernels
    or by the plain-autograd reference cells (:func:`rnnkit.nn.options.run`)."""
    from rnnkit.nn import options

    original = options.run
    if reference:
        options.run = lambda *a, **k: original(*a, **k, reference=True)
    try:
        torch.manual_seed(seed)
        y, _ = layer(x)
    finally:
        options.run = original
    (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    return torch.autograd.grad(dx.square().sum(), [x, *layer.parameters()])


# Each option with the C loops, and all of them with the PyTorch loops too.
PENALTY_CASES = [(o, "rnnkit") for o in OPTION_SETS] + [(OPTION_SETS[-1], "rnnkit-pytorch")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("opts", "impl"), PENALTY_CASES,
                         ids=lambda c: "+".join(c) if isinstance(c, dict) else c)  # fmt: skip
def test_gradient_penalty_with_options_matches_reference_cells(kind, opts, impl):
    """Double backward of the option layers (C and PyTorch loops), in training with the same
    seeded masks, against autograd through the reference cells with the same weights."""
    torch.manual_seed(3)
    layer = CLASSES[kind][0](3, 4, 2, bidirectional=True, impl=impl, **opts).double()
    with torch.no_grad():  # normalization parameters away from the identity
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    ours = _penalty_with_masks(layer, x, seed=11, reference=False)
    theirs = _penalty_with_masks(layer, x, seed=11, reference=True)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b)
    assert sum(g.norm() for g in ours[1:]) > 1e-3  # the penalty does reach the weights


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("opts", [OPTION_SETS[-1], OPTION_SETS[3]], ids=["all", "weight_drop"])
def test_layer_gradgradcheck_with_options(kind, opts):
    """The whole layer with every option (and weight drop alone, which runs the plain kernels
    behind a DropConnect mask), masks fixed by reseeding on every evaluation."""
    torch.manual_seed(4)
    layer = CLASSES[kind][0](2, 2, bidirectional=True, **opts).double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    w = layer.weight_hh_l0.detach().clone().requires_grad_(True)

    def f(x, w):
        torch.manual_seed(5)
        return functional_call(layer, {"weight_hh_l0": w}, (x,))[0]

    assert torch.autograd.gradgradcheck(f, (x, w), fast_mode=True)


def test_transforms_never_flatten_the_wrapped_weights(monkeypatch):
    """torch.nn's flatten_parameters reads every weight's data pointer on CUDA, which the wrapped
    tensors of torch.func transforms do not have (vmap(grad) failed on a GPU): a stand-in that
    fails the same way inside a transform, here on the CPU."""

    def reads_data_pointers(self):
        if torch._C._functorch.peek_interpreter_stack() is not None:
            raise RuntimeError("Cannot access data pointer of Tensor that doesn't have storage")

    monkeypatch.setattr(torch.nn.RNNBase, "flatten_parameters", reads_data_pointers)
    torch.manual_seed(0)
    ours, _ = twins("GRU", 3, 4)
    params = dict(ours.named_parameters())
    xs = torch.randn(3, 5, 2, 3)

    def loss(p, x):
        return functional_call(ours, p, (x,))[0].square().sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, xs)
    for i in range(3):
        want = torch.autograd.grad(loss(params, xs[i]), params["weight_hh_l0"])[0]
        assert_close(per_sample["weight_hh_l0"][i], want)
