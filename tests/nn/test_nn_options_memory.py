"""Memory safety of the option loop in C (regularized.c): buffers checked before C sees them, the
schedule re-checked in C, and a run of every option under AddressSanitizer."""

import ctypes
import textwrap
from pathlib import Path

import pytest
import torch
from asan import assert_clean, run_sanitized

from rnnkit.nn import regularized_native
from rnnkit.nn.schedule import Schedule


def _forward_args(n=8, batch=3, hidden=5, dtype=torch.float32):
    sched = Schedule([3, 3, 2], False)
    gx, w_hh = torch.randn(n, 4 * hidden, dtype=dtype), torch.randn(4 * hidden, hidden, dtype=dtype)
    h0, c0 = torch.zeros(batch, hidden, dtype=dtype), torch.zeros(batch, hidden, dtype=dtype)
    buffers = {
        "hin": torch.empty(n, hidden, dtype=dtype), "cp": torch.empty(n, hidden, dtype=dtype),
        "g": torch.empty(n, 4 * hidden, dtype=dtype), "tc": torch.empty(n, hidden, dtype=dtype),
        "rec_in": None, "rec_mean": None, "rec_rstd": None,
        "c_in": None, "c_mean": None, "c_rstd": None,
    }  # fmt: skip
    return sched, gx, w_hh, h0, c0, buffers


def test_c_loop_refuses_buffers_it_cannot_handle():
    sched, gx, w_hh, h0, c0, buffers = _forward_args()
    run = regularized_native.lstm_forward
    run(sched, gx, w_hh, None, (None, None), None, (None, None), h0, c0, buffers)  # fine
    with pytest.raises(ValueError, match=r"gx.*shape \(7, 20\)"):
        run(sched, gx[:7], w_hh, None, (None, None), None, (None, None), h0, c0, buffers)
    with pytest.raises(ValueError, match="mask.*shape"):
        run(sched, gx, w_hh, None, (None, None), torch.ones(2, 5), (None, None), h0, c0, buffers)
    with pytest.raises(ValueError, match="keep_h.*dtype torch.float64"):
        keep = (torch.ones(8, 5, dtype=torch.float64), None)
        run(sched, gx, w_hh, None, (None, None), None, keep, h0, c0, buffers)
    with pytest.raises(ValueError, match="ln_h.*shape"):
        run(sched, gx, w_hh, torch.ones(19), (None, None), None, (None, None), h0, c0, buffers)
    short = dict(buffers, g=torch.empty(8, 19))
    with pytest.raises(ValueError, match="g must be"):
        run(sched, gx, w_hh, None, (None, None), None, (None, None), h0, c0, short)
    assert not regularized_native.available(gx, w_hh.double())
    assert not regularized_native.available(gx.bfloat16())


def test_c_loop_refuses_a_schedule_that_disagrees_with_the_sizes_passed():
    lib, gemm = regularized_native._library(torch.float32)
    hidden = 4
    tensors = [torch.zeros(6, 4 * hidden), torch.zeros(4 * hidden, hidden)]  # gx, w_hh
    nulls = [None] * 6  # ln_h, ln_c (2), mask, keep (2)
    states = [torch.zeros(3, hidden), torch.zeros(3, hidden)]
    rows = [torch.zeros(6, hidden), torch.zeros(6, hidden), torch.zeros(6, 4 * hidden)]
    outs = [None] * 6 + [torch.zeros(6, hidden), torch.zeros(3, hidden), torch.zeros(6, hidden)]
    # norms, tc, scratch, y
    pointers = [ctypes.c_void_p(t.data_ptr() if t is not None else 0)
                for t in tensors + nulls + states + rows + outs]  # fmt: skip

    def call(sizes, batch, n):
        steps = len(sizes)
        return lib.reg_lstm_forward(
            ctypes.c_void_p(gemm), steps, (ctypes.c_int * steps)(*sizes),
            (ctypes.c_int * steps)(), 0, batch, ctypes.c_long(n), hidden, *pointers,
        )  # fmt: skip

    assert call([3, 3], 3, 6) == 0
    assert call([3, 3], 3, 7) == 1  # rows do not add up
    assert call([3, 4], 3, 7) == 1  # increasing batch
    assert call([2, 2], 3, 4) == 1  # first step is not the batch
    assert call([3, 0], 3, 3) == 1  # an empty step


