"""rnnkit.reference: truncated BPTT, clipping, Adagrad and the char-level trainer."""

import re

import numpy as np
import pytest
import torch

from rnnkit import cli
from rnnkit.errors import DownloadError
from rnnkit.reference.charmodel import init_char_model, window_loss
from rnnkit.reference.gradcheck import numerical_gradient, relative_error
from rnnkit.reference.sample_text import SAMPLE_TEXT
from rnnkit.reference.tbptt import batch_streams, clip_grad_norm, truncated_bptt, windows
from rnnkit.reference.train import (
    TrainConfig,
    adagrad_update,
    generate,
    train_char_model,
    unigram_entropy,
)


def tiny_model(cell="lstm", num_layers=2):
    rng = np.random.default_rng(0)
    return init_char_model(5, cell=cell, hidden_size=4, num_layers=num_layers, rng=rng)


def tiny_streams(seed=0):
    tokens = np.random.default_rng(seed).integers(0, 5, size=2 * 11)
    return batch_streams(tokens, 2)  # (11, 2): 10 steps of inputs -> windows of 4, 4, 2


def test_streams_and_windows_cover_the_text_with_targets_one_step_ahead():
    streams = batch_streams(np.arange(20), 2)
    np.testing.assert_array_equal(streams[:, 0], np.arange(10))
    np.testing.assert_array_equal(streams[:, 1], np.arange(10, 20))
    pairs = list(windows(streams, 4))
    assert [len(inputs) for inputs, _ in pairs] == [4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in pairs]), streams[:-1])
    np.testing.assert_array_equal(np.concatenate([t for _, t in pairs]), streams[1:])
    with pytest.raises(ValueError, match="too few for batch_size=8"):
        batch_streams(np.arange(10), 8)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_truncated_windows_carry_the_state_forward(cell):
    # The forward pass is not truncated: the window losses add up to the loss of one long window.
    model, streams = tiny_model(cell), tiny_streams()
    results = list(truncated_bptt(model, streams, 4))
    assert [r.steps for r in results] == [4, 4, 2]
    full_loss, _, full_state = window_loss(model, streams[:-1], streams[1:])
    assert sum(r.loss for r in results) == pytest.approx(full_loss, rel=1e-12)
    for ours, full in zip(results[-1].state, full_state):
        np.testing.assert_allclose(ours, full, rtol=0, atol=1e-12)


def test_truncated_gradient_is_the_gradient_of_the_window_local_loss():
    # Window 1's gradient equals the derivative of its own loss with the carried state held fixed,
    # and differs from the derivative through the whole history (the gradient was stopped).
    model, streams = tiny_model("lstm"), tiny_streams()
    results = list(truncated_bptt(model, streams, 4))
    carried = results[0].state
    inputs, targets = streams[4:8], streams[5:9]

    def local_loss():
        return window_loss(model, inputs, targets, carried)[0]

    def full_history_loss():
        _, _, state = window_loss(model, streams[:4], streams[1:5])
        return window_loss(model, inputs, targets, state)[0]

    for name in ("weight_hh_l0", "weight_ih_l1"):
        truncated = results[1].grads[name]
        assert relative_error(truncated, numerical_gradient(local_loss, model.params[name])) < 1e-6
    untruncated = numerical_gradient(full_history_loss, model.params["weight_hh_l0"])
    assert relative_error(results[1].grads["weight_hh_l0"], untruncated) > 1e-3


