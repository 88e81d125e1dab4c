"""Property-based parity of rnnkit.nn.RNN/LSTM/GRU with torch.nn over all options together.

Outputs, final states and the gradients with respect to the input, the initial states and every
parameter must agree within 1e-5 relative in float32 and 1e-10 in float64.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_oracle import assert_close, twins
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

FORMS = ("batched", "unbatched", "packed_sorted", "packed_unsorted")


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    hidden = draw(st.integers(2, 5))
    cfg = {
        "kind": kind,
        "input_size": draw(st.integers(1, 4)),
        "hidden_size": hidden,
        "num_layers": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
    }
    if kind == "LSTM":
        cfg["proj_size"] = draw(st.integers(0, hidden - 1))
    if kind == "RNN":
        cfg["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    run = {
        "form": draw(st.sampled_from(FORMS)),
        "steps": draw(st.integers(1, 5)),
        "batch": draw(st.integers(1, 4)),
        "with_h0": draw(st.booleans()),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        "seed": draw(st.integers(0, 2**16)),
        "impl": draw(st.sampled_from(["rnnkit", "rnnkit-pytorch"])),  # C or PyTorch time loop
    }
    return cfg, run


def _inputs(cfg, run, gen):
    """Input (padded tensor and what is fed to the layer), initial states and lengths."""
    steps, batch, dtype = run["steps"], run["batch"], run["dtype"]
    form = run["form"]
    batch = 1 if form == "unbatched" else batch
    shape = (batch, steps) if cfg["batch_first"] else (steps, batch)
    x = torch.randn(*shape, cfg["input_size"], generator=gen, dtype=dtype, requires_grad=True)
    feed = x
    if form == "unbatched":
        feed = x.squeeze(0 if cfg["batch_first"] else 1)
    elif form.startswith("packed"):
        lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
        lengths[torch.randint(0, batch, (1,), generator=gen)] = steps  # some sequence is full
        sort = form == "packed_sorted"
        if sort:
            lengths = lengths.sort(descending=True).values
        feed = pack_padded_sequence(x, lengths, batch_first=cfg["batch_first"], enforce_sorted=sort)
    states = []
    if run["with_h0"]:
        layers = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
        widths = [cfg.get("proj_size") or cfg["hidden_size"]]
        if cfg["kind"] == "LSTM":
            widths.append(cfg["hidden_size"])
        for w in widths:
            shape = (layers, w) if form == "unbatched" else (layers, batch, w)
            states.append(torch.randn(*shape, generator=gen, dtype=dtype, requires_grad=True))
    return x, feed, states


def _loss(output, finals, gen):
    """A random linear function of the output and the final states, so every gradient is tested."""
    data = output.data if isinstance(output, PackedSequence) else output
    parts = [data, *finals]
    return sum((p * torch.randn(p.shape, generator=gen, dtype=p.dtype)).sum() for p in parts)


def check_parity(cfg, run, impl=None):
    torch.manual_seed(run["seed"])
    kind = cfg["kind"]
    kwargs = {k: v for k, v in cfg.items() if k != "kind"}
    ours, theirs = twins(kind, impl=impl or run["impl"], **kwargs)
    ours, theirs = ours.to(run["dtype"]), theirs.to(run["dtype"])
    gen = torch.Generator().manual_seed(run["seed"])
    x, feed, states = _inputs(cfg, run, gen)
    hx = None
    if states:
        hx = tuple(states) if kind == "LSTM" else states[0]
    results = []
    for model in (ours, theirs):
        out, h_n = model(feed, hx)
        finals = list(h_n) if kind == "LSTM" else [h_n]
        loss = _loss(out, finals, torch.Generator().manual_seed(run["seed"] + 1))
        grads = torch.autograd.grad(
            loss, [x, *states, *model.parameters()], allow_unused=True, retain_graph=True
        )
        results.append((out, finals, grads))
    (out_a, fin_a, grads_a), (out_b, fin_b, grads_b) = results
    if isinstance(out_b, PackedSequence):
        assert isinstance(out_a, PackedSequence)
        assert torch.equal(out_a.batch_sizes, out_b.batch_sizes)
        for field in ("sorted_indices", "unsorted_indices"):
            a, b = getattr(out_a, field), getattr(out_b, field)
            assert (a is None and b is None) or torch.equal(a, b)
        out_a, out_b = out_a.data, out_b.data
    assert_close(out_a, out_b, "output")
    for i, (a, b) in enumerate(zip(fin_a, fin_b)):
        assert_close(a, b, f"final state {i}")
    names = ["input"] + [f"state {i}" for i in range(len(states))]
    names += [n for n, _ in ours.named_parameters()]
    for name, a, b in zip(names, grads_a, grads_b):
        assert_close(a, b, f"grad of {name}")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(configs())
def test_parity_with_torch_nn(params):
    cfg, run = params
    check_parity(cfg, run)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(configs())
def test_impl_torch_and_auto_match_torch_nn(params):
    cfg, run = params
    check_parity(cfg, run, impl="torch")
    check_parity(cfg, run, impl="auto")


def test_everything_at_once():
    """Bidirectional + proj_size + batch_first + 3 layers + unsorted packed lengths 1..T + h0."""
    cfg = {"kind": "LSTM", "input_size": 3, "hidden_size": 6, "num_layers": 3, "bias": True}
    cfg.update(batch_first=True, bidirectional=True, proj_size=4)
    gru = {k: v for k, v in cfg.items() if k != "proj_size"}
    for dtype in (torch.float32, torch.float64):
        for impl in ("rnnkit", "rnnkit-pytorch"):
            run = {"form": "packed_unsorted", "steps": 7, "batch": 5, "with_h0": True, "seed": 3}
            run.update(dtype=dtype, impl=impl)
            check_parity(cfg, run)
            check_parity({**gru, "kind": "GRU"}, run)
