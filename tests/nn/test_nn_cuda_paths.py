"""The CUDA paths, checked without a GPU: the autocast policy as a pure function, the choice of
time loop on fake CUDA tensors (never C), and the custom operator's registration and fake
implementation for CUDA. (``benchmarks/cuda_check.py`` runs the rest on a GPU.)"""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from rnnkit.nn import ctc, kernels, loops, native, ops, precision, regularized, regularized_native
from rnnkit.nn.cells import LSTMCell

F16, BF16, F32, F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64
MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


@pytest.mark.parametrize("lower", [F16, BF16])
def test_autocast_policy_on_cuda_is_the_lower_precision_for_layers_and_cells(lower):
    """torch's cuDNN layers and all four cell operators are on CUDA autocast's fp16 list."""
    for what in [*MODES, "cell"]:
        assert precision.policy(what, "cuda", F32, lower) == lower
        assert precision.policy(what, "cuda", F16, lower) == lower
        assert precision.policy(what, "cuda", F64, lower) == F64  # autocast leaves float64
        assert precision.policy(what, "cuda", F32, None) == F32  # autocast off


def test_autocast_policy_on_cpu_matches_torch_nn():
    for mode in ["LSTM", "RNN_TANH", "RNN_RELU"]:
        assert precision.policy(mode, "cpu", F32, BF16) == BF16
    assert precision.policy("GRU", "cpu", F32, BF16) == F32  # the CPU GRU: its input's dtype
    assert precision.policy("cell", "cpu", F32, BF16) == F32  # cells: per matrix product
    with torch.autocast("cpu", dtype=BF16):
        x = torch.randn(2, 3, 4)
        for mode in MODES:
            assert precision.layer_dtype(mode, x) == precision.policy(mode, "cpu", F32, BF16)
        assert precision.cell_dtype(x) is None


def _fake_cuda(*shapes, dtype=F32):
    return [torch.empty(*s, device="cuda", dtype=dtype) for s in shapes]


def test_c_loops_are_never_chosen_for_cuda_tensors():
    with FakeTensorMode():
        x, w = _fake_cuda((6, 3), (8, 3))
        half = _fake_cuda((6, 3), dtype=F16)[0]
        cpu = torch.empty(8, 3)
        for tensors in ([x, w], [x], [half], [cpu, x], [x, cpu]):
            assert not native.available(*tensors)
            assert not regularized_native.available(*tensors)
            assert kernels._impl(True, *tensors) is loops
            assert not regularized._use_c(True, *tensors)
        assert not ctc.c_available(x)
        with pytest.raises(ValueError, match="device cuda"):
            native.check_buffer("x", x, (6, 3), F32)


def test_custom_operator_serves_cuda_and_its_fake_gives_cuda_shapes():
    for op in ("rnnkit::recurrent", "rnnkit::recurrent_backward"):
        # CompositeExplicitAutograd serves every backend (CUDA included); Autograd every device.
        for key in ("CompositeExplicitAutograd", "Autograd", "Meta"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(op, key), (op, key)
    with FakeTensorMode():
        x, h, c, w_ih, w_hh, w_hr = _fake_cuda((7, 3), (2, 2), (2, 4), (16, 3), (16, 2), (2, 4))
        y, h_n, c_n = ops.recurrent("LSTM", x, [h, c], w_ih, w_hh, None, None, w_hr,
                                    [2, 2, 2, 1], True, True)  # fmt: skip
        assert y.shape == (7, 2) and h_n.shape == (2, 2) and c_n.shape == (2, 4)
        assert {t.device.type for t in (y, h_n, c_n)} == {"cuda"}
        grads = ops.recurrent_backward("LSTM", x, [h, c], w_ih, w_hh, None, None, w_hr,
                                       [2, 2, 2, 1], True, True, [y, h_n, c_n])  # fmt: skip
        assert [g.shape for g in grads] == [t.shape for t in (x, h, c, w_ih, w_hh, w_hr)]
        assert {g.device.type for g in grads} == {"cuda"}


def test_cells_cast_to_the_autocast_dtype_where_torch_cells_do(monkeypatch):
    """Under CUDA autocast torch's cell operators return float16; rnnkit's cells cast input and
    state first (checked on the CPU by pretending CPU autocast has CUDA's policy)."""
    cell = LSTMCell(3, 4)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    with torch.autocast("cpu", dtype=BF16):
        assert cell(x, (h, c))[0].dtype == F32  # the CPU policy: torch.nn's dtype there
        monkeypatch.setattr(precision, "policy", lambda what, device, dtype, lower: lower)
        h_new, c_new = cell(x, (h, c))
    assert h_new.dtype == c_new.dtype == BF16


def test_ctc_autocast_policy_follows_torchs_registrations():
    """torch runs ``ctc_loss`` in float32 under autocast exactly where it registers an autocast
    kernel for it (the CPU in torch 2.13, not CUDA); the policy row says the same per device."""
    for device, key in (("cpu", "AutocastCPU"), ("cuda", "AutocastCUDA")):
        registered = key in torch._C._dispatch_dump("aten::ctc_loss.IntList")
        assert registered == (device == "cpu")  # what torch 2.13 does; revisit on upgrade
        for lower in (F16, BF16):
            want = F32 if registered else lower
            assert precision.policy("ctc", device, lower, lower) == want
            assert precision.policy("ctc", device, F32, lower) == F32
            assert precision.policy("ctc", device, F64, lower) == F64
            assert precision.policy("ctc", device, lower, None) == lower  # autocast off