def test_window_gradients_match_central_differences_for_every_parameter():
    # One layer here: the cell tests cover two layers; this covers the one-hot input and output.
    model, streams = tiny_model("gru", num_layers=1), tiny_streams()
    state = np.random.default_rng(1).normal(size=(1, 2, 4))

    inputs, targets = streams[:4], streams[1:5]

    def loss():
        return window_loss(model, inputs, targets, state)[0]

    _, grads, _ = window_loss(model, inputs, targets, state)
    assert set(grads) == set(model.params)
    for name, grad in grads.items():
        assert relative_error(grad, numerical_gradient(loss, model.params[name])) < 1e-6, name


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(2)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    tensors = [torch.from_numpy(g.copy()).requires_grad_() for g in grads.values()]
    for t in tensors:
        t.grad = t.detach().clone()
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm=1.5)
    norm = clip_grad_norm(grads, 1.5)
    assert norm == pytest.approx(expected_norm.item(), rel=1e-12)
    for g, t in zip(grads.values(), tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    after = np.sqrt(sum((g**2).sum() for g in grads.values()))
    assert after == pytest.approx(1.5, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = {"a": np.array([0.3, -0.4])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads["a"], [0.3, -0.4])
    with pytest.raises(ValueError, match="max_norm must be positive"):
        clip_grad_norm(grads, 0.0)


def test_first_adagrad_step_moves_each_parameter_by_lr_against_its_gradient_sign():
    params = {"w": np.array([1.0, 2.0, 3.0])}
    memory = {}
    adagrad_update(params, {"w": np.array([0.5, -2.0, 10.0])}, memory, lr=0.1)
    np.testing.assert_allclose(params["w"], [0.9, 2.1, 2.9], rtol=1e-7)
    np.testing.assert_allclose(memory["w"], [0.25, 4.0, 100.0])


def test_unigram_entropy_of_known_distributions():
    assert unigram_entropy("aaaa") == 0.0
    assert unigram_entropy("abab") == pytest.approx(np.log(2))
    assert unigram_entropy("aabc") == pytest.approx(1.5 * np.log(2))


def test_trainer_learns_a_periodic_text_and_generate_continues_a_prime():
    text = "abcabd" * 60
    config = TrainConfig(cell="gru", hidden_size=12, seq_length=6, batch_size=4, steps=80, lr=0.3)
    reports = []
    result = train_char_model(text, config, on_progress=reports.append)
    assert result.steps == 80 and reports[-1].step == 80
    assert result.smooth_loss < unigram_entropy(text) - 0.3
    sample = generate(result, length=30, prime="ab", seed=1)
    assert sample.startswith("ab") and len(sample) == 32 and set(sample) <= set("abcd")
    with pytest.raises(ValueError, match="not in the vocabulary: 'z'"):
        generate(result, length=3, prime="az")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reference_train_command_prints_a_falling_loss_and_a_sample(tmp_path, capsys, cell):
    data = tmp_path / "tiny.txt"
    data.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    argv = ["reference", "train", "--data", str(data), "--cell", cell, "--hidden", "16"]
    argv += ["--seq-length", "8", "--batch-size", "4", "--steps", "90", "--log-every", "30"]
    argv += ["--lr", "0.2", "--sample-length", "40"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    entropy = float(re.search(r"unigram entropy: ([\d.]+) nats/char", out).group(1))
    assert entropy == pytest.approx(unigram_entropy("the cat sat on the mat. "), abs=1e-3)
    rows = re.findall(r"^\s+(\d+)\s+[\d,]+\s+([\d.]+)\s+([\d.]+)\s+[\d.]+s$", out, re.M)
    assert [int(step) for step, _, _ in rows] == [30, 60, 90]
    smoothed = [float(s) for _, _, s in rows]
    assert smoothed[-1] < smoothed[0] and smoothed[-1] < entropy
    assert "below the unigram entropy" in out
    sample = out.split("--- sample (40 characters, temperature 1.0) ---\n")[1]
    assert len(sample.rstrip("\n")) == 41 and set(sample.strip()) <= set("the cat sat on the mat.")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--hidden", "0"], "argument --hidden: must be an integer >= 1, got 0"),
        (["--seq-length", "0"], "argument --seq-length: must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
        (["--lr", "-1"], "argument --lr: must be a finite number > 0, got -1"),
        (["--clip", "0"], "argument --clip: must be a finite number > 0, got 0"),
        (["--max-minutes", "0"], "argument --max-minutes: must be a finite number > 0, got 0"),
        (["--temperature", "0"], "argument --temperature: must be a finite number > 0, got 0"),
        (["--sample-length", "-1"], "argument --sample-length: must be an integer >= 1, got -1"),
    ],
)
def test_reference_train_command_refuses_bad_settings_when_parsing(capsys, option, message):
    with pytest.raises(SystemExit) as caught:
        cli.main(["reference", "train", "--data", "sample", "--hidden", "4", *option])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_reference_train_command_checks_the_prime_before_training(capsys):
    code = cli.main(["reference", "train", "--data", "sample", "--prime", "xyz", "--steps", "1"])
    captured = capsys.readouterr()
    assert code == 2 and "--prime has characters that the training text lacks: 'x'" in captured.err
    assert "step" not in captured.out  # refused before any training


def test_reference_train_command_reports_bad_data_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert cli.main(["reference", "train", "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnkit: error: {empty} is empty") and err.count("\n") == 1
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 10)
    assert cli.main(["reference", "train", "--data", str(latin)]) == 2
    assert "is not valid utf-8" in capsys.readouterr().err
    assert cli.main(["reference", "train", "--data", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("abc", encoding="utf-8")
    assert cli.main(["reference", "train", "--data", str(short)]) == 2
    assert "3 tokens are too few for batch_size=16" in capsys.readouterr().err


def test_reference_train_falls_back_to_the_builtin_text_when_offline(monkeypatch, capsys):
    import rnnkit.data

    def offline(name, **_kwargs):
        raise DownloadError(f"cannot download {name}: no network")

    monkeypatch.setattr(rnnkit.data, "load_corpus", offline)
    argv = ["reference", "train", "--hidden", "8", "--steps", "2", "--sample-length", "5"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "could not fetch the shakespeare corpus" in captured.err
    assert f"text: built-in sample text, {len(SAMPLE_TEXT):,} characters" in captured.out


def test_reference_train_data_sample_uses_the_builtin_text(capsys):
    argv = ["reference", "train", "--data", "sample", "--hidden", "8", "--steps", "2"]
    assert cli.main(argv + ["--sample-length", "5"]) == 0
    assert f"text: built-in sample text, {len(SAMPLE_TEXT):,} characters" in capsys.readouterr().out


def test_reference_gradcheck_command_reports_the_worst_error(monkeypatch, capsys):
    import rnnkit.reference.gradcheck as gradcheck

    def fake(cell, **_options):
        return {"x": 1e-9, "h0": 1e-3 if cell == "lstm" else 2e-9}

    monkeypatch.setattr(gradcheck, "check_sequence_gradients", fake)
    assert cli.main(["reference", "gradcheck"]) == 1
    out = capsys.readouterr().out
    assert len(re.findall(r"^(rnn-tanh|rnn-relu|lstm|gru) +[12] ", out, re.M)) == 8
    assert "FAILED: worst relative error 1.00e-03" in out

    monkeypatch.setattr(gradcheck, "check_sequence_gradients", lambda cell, **_: {"x": 2e-9})
    assert cli.main(["reference", "gradcheck"]) == 0
    assert "ok: worst relative error 2.00e-09" in capsys.readouterr().out
