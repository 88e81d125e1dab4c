"""MinGRU/MinLSTM's C sweep (minrnn.c): equal to the torch path (coefficients in torch ops and
the parallel scan), its hand-written backward checked by gradcheck, every buffer checked before
C sees it, the sizes checked again in C, and a run under AddressSanitizer."""

import ctypes
import textwrap
from pathlib import Path

import pytest
import torch
from asan import assert_clean, run_sanitized
from torch.autograd import gradcheck

import rnnkit.nn as rnn
from rnnkit.nn import minrnn_native
from rnnkit.nn.minrnn import MinScan

CELLS = {"mingru": 2, "minlstm": 3}


def _inputs(cell, steps, batch, hidden, dtype=torch.float64, scale=3.0, seed=0):
    """Pre-activations wide enough to saturate the gates (|k| up to ~15), and h0."""
    gen = torch.Generator().manual_seed(seed)
    pre = scale * torch.randn(steps, batch, CELLS[cell] * hidden, generator=gen, dtype=dtype)
    h0 = torch.randn(batch, hidden, generator=gen, dtype=dtype)
    return pre.requires_grad_(), h0.requires_grad_()


def _values_and_grads(run, cell, pre, h0, weights):
    h = run(cell, pre, h0)
    return [h, *torch.autograd.grad((h * weights).sum(), (pre, h0))]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("steps", "batch", "hidden"), [(1, 1, 1), (9, 3, 5), (6, 2, 300)])
def test_c_sweep_equals_torch_path_in_float64(cell, steps, batch, hidden):
    """hidden=300 splits each sequence into two tiles of units (256 + 44)."""
    pre, h0 = _inputs(cell, steps, batch, hidden)
    weights = torch.randn(steps, batch, hidden, dtype=torch.float64)
    ours = _values_and_grads(MinScan.apply, cell, pre, h0, weights)
    reference = _values_and_grads(MinScan.reference, cell, pre, h0, weights)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("threads", [1, 2])
def test_c_sweep_in_float32_against_float64(cell, threads):
    """Vectorized float32 exp, threads splitting the tiles (8 x 300 units x 20 steps is above the
    size at which the sweep goes parallel), saturated gates: within 1e-5 of float64."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pre, h0 = _inputs(cell, 20, 8, 300, scale=6.0)
        weights = torch.randn(20, 8, 300, dtype=torch.float64)
        exact = _values_and_grads(MinScan.reference, cell, pre, h0, weights)
        single = [t.detach().float().requires_grad_() for t in (pre, h0)]
        ours = _values_and_grads(MinScan.apply, cell, *single, weights.float())
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(ours, exact, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_c_sweep_gradcheck(cell):
    pre, h0 = _inputs(cell, 5, 2, 3, scale=2.0)
    assert gradcheck(lambda p, h: MinScan.apply(cell, p, h), (pre, h0), fast_mode=False)


def test_extreme_gates_stay_finite():
    """Both MinLSTM gates far below zero (f and i underflow in float32), and the reverse."""
    for value in (-200.0, 200.0):
        pre = torch.full((3, 2, 3 * 4), value)
        pre[..., 8:] = 0.5  # the candidate
        h = MinScan.apply("minlstm", pre, torch.ones(2, 4))
        ref = MinScan.reference("minlstm", pre.double(), torch.ones(2, 4, dtype=torch.float64))
        assert torch.isfinite(h).all()
        torch.testing.assert_close(h.double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
def test_layer_impls_agree(cls):
    torch.manual_seed(3)
    fast = cls(6, 7, 2, batch_first=True)
    slow = cls(6, 7, 2, batch_first=True, impl="rnnkit-pytorch")
    slow.load_state_dict(fast.state_dict())
    assert "impl='rnnkit-pytorch'" in repr(slow) and "impl" not in repr(fast)
    x = torch.randn(3, 10, 6, requires_grad=True)  # batch_first: the projection is not contiguous
    results = []
    for layer in (fast, slow):
        out, h_n = layer(x)
        grads = torch.autograd.grad(out.square().sum(), (x, *layer.parameters()))
        results.append([out, h_n, *grads])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_c_sweep_refuses_buffers_it_cannot_handle():
    pre, h0 = torch.randn(4, 2, 6), torch.zeros(2, 3)
    minrnn_native.forward("mingru", pre, h0)  # fine
    with pytest.raises(ValueError, match=r"pre.*shape \(4, 2, 6\)"):
        minrnn_native.forward("minlstm", pre, h0)  # three gates need 9 columns
    with pytest.raises(ValueError, match=r"h0.*dtype torch.float64"):
        minrnn_native.forward("mingru", pre, h0.double())
    with pytest.raises(ValueError, match="cell must be one of"):
        minrnn_native.forward("gru", pre, h0)
    with pytest.raises(ValueError, match="expected pre"):
        minrnn_native.forward("mingru", pre[0], h0)
    h = minrnn_native.forward("mingru", pre, h0)
    with pytest.raises(ValueError, match=r"dh.*shape \(4, 2, 2\)"):
        minrnn_native.backward("mingru", pre, h0, h, h[..., :2])
    assert not minrnn_native.available(pre, h0.double())
    assert not minrnn_native.available(pre.bfloat16())


def test_c_sweep_refuses_sizes_in_c():
    lib = minrnn_native._library(torch.float32)
    pre, h0, h = torch.zeros(2, 1, 4), torch.zeros(1, 2), torch.zeros(2, 1, 2)
    pointers = [ctypes.c_void_p(t.data_ptr()) for t in (pre, h0, h)]
    assert lib.min_forward(0, 2, 1, 2, *pointers) == 0
    assert lib.min_forward(2, 2, 1, 2, *pointers) == 1  # no such cell
    assert lib.min_forward(0, 0, 1, 2, *pointers) == 1  # no steps
    assert lib.min_forward(0, 2, 1, -2, *pointers) == 1


ASAN_CASE = textwrap.dedent(
    """
    import torch
    from rnnkit.nn import minrnn_native
    from rnnkit.nn.minrnn import MinScan

    plain = minrnn_native.cbuild.load
    minrnn_native.cbuild.load = lambda source, name, flags=(), optional=(): plain(
        source, name + "_asan", (*flags, "-fsanitize=address", "-fno-omit-frame-pointer", "-g"),
        optional)
    torch.manual_seed(0)
    worst = 0.0
    # One thread below the parallel size; two threads on sizes whose tiles do not divide evenly.
    for threads, (steps, batch, hidden) in [(1, (3, 2, 5)), (2, (17, 5, 263)), (2, (9, 1, 700))]:
        torch.set_num_threads(threads)
        for cell, gates in (("mingru", 2), ("minlstm", 3)):
            for dtype in (torch.float32, torch.float64):
                pre = torch.randn(steps, batch, gates * hidden, dtype=dtype, requires_grad=True)
                h0 = torch.randn(batch, hidden, dtype=dtype, requires_grad=True)
                results = []
                for run in (MinScan.apply, MinScan.reference):
                    h = run(cell, pre, h0)
                    results.append([h, *torch.autograd.grad(h.square().sum(), (pre, h0))])
                for a, b in zip(*results):
                    worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp(min=1)).item())
    print("worst relative difference", worst)
    assert worst < 1e-4
    """
)


def test_c_sweep_runs_clean_under_address_sanitizer(tmp_path: Path):
    done = run_sanitized(tmp_path, ASAN_CASE)
    assert_clean(done)
    assert "worst relative difference" in done.stdout
