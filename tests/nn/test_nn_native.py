"""The C time loops: they build where a compiler exists, fall back cleanly, and match PyTorch's."""

import shutil

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import native


def test_c_loops_build_and_are_used_where_a_compiler_exists():
    has_compiler = shutil.which("cc") is not None
    assert native.available(torch.zeros(1)) == has_compiler
    assert native.available(torch.zeros(1, dtype=torch.float64)) == has_compiler
    assert not native.available(torch.zeros(1, dtype=torch.float16))
    loop = "C" if has_compiler else "PyTorch"
    assert repr(rnn.LSTM(3, 4)) == f"LSTM(3, 4, impl='rnnkit', loop={loop!r})"


def test_build_is_cached_and_missing_compiler_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if shutil.which("cc"):
        built = native._build(torch.float64)
        assert built.parent == tmp_path / "rnnkit" / "native" and built.exists()
        mtime = built.stat().st_mtime_ns
        assert native._build(torch.float64) == built and built.stat().st_mtime_ns == mtime
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    assert native._library.__wrapped__(torch.float32) is None  # logged, not raised


@pytest.fixture
def two_threads():
    """Two torch threads, so that the C loops split the batch between two OpenMP threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_c_and_pytorch_loops_agree_on_packed_bidirectional_input(kind, two_threads):
    torch.manual_seed(5)
    kw = {"num_layers": 2, "bidirectional": True}
    if kind == "LSTM":
        kw["proj_size"] = 3
    cls = getattr(rnn, kind)
    c_loop = cls(4, 6, impl="rnnkit", **kw).double()
    py_loop = cls(4, 6, impl="rnnkit-pytorch", **kw).double()
    py_loop.load_state_dict(c_loop.state_dict())
    x = torch.randn(7, 9, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 7, 1, 5, 7, 2, 6, 1, 4])  # batch 9: threads own rows 0-3 and 4-8
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    grads = []
    for model in (c_loop, py_loop):
        out, _ = model(packed)
        loss = out.data.square().sum()
        grads.append(torch.autograd.grad(loss, [x, *model.parameters()], retain_graph=True))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_float32_steps_on_rnnkits_matrix_kernel_match_torch_nn(kind, two_threads):
    """float32 widths that are multiples of 16 with 64+ rows run the per-step products on native.c's
    own packed kernel (AVX2 builds): outputs and every gradient still match torch.nn."""
    torch.manual_seed(7)
    kw = {"num_layers": 2, "bidirectional": True}
    if kind == "LSTM":
        kw["proj_size"] = 16
    ref = getattr(torch.nn, kind)(24, 32, **kw)
    mine = getattr(rnn, kind)(24, 32, impl="rnnkit", **kw)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(30, 7, 24, requires_grad=True)  # 154 packed rows, 1 to 7 per step
    lengths = torch.tensor([30, 22, 30, 9, 1, 17, 25])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    results = []
    for model in (ref, mine):
        out, _ = model(packed)
        loss = out.data.square().sum()
        grads = torch.autograd.grad(loss, [x, *model.parameters()], retain_graph=True)
        results.append((out.data, *grads))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * max(1.0, a.abs().max().item()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_bytes", [None, 1])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lstm_inference_loop_matches_torch_nn(dtype, chunk_bytes, threads, monkeypatch):
    """Without gradients an LSTM runs native.lstm_infer (nothing kept for backward). float32 with
    64+ rows: threads split the hidden units (2-3 threads) or one thread fuses the projection into
    each step; otherwise chunks of steps (forced down to one step per chunk with chunk_bytes=1).
    Outputs and final states equal torch.nn's."""
    if chunk_bytes is not None:
        monkeypatch.setattr(native, "INFER_CHUNK_BYTES", chunk_bytes)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_lstm_inference(dtype, monkeypatch)
    finally:
        torch.set_num_threads(before)


def _check_lstm_inference(dtype, monkeypatch):
    torch.manual_seed(8)
    kw = {"num_layers": 2, "bidirectional": True}
    ref = torch.nn.LSTM(24, 32, **kw).to(dtype)
    mine = rnn.LSTM(24, 32, impl="rnnkit", **kw).to(dtype)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(30, 7, 24, dtype=dtype)
    lengths = torch.tensor([30, 22, 30, 9, 1, 17, 25])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    state = (torch.randn(4, 7, 32, dtype=dtype), torch.randn(4, 7, 32, dtype=dtype))
    calls = []
    monkeypatch.setattr(native, "lstm_infer", _counting(native.lstm_infer, calls))
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    with torch.no_grad():
        for inputs in (packed, x, x[:, :1]):  # packed, padded, and 30 rows (< 64: not fused)
            expected, got = ref(inputs, None), mine(inputs, None)
            for a, b in zip(_flat(expected), _flat(got)):
                torch.testing.assert_close(b, a, **tol)
        expected, got = ref(packed, state), mine(packed, state)
        for a, b in zip(_flat(expected), _flat(got)):
            torch.testing.assert_close(b, a, **tol)
    assert len(calls) == 4 * 4  # every layer and direction of the four calls
    mine(x)  # with gradients wanted: the training kernel, not the inference loop
    assert len(calls) == 16


def _counting(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return wrapper


def _flat(result):
    out, (h_n, c_n) = result
    return [out.data if hasattr(out, "batch_sizes") else out, h_n, c_n]
