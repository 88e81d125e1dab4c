"""Memory safety of the C loops: every buffer is checked before C sees it, and a small case of every
loop runs clean under AddressSanitizer.

The AddressSanitizer runs build ``native.c`` with ``-fsanitize=address`` and run it in a subprocess
with ``libasan`` preloaded (gcc's runtime; CI needs gcc, which builds the loops anyway). One run
passes a buffer one element short on purpose, to show the harness does catch an overflow.
"""

import ctypes
import textwrap

import pytest
import torch
from asan import assert_clean, run_sanitized

from rnnkit.nn import native
from rnnkit.nn.schedule import Schedule


def _lstm_buffers(dtype=torch.float32):
    sched = Schedule([3, 3, 2], False)
    gates = torch.randn(8, 4 * 5, dtype=dtype)
    w_hh = torch.randn(4 * 5, 5, dtype=dtype)
    return sched, gates, w_hh, torch.zeros(3, 5, dtype=dtype), torch.zeros(3, 5, dtype=dtype)


def test_c_loops_refuse_every_buffer_they_cannot_handle():
    sched, gates, w_hh, h0, c0 = _lstm_buffers()
    native.lstm_forward(sched, gates.clone(), w_hh, None, h0, c0)  # the right buffers pass
    bad = {
        "gates.*dtype torch.bfloat16": (gates.bfloat16(), w_hh, h0, c0),
        "gates must be a contiguous torch.float64": (gates, w_hh.double(), h0, c0),
        r"gates.*shape \(7, 20\)": (gates[:7], w_hh, h0, c0),
        "h .*shape": (gates, w_hh, h0[:2], c0),
        "c .*dtype torch.float16": (gates, w_hh, h0, c0.half()),
        "gates.*not contiguous": (gates.t().contiguous().t(), w_hh, h0, c0),
    }
    for match, (g, w, h, c) in bad.items():
        with pytest.raises(ValueError, match=match):
            native.lstm_forward(sched, g, w, None, h, c)


def test_c_loops_refuse_a_schedule_that_disagrees_with_the_sizes_passed():
    lib, gemm = native._library(torch.float32)
    y, h, hp, w = torch.zeros(6, 4), torch.zeros(3, 4), torch.zeros(6, 4), torch.zeros(4, 4)
    pointers = [ctypes.c_void_p(t.data_ptr()) for t in (w, h, hp, y)]

    def call(sizes, batch, rows):
        steps = len(sizes)
        return lib.rnn_forward(
            ctypes.c_void_p(gemm), steps, (ctypes.c_int * steps)(*sizes),
            (ctypes.c_int * steps)(), 0, batch, ctypes.c_long(rows), 4, 0, *pointers,
        )  # fmt: skip

    assert call([3, 3], 3, 6) == 0
    assert call([3, 3], 3, 7) == 1  # rows do not add up
    assert call([3, 4], 3, 7) == 1  # increasing batch
    assert call([2, 2], 3, 4) == 1  # first step is not the batch
    assert call([3, 0], 3, 3) == 1  # an empty step


def test_mixed_dtypes_never_reach_c():
    """The kernels pick the C loop only when every tensor shares one element type."""
    x, w = torch.zeros(2, 3), torch.zeros(3, 3, dtype=torch.float64)
    assert native.available(x, x) and not native.available(x, w)
    assert not native.available(x.bfloat16())