ASAN_CASE = textwrap.dedent(
    """
    import torch
    import rnnkit.nn as rnn
    from rnnkit.nn import regularized_native

    plain = regularized_native.cbuild.load
    regularized_native.cbuild.load = lambda source, name, flags=(), optional=(): plain(
        source, name + "_asan", (*flags, "-fsanitize=address", "-fno-omit-frame-pointer", "-g"),
        optional)
    torch.manual_seed(0)
    worst = 0.0
    cases = [(rnn.LSTM, {}), (rnn.GRU, {}), (rnn.RNN, {"nonlinearity": "relu"})]
    # Every optional buffer absent (layer norm only) and present (all options), one thread, a
    # width the BLAS takes; then all options with two threads splitting 12 sequences at a width
    # (16) and a number of rows (77) for which the float32 loops pack the weight for rnnkit's
    # kernel.
    every = {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.2, "weight_drop": 0.3}
    alone = {"weight_drop": 0.3}  # the plain loops with the stored weight and the mask bytes
    settings = [(1, 7, [9, 3, 9, 1, 7, 2], (torch.float32, torch.float64),
                 ({"layer_norm": True}, every, alone)),
                (2, 16, [9, 3, 9, 1, 7, 2, 9, 8, 9, 6, 9, 5], (torch.float32,), (every, alone))]
    for (threads, hidden, lengths, dtypes, option_sets), (cls, extra), dtype in [
        (s, c, d) for s in settings for c in cases for d in s[3]
    ]:
        torch.set_num_threads(threads)
        lengths = torch.tensor(lengths)
        for kw in option_sets:
            kw = {**kw, **extra}
            c_loop = cls(3, hidden, 2, bidirectional=True, **kw).to(dtype)
            py_loop = cls(3, hidden, 2, bidirectional=True, impl="rnnkit-pytorch", **kw).to(dtype)
            py_loop.load_state_dict(c_loop.state_dict())
            x = torch.randn(9, len(lengths), 3, dtype=dtype, requires_grad=True)
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            for inp in (x, packed):
                results = []
                for layer in (c_loop, py_loop):
                    torch.manual_seed(1)
                    out = layer(inp)[0]
                    out = out.data if hasattr(out, "batch_sizes") else out
                    loss = out.square().sum()
                    grads = torch.autograd.grad(loss, [x, *layer.parameters()], retain_graph=True)
                    results.append([out, *grads])
                for a, b in zip(*results):
                    worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp(min=1)).item())
    # Weight drop's mask bytes and masked gradient on their own: an odd number of entries (the
    # last random number's single entry) and several blocks of rows, one and two threads.
    for dtype in (torch.float32, torch.float64):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            w = torch.rand(301, 257, dtype=dtype) + 0.5
            _, dropped, kept = regularized_native.random_mask(
                (301, 257), 0.6, 1 / 0.6, 9, dtype=dtype, weight=w, factor=False, kept=True)
            assert torch.equal(kept.bool(), dropped != 0)
            for rows in (5, 300):  # blocks of rows; one product and a pass (h over 256 KB)
                d, h = torch.randn(rows, 301, dtype=dtype), torch.randn(rows, 257, dtype=dtype)
                got = regularized_native.masked_weight_grad(d, h, kept, 1 / 0.6)
                want = (d.t() @ h) * kept.to(dtype) / 0.6
                worst = max(worst, ((got - want).abs().max() / want.abs().max()).item())
    print("worst relative difference", worst)
    assert worst < 1e-4
    """
)


def test_option_loop_runs_clean_under_address_sanitizer(tmp_path: Path):
    done = run_sanitized(tmp_path, ASAN_CASE)
    assert_clean(done)
    assert "worst relative difference" in done.stdout
