"""rnnkit's CTC against torch.nn.functional.ctc_loss, the NumPy reference and brute force."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.nn.ctc import CTCFunction, ctc_loss
from rnnkit.reference import ctc as ref

IMPLS = ["rnnkit", "rnnkit-pytorch"]


def random_batch(seed, T=15, B=5, C=6, max_target=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, B, C, generator=g, dtype=dtype)
    input_lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    input_lengths[0] = T
    target_lengths = torch.randint(0, max_target + 1, (B,), generator=g)
    target_lengths[-1] = 0  # an empty target
    targets = torch.randint(1, C, (B, max_target), generator=g)
    targets[0, :3] = torch.tensor([2, 2, 2])  # repeated labels need blanks between them
    target_lengths[0] = max(int(target_lengths[0]), 3)
    return logits, targets, input_lengths, target_lengths


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_and_logit_gradients_match_torch(impl, reduction, seed):
    logits, targets, input_lengths, target_lengths = random_batch(seed)
    ours_in = logits.clone().requires_grad_()
    theirs_in = logits.clone().requires_grad_()
    ours = ctc_loss(ours_in.log_softmax(2), targets, input_lengths, target_lengths,
                    reduction=reduction, zero_infinity=True, impl=impl)  # fmt: skip
    theirs = F.ctc_loss(theirs_in.log_softmax(2), targets, input_lengths, target_lengths,
                        reduction=reduction, zero_infinity=True)  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    weights = torch.rand(ours.shape, dtype=ours.dtype) if ours.dim() else 1.0
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradient_is_exact_derivative_gradcheck(impl):
    logits, targets, input_lengths, target_lengths = random_batch(3, T=8, B=3, C=4, max_target=3)
    log_probs = logits.log_softmax(2).requires_grad_()

    def loss(x):
        return ctc_loss(x, targets, input_lengths, target_lengths, reduction="none", impl=impl)

    assert torch.autograd.gradcheck(loss, (log_probs,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_per_utterance_matches_numpy_reference(impl):
    logits, targets, input_lengths, target_lengths = random_batch(4)
    log_probs = logits.log_softmax(2).requires_grad_()
    nll = ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction="none", impl=impl)
    nll.sum().backward()
    for b in range(logits.shape[1]):
        lp = log_probs.detach()[: input_lengths[b], b].numpy()
        labels = targets[b, : target_lengths[b]].tolist()
        assert float(nll.detach()[b]) == pytest.approx(ref.ctc_loss(lp, labels), rel=1e-12)
        np.testing.assert_allclose(
            log_probs.grad[: input_lengths[b], b].numpy(), ref.ctc_grad(lp, labels), atol=1e-12
        )
        assert float(log_probs.grad[input_lengths[b] :, b].abs().sum()) == 0.0


@pytest.mark.parametrize("labels", [[1, 2], [1, 1], [2], []])
def test_reference_equals_brute_force_enumeration(labels):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3))
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    assert ref.ctc_loss(log_probs, labels) == pytest.approx(ref.brute_force_loss(log_probs, labels))
    # beta gives the same total as alpha (equation (8))
    beta = ref.backward(log_probs, labels)
    assert -np.logaddexp.reduce(beta[0, :2]) == pytest.approx(ref.ctc_loss(log_probs, labels))


def test_reference_gradient_equals_finite_differences():
    rng = np.random.default_rng(1)
    log_probs = rng.normal(size=(6, 4))  # any numbers: the derivative is exact for all
    labels = [1, 3, 3]
    grad = ref.ctc_grad(log_probs, labels)
    eps = 1e-6
    for t, k in [(0, 0), (2, 3), (5, 1), (3, 2)]:
        up, down = log_probs.copy(), log_probs.copy()
        up[t, k] += eps
        down[t, k] -= eps
        numeric = (ref.ctc_loss(up, labels) - ref.ctc_loss(down, labels)) / (2 * eps)
        assert grad[t, k] == pytest.approx(numeric, abs=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_impossible_alignment_inf_or_zeroed(impl):
    log_probs = torch.randn(3, 2, 4, dtype=torch.float64).log_softmax(2).requires_grad_()
    targets = torch.tensor([[1, 1, 2], [1, 2, 3]])  # the first needs 4 frames (1 - 1 2), has 3
    lengths = torch.tensor([3, 3])
    nll = ctc_loss(log_probs, targets, lengths, lengths, reduction="none", impl=impl)
    assert torch.isinf(nll[0]) and torch.isfinite(nll[1])
    torch_nll = F.ctc_loss(log_probs, targets, lengths, lengths, reduction="none")
    assert torch.isinf(torch_nll[0])
    zeroed = ctc_loss(log_probs, targets, lengths, lengths, reduction="sum", zero_infinity=True,
                      impl=impl)  # fmt: skip
    zeroed.backward()
    assert float(zeroed.detach()) == pytest.approx(float(nll.detach()[1]))
    assert float(log_probs.grad[:, 0].abs().sum()) == 0.0
    assert float(log_probs.grad[:, 1].abs().sum()) > 0.0


@pytest.mark.parametrize("impl", IMPLS)
def test_tiny_probabilities_fall_back_to_log_space(impl):
    # Every frame gives the target's labels log-probability -800 (exp underflows to 0 in double):
    # the C code's rescaled recursions cannot represent it and must switch to the log space.
    log_probs = torch.full((4, 1, 3), -800.0, dtype=torch.float64)
    log_probs[:, 0, 0] = 0.0  # blank almost surely
    log_probs = log_probs.requires_grad_()
    targets, lengths = torch.tensor([[1, 2]]), (torch.tensor([4]), torch.tensor([2]))
    ours = ctc_loss(log_probs, targets, *lengths, reduction="sum", impl=impl)
    theirs = F.ctc_loss(log_probs, targets, *lengths, reduction="sum")
    assert torch.isfinite(ours) and float(ours.detach()) > 1500
    torch.testing.assert_close(ours, theirs)
    ours.backward()
    assert torch.isfinite(log_probs.grad).all()
    assert float(log_probs.grad[:, 0, 1].sum()) == pytest.approx(-1.0)  # label 1 emitted once


def test_float32_c_and_pytorch_agree_and_concatenated_targets():
    logits, targets, input_lengths, target_lengths = random_batch(5, dtype=torch.float32)
    log_probs = logits.log_softmax(2)
    flat = torch.cat([targets[b, : target_lengths[b]] for b in range(len(targets))])
    a = ctc_loss(log_probs, flat, input_lengths, target_lengths, reduction="none", impl="rnnkit")
    b = ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction="none",
                 impl="rnnkit-pytorch")  # fmt: skip
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unbatched_input():
    log_probs = torch.randn(7, 5, dtype=torch.float64).log_softmax(1)
    target = torch.tensor([1, 2, 3])
    ours = ctc_loss(log_probs, target, [7], [3], reduction="none")
    assert float(ours) == pytest.approx(ref.ctc_loss(log_probs.numpy(), [1, 2, 3]))


def test_no_gradient_wanted_skips_backward_pass():
    logits, targets, input_lengths, target_lengths = random_batch(6)
    nll = CTCFunction.apply(logits.log_softmax(2), targets, input_lengths, target_lengths, 0,
                            False, True)  # fmt: skip
    assert not nll.requires_grad


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reduction": "avg"}, "reduction"),
        ({"impl": "cuda"}, "impl"),
        ({"input_lengths": [16, 3]}, "input_lengths"),
        ({"targets": torch.tensor([[1, 0], [1, 2]])}, "blank"),
        ({"targets": torch.tensor([[1, 9], [1, 2]])}, "labels"),
        ({"target_lengths": [3, 1]}, "width"),
    ],
)
def test_bad_arguments_name_the_problem(change, message):
    args = {
        "log_probs": torch.randn(15, 2, 4).log_softmax(2),
        "targets": torch.tensor([[1, 2], [1, 2]]),
        "input_lengths": [15, 3],
        "target_lengths": [2, 1],
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        ctc_loss(**args)


def test_c_entry_refuses_what_it_cannot_handle():
    from rnnkit.nn.ctc import forward_backward_c

    log_probs = torch.randn(5, 2, 4).log_softmax(2)
    targets = torch.tensor([[1, 2], [3, 1]])
    lengths = torch.tensor([5, 5])
    with pytest.raises(ValueError, match="int64"):
        forward_backward_c(log_probs, targets.int(), lengths, lengths, 0, True)
    with pytest.raises(ValueError, match="float32/float64"):
        forward_backward_c(log_probs.half(), targets, lengths, lengths, 0, True)
    with pytest.raises(ValueError, match="refused"):  # a length past T, caught in C
        forward_backward_c(log_probs, targets, torch.tensor([9, 5]), torch.tensor([2, 2]), 0, True)
    with pytest.raises(ValueError, match="refused"):  # a label past C
        forward_backward_c(log_probs, torch.tensor([[1, 7], [1, 2]]), lengths,
                           torch.tensor([2, 2]), 0, True)  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("lower", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_cpu_autocast_runs_in_float32_as_f_ctc_loss(impl, lower, dtype):
    """F.ctc_loss is on CPU autocast's float32 list: lower-precision log_probs are cast to
    float32 and the loss is float32 (float64 stays float64); rnnkit's does the same, side by
    side, with the logits' gradient in their own dtype."""
    logits, targets, input_lengths, target_lengths = random_batch(3, dtype=torch.float32)
    results = []
    for loss_fn in (F.ctc_loss, lambda *a, **k: ctc_loss(*a, **k, impl=impl)):
        leaf = logits.to(dtype).requires_grad_()
        wide = torch.promote_types(dtype, torch.float32)
        log_probs = leaf.to(wide).log_softmax(2).to(dtype)  # (T, B, C) in the given dtype
        with torch.autocast("cpu", dtype=lower):
            loss = loss_fn(log_probs, targets, input_lengths, target_lengths, reduction="sum",
                           zero_infinity=True)  # fmt: skip
        (grad,) = torch.autograd.grad(loss, leaf)
        results.append((loss, grad))
    (ours, ours_grad), (theirs, theirs_grad) = results[1], results[0]
    assert (
        ours.dtype == theirs.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    )
    assert ours_grad.dtype == theirs_grad.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
    # torch's gradient with respect to log_probs is exp(log_probs) minus the posteriors, rnnkit's
    # minus the posteriors (equal after log_softmax); each is rounded to ``dtype`` on its way back.
    grad_tol = {torch.bfloat16: 2e-2, torch.float16: 2e-3}.get(dtype, tol)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=grad_tol, atol=grad_tol)