ASAN_CASE = textwrap.dedent(
    """
    import ctypes, sys, torch
    import rnnkit.nn as rnn
    from rnnkit.embed import native as w2v
    from rnnkit.nn import native

    plain = native._recipe
    def sanitized(dtype):
        source, name, flags, optional = plain(dtype)
        asan = ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")
        return source, name + "_asan", (*flags, *asan), optional
    native._recipe = sanitized
    torch.set_num_threads(2)
    torch.manual_seed(0)

    def overflow():  # the harness must see a write past a buffer's end
        lib, gemm = native._library(torch.float32)
        args = [torch.eye(4), torch.zeros(3, 4), torch.zeros(6, 4), torch.zeros(6 * 4 - 1)]
        pointers = [ctypes.c_void_p(t.data_ptr()) for t in args]
        steps = (ctypes.c_int * 2)(3, 3), (ctypes.c_int * 2)()
        lib.rnn_forward(ctypes.c_void_p(gemm), 2, *steps, 0, 3, ctypes.c_long(6), 4, 0, *pointers)

    def results(model, inp, x):
        out = model(inp)[0]
        out = out.data if hasattr(out, "batch_sizes") else out
        grads = torch.autograd.grad(out.square().sum(), [x, *model.parameters()], retain_graph=True)
        with torch.no_grad():  # the LSTM's inference loop
            infer = model(inp)[0]
        return [out, infer.data if hasattr(infer, "batch_sizes") else infer, *grads]

    def loops():  # every C loop against the PyTorch loop
        worst = 0.0
        lengths = torch.tensor([9, 3, 9, 1, 7, 2, 9, 5, 4, 6, 8, 9])  # 12 sequences, 63 rows
        # Widths of 16 meet rnnkit's packed float32 kernel where a call has >= 64 rows (and the
        # inference loop's split of the hidden units); other widths, fewer rows, float64: the BLAS.
        f32, f64 = torch.float32, torch.float64
        for dtype, kind, hidden, kw in [
            (f32, "LSTM", 16, {"proj_size": 5}), (f32, "LSTM", 16, {}), (f32, "LSTM", 7, {}),
            (f32, "GRU", 16, {}), (f32, "GRU", 5, {}), (f32, "RNN", 16, {}),
            (f32, "RNN", 6, {"nonlinearity": "relu"}), (f64, "LSTM", 6, {"proj_size": 5}),
            (f64, "GRU", 5, {}), (f64, "RNN", 6, {}),
        ]:
            cls = getattr(rnn, kind)
            c_loop = cls(3, hidden, 2, bidirectional=True, **kw).to(dtype)
            py_loop = cls(3, hidden, 2, bidirectional=True, impl="rnnkit-pytorch", **kw).to(dtype)
            py_loop.load_state_dict(c_loop.state_dict())
            for batch in (1, 12):
                x = torch.randn(9, batch, 3, dtype=dtype, requires_grad=True)
                inputs = [x]
                if batch == 12:
                    packed = torch.nn.utils.rnn.pack_padded_sequence
                    inputs.append(packed(x, lengths, enforce_sorted=False))
                for inp in inputs:
                    for a, b in zip(results(c_loop, inp, x), results(py_loop, inp, x)):
                        error = (a - b).abs().max() / b.abs().max().clamp(min=1)
                        worst = max(worst, error.item())
        print("worst relative difference", worst)
        assert worst < 1e-4

    def word2vec():  # both training loops on a small corpus
        w_in, w_out = torch.randn(20, 8), torch.randn(20, 8)
        seq, owner = torch.randint(0, 20, (50,)), torch.arange(50) // 10
        for model, per_centre in (("sgns", (6,)), ("cbow", ())):
            width = torch.randint(1, 4, (40,))
            negatives = torch.randint(0, 20, (40, *per_centre, 5))
            w2v.train_chunk(model, w_in, w_out, seq, owner, 5, 45, width, negatives,
                            window=3, lr=0.025)
        assert torch.isfinite(w_in).all() and torch.isfinite(w_out).all()

    w2v_plain = w2v.cbuild.load
    w2v.cbuild.load = lambda source, name, flags=(), optional=(): w2v_plain(
        source, name + "_asan", (*flags, "-fsanitize=address", "-g"), optional)
    {"overflow": overflow, "loops": loops, "word2vec": word2vec}[sys.argv[1]]()
    """
)


@pytest.mark.parametrize("case", ["loops", "word2vec"])
def test_every_c_loop_runs_clean_under_address_sanitizer(tmp_path, case):
    assert_clean(run_sanitized(tmp_path, ASAN_CASE, case))


def test_address_sanitizer_harness_catches_an_overflow(tmp_path):
    done = run_sanitized(tmp_path, ASAN_CASE, "overflow")
    assert done.returncode != 0
    assert "ERROR: AddressSanitizer" in done.stderr


def test_word2vec_c_entry_refuses_buffers_it_cannot_index():
    from rnnkit.embed import native as w2v

    w_in, w_out = torch.zeros(20, 8), torch.zeros(20, 8)
    seq, owner = torch.randint(0, 20, (50,)), torch.zeros(50, dtype=torch.long)
    width, negatives = torch.ones(10, dtype=torch.long), torch.zeros(10, 5, dtype=torch.long)
    ok = (seq, owner, 0, 10, width, negatives)
    w2v.train_chunk("cbow", w_in, w_out, *ok, window=2, lr=0.1)
    bad = {
        "ids outside 0..19": (w_in, w_out, seq.clone().index_fill_(0, torch.tensor([11]), 20)),
        "negatives holds word ids": (w_in, w_out, seq, owner, 0, 10, width, negatives - 1),
        "w_out .* must match": (w_in, w_out[:19]),
        "w_in must be a contiguous 2-D float32": (w_in.double(), w_out),
        r"start <= stop <= n": (w_in, w_out, seq, owner, 45, 55, width, negatives),
        "width must lie in 1..2": (w_in, w_out, seq, owner, 0, 10, width * 3, negatives),
        "seq must be an integer tensor": (w_in, w_out, seq.float()),
    }
    for match, args in bad.items():
        args = (*args, *ok[len(args) - 2 :])
        with pytest.raises(ValueError, match=match):
            w2v.train_chunk("cbow", *args, window=2, lr=0.1)
