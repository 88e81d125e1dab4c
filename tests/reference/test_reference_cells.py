"""rnnkit.reference: forward and BPTT of rnn/lstm/gru against finite differences and torch.nn."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.reference import (
    gru_backward,
    gru_forward,
    init_params,
    lstm_backward,
    lstm_forward,
    param_shapes,
    rnn_backward,
    rnn_forward,
)
from rnnkit.reference.cells import BACKWARD, FORWARD
from rnnkit.reference.gradcheck import check_sequence_gradients, numerical_gradient
from rnnkit.reference.loss import output_loss_backward, output_loss_forward

# (cell, options): every cell type, and both nonlinearities of the vanilla RNN.
CASES = [
    ("rnn", {"nonlinearity": "tanh"}),
    ("rnn", {"nonlinearity": "relu"}),
    ("lstm", {}),
    ("gru", {}),
]
CASE_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
# Libraries whose RNN/LSTM/GRU the reference must agree with. Add "rnnkit.nn" once it is merged.
ORACLES = ["torch.nn", "rnnkit.nn"]


def random_state(cell, shape, rng):
    if cell == "lstm":
        return rng.normal(size=shape), rng.normal(size=shape)
    return rng.normal(size=shape)


def as_parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_gradients_match_central_differences(cell, options, num_layers):
    errors = check_sequence_gradients(
        cell, num_layers=num_layers, nonlinearity=options.get("nonlinearity", "tanh"), seed=1
    )
    expected = set(param_shapes(cell, 3, 4, num_layers=num_layers)) | {"x", "h0"}
    expected |= {"c0"} if cell == "lstm" else set()
    assert set(errors) == expected
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def test_gradient_check_detects_a_wrong_backward(monkeypatch):
    # The checker must be able to fail: drop the derivative of tanh in the RNN's backward.
    from rnnkit.reference import rnn as rnn_module

    step_backward = rnn_module.RNN_CELL.step_backward

    def wrong_step_backward(w, d_state, cache, dw, options):
        x, h_prev, a, _h = cache
        return step_backward(w, d_state, (x, h_prev, a, np.zeros_like(_h)), dw, options)

    monkeypatch.setattr(
        rnn_module, "RNN_CELL", rnn_module.RNN_CELL._replace(step_backward=wrong_step_backward)
    )
    errors = check_sequence_gradients("rnn", seed=1)
    assert max(errors.values()) > 1e-2


@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_outputs_and_gradients_equal_torch_nn(cell, options, num_layers, bias, oracle):
    rng = np.random.default_rng(3)
    steps, batch, input_size, hidden = 6, 3, 4, 5
    params = init_params(cell, input_size, hidden, num_layers=num_layers, bias=bias, rng=rng)
    x = rng.normal(size=(steps, batch, input_size))
    state = random_state(cell, (num_layers, batch, hidden), rng)
    outputs, final, cache = FORWARD[cell](
        params, x, state, num_layers=num_layers, bias=bias, **options
    )
    d_out = rng.normal(size=outputs.shape)
    d_final = random_state(cell, (num_layers, batch, hidden), rng)
    d_params, d_x, d_state = BACKWARD[cell](params, d_out, d_final, cache)

    module_class = getattr(importlib.import_module(oracle), cell.upper())  # e.g. torch.nn.LSTM
    module = module_class(
        input_size, hidden, num_layers=num_layers, bias=bias, dtype=torch.float64, **options
    )
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(params[name]))
    x_t = torch.from_numpy(x).requires_grad_()
    state_t = tuple(torch.from_numpy(s).requires_grad_() for s in as_parts(state))
    out_t, final_t = module(x_t, state_t if cell == "lstm" else state_t[0])
    final_parts = as_parts(final_t)
    objective = (out_t * torch.from_numpy(d_out)).sum()
    for f, g in zip(final_parts, as_parts(d_final)):
        objective = objective + (f * torch.from_numpy(g)).sum()
    objective.backward()

    def same(ours, theirs):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-9)

    same(outputs, out_t)
    for ours, theirs in zip(as_parts(final), final_parts):
        same(ours, theirs)
    assert list(d_params) == [name for name, _ in module.named_parameters()]
    for name, p in module.named_parameters():
        same(d_params[name], p.grad)
    same(d_x, x_t.grad)
    for ours, theirs in zip(as_parts(d_state), state_t):
        same(ours, theirs.grad)


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_none_state_means_zeros_and_none_gradients_mean_zeros(cell, options):
    rng = np.random.default_rng(4)
    params = init_params(cell, 3, 4, num_layers=2, rng=rng)
    x = rng.normal(size=(4, 2, 3))
    zeros = (np.zeros((2, 2, 4)), np.zeros((2, 2, 4))) if cell == "lstm" else np.zeros((2, 2, 4))
    out_a, final_a, cache_a = FORWARD[cell](params, x, None, num_layers=2, **options)
    out_b, final_b, cache_b = FORWARD[cell](params, x, zeros, num_layers=2, **options)
    np.testing.assert_array_equal(out_a, out_b)
    d_out = rng.normal(size=out_a.shape)
    grads_a = BACKWARD[cell](params, d_out, None, cache_a)
    grads_b = BACKWARD[cell](params, d_out, zeros, cache_b)
    for name in params:
        np.testing.assert_array_equal(grads_a[0][name], grads_b[0][name])
    np.testing.assert_array_equal(grads_a[1], grads_b[1])


def test_loss_over_time_gradient_is_the_sum_of_per_step_contributions():
    # L = sum_t L_t. Compute each L_t's gradient on its own, from a forward pass over x[:t+1] that
    # only scores step t, and check that the total's gradient (one backward pass) is their sum.
    rng = np.random.default_rng(5)
    steps, batch, vocab, hidden = 5, 2, 6, 4
    params = init_params("gru", vocab, hidden, rng=rng)
    w_out, b_out = rng.normal(size=(vocab, hidden)), rng.normal(size=vocab)
    x = rng.normal(size=(steps, batch, vocab))
    targets = rng.integers(0, vocab, size=(steps, batch))

    def loss_and_grads(t0, t1):
        hidden_states, _, cache = gru_forward(params, x[:t1], None)
        loss, out_cache = output_loss_forward(w_out, b_out, hidden_states[t0:t1], targets[t0:t1])
        d_w_out, _, d_h = output_loss_backward(out_cache)
        d_outputs = np.zeros_like(hidden_states)
        d_outputs[t0:t1] = d_h
        d_params, _, _ = gru_backward(params, d_outputs, None, cache)
        return loss, {**d_params, "weight_out": d_w_out}

    total_loss, total_grads = loss_and_grads(0, steps)
    per_step = [loss_and_grads(t, t + 1) for t in range(steps)]
    assert total_loss == pytest.approx(sum(loss for loss, _ in per_step), rel=1e-12)
    for name, grad in total_grads.items():
        np.testing.assert_allclose(grad, sum(g[name] for _, g in per_step), rtol=1e-10, atol=1e-12)


def test_output_loss_gradients_match_central_differences():
    rng = np.random.default_rng(6)
    hidden_states = rng.normal(size=(4, 3, 5))
    w_out, b_out = rng.normal(size=(7, 5)), rng.normal(size=7)
    targets = rng.integers(0, 7, size=(4, 3))

    def loss():
        return output_loss_forward(w_out, b_out, hidden_states, targets)[0]

    d_w, d_b, d_h = output_loss_backward(
        output_loss_forward(w_out, b_out, hidden_states, targets)[1]
    )
    for analytic, array in ((d_w, w_out), (d_b, b_out), (d_h, hidden_states)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, array), rtol=1e-6, atol=1e-9)


def test_output_loss_equals_torch_cross_entropy_summed_over_steps():
    rng = np.random.default_rng(7)
    hidden_states = rng.normal(size=(4, 3, 5))
    w_out, b_out = rng.normal(size=(7, 5)), rng.normal(size=7)
    targets = rng.integers(0, 7, size=(4, 3))
    loss, _ = output_loss_forward(w_out, b_out, hidden_states, targets)
    scores = torch.from_numpy(hidden_states @ w_out.T + b_out).reshape(-1, 7)
    expected = (
        torch.nn.functional.cross_entropy(
            scores, torch.from_numpy(targets).reshape(-1), reduction="sum"
        )
        / 3
    )  # summed over steps and batch, averaged over the batch
    assert loss == pytest.approx(expected.item(), rel=1e-12)


# ----------------------------------------------------------------------------- bad input


def params_for(cell="gru", num_layers=2):
    return init_params(cell, 3, 4, num_layers=num_layers, rng=np.random.default_rng(0))


X = np.zeros((2, 1, 3))


def test_missing_parameter_names_the_key_and_expected_shape():
    params = params_for()
    del params["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"'bias_hh_l1'.*\(12,\)"):
        gru_forward(params, X, num_layers=2)


def test_wrong_parameter_shape_names_the_key_and_expected_shape():
    params = params_for("lstm", num_layers=1)
    params["weight_ih_l0"] = np.zeros((16, 5))
    with pytest.raises(ValueError, match=r"'weight_ih_l0'.*\(16, 5\).*expected \(16, 3\)"):
        lstm_forward(params, X)


def test_parameters_of_more_layers_than_num_layers_are_refused():
    with pytest.raises(ValueError, match=r"'weight_ih_l1'.*num_layers=1.*num_layers=2"):
        gru_forward(params_for(), X, num_layers=1)


def test_missing_weight_hh_l0_is_named():
    params = params_for("rnn", num_layers=1)
    del params["weight_hh_l0"]
    with pytest.raises(ValueError, match="'weight_hh_l0'"):
        rnn_forward(params, X)


def test_wrong_state_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"state has shape \(1, 1, 4\); expected \(2, 1, 4\)"):
        gru_forward(params_for(), X, np.zeros((1, 1, 4)), num_layers=2)
    with pytest.raises(
        ValueError, match=r"state \(c\) has shape \(1, 2, 4\); expected \(1, 1, 4\)"
    ):
        lstm_forward(params_for("lstm", 1), X, (np.zeros((1, 1, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match=r"pair \(h, c\)"):
        lstm_forward(params_for("lstm", 1), X, np.zeros((1, 1, 4)))


def test_bad_input_and_options_are_refused():
    params = params_for("rnn", 1)
    with pytest.raises(ValueError, match=r"x has shape \(2, 3\); expected \(T, B, input_size\)"):
        rnn_forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"'weight_ih_l0'.*expected \(4, 5\)"):
        rnn_forward(params, np.zeros((2, 1, 5)))  # input_size 5, weights built for 3
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        rnn_forward(params, X, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        rnn_forward(params, X, num_layers=0)


def test_backward_checks_gradient_shapes_and_cache_origin():
    params = params_for("rnn", 1)
    outputs, _, cache = rnn_forward(params, X)
    with pytest.raises(ValueError, match=r"d_outputs has shape \(1, 1, 4\); expected \(2, 1, 4\)"):
        rnn_backward(params, np.zeros((1, 1, 4)), None, cache)
    with pytest.raises(ValueError, match=r"d_final_state has shape"):
        rnn_backward(params, outputs, np.zeros((2, 1, 4)), cache)
    with pytest.raises(ValueError, match="pass it to rnn_backward"):
        lstm_backward(params, outputs, None, cache)


def test_importing_the_reference_does_not_import_torch():
    src = str(Path(rnnkit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    code = (
        "import sys, rnnkit.reference, rnnkit.reference.train, rnnkit.reference.gradcheck, "
        "rnnkit.commands.reference; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
