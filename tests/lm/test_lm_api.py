import pytest
import torch

from rnnkit import lm
from rnnkit.errors import DataError
from rnnkit.lm import LMRecipe


@pytest.fixture(scope="module")
def periodic_run(tmp_path_factory):
    """A small GRU trained on a text with period 7: it should learn to continue it exactly."""
    tmp = tmp_path_factory.mktemp("api")
    data = tmp / "periodic.txt"
    data.write_text("abcdefg" * 600)
    recipe = LMRecipe(
        data=str(data), cell="gru", embedding_dim=8, hidden_size=32, num_layers=1, bptt=14,
        batch_size=8, lr=1e-2, warmup_steps=0, max_minutes=None, max_steps=120, eval_every=60,
    )  # fmt: skip
    result = lm.train(tmp / "run", recipe=recipe)
    return tmp / "run", result


def test_training_learns_a_periodic_text(periodic_run):
    run, result = periodic_run
    assert result.steps == 120
    assert result.best_valid_loss < 0.1  # nats/char; uniform over 7 letters would be 1.95
    model = lm.load(run)
    assert lm.generate(model, "cde", length=10, greedy=True) == "cdefgabcdefga"
    assert lm.generate(model, "g", length=6, beam=3) == "gabcdef"


def test_sampling_is_reproducible_with_a_seed_and_streams(periodic_run):
    run, _ = periodic_run
    model = lm.load(run)
    pieces = []
    text = lm.generate(model, "ab", length=20, temperature=1.5, seed=7, on_text=pieces.append)
    assert "".join(pieces) == text and pieces[0] == "ab" and len(pieces) == 21
    assert lm.generate(model, "ab", length=20, temperature=1.5, seed=7) == text


def test_evaluate_reports_bits_per_char(periodic_run):
    run, _ = periodic_run
    result = lm.evaluate(run, split="test")
    assert result["loss"] < 0.1 and result["bits_per_char"] == pytest.approx(
        result["loss"] / 0.6931, rel=1e-3
    )
    with pytest.raises(ValueError, match="split"):
        lm.evaluate(run, split="dev")


def test_generate_rejects_bad_arguments(periodic_run):
    run, _ = periodic_run
    model = lm.load(run)
    with pytest.raises(ValueError, match="length"):
        lm.generate(model, "a", length=0)
    with pytest.raises(DataError, match="'z'"):
        lm.generate(model, "az", length=3)


def test_generation_never_emits_unk(periodic_run):
    run, _ = periodic_run
    model = lm.load(run)
    with torch.no_grad():  # make <unk> the model's favourite next token
        model.model.decoder.bias[model.vocab.unk_index] = 100.0
    for options in ({"temperature": 1.0, "seed": 0}, {"greedy": True}, {"beam": 2}):
        assert "<unk>" not in lm.generate(model, "abc", length=30, **options)


def teacher_forced(model, ids):
    """Next-token probabilities (T, V) and last-layer hidden states (T, H) of a GRU LM reading
    ``ids`` in one forward pass: the oracle for the step-by-step details."""
    with torch.no_grad():
        tokens = torch.tensor(ids).unsqueeze(1)  # (T, 1)
        logits, _ = model(tokens)
        hidden, _ = model.rnn(model.embedding(tokens))  # (T, 1, H): GRU output is its state
    return logits[:, 0].softmax(-1), hidden[:, 0]


@pytest.mark.parametrize("settings", [{"temperature": 1.5, "seed": 3}, {"beam": 3}])
def test_generate_steps_match_generate_and_a_teacher_forced_pass(periodic_run, settings):
    run, _ = periodic_run
    model = lm.load(run)
    streamed = []
    steps = lm.generate_steps(model, "abc", length=12, top=3, on_step=streamed.append, **settings)
    assert streamed == steps and len(steps) == 12
    assert "abc" + "".join(s.text for s in steps) == lm.generate(
        model, "abc", length=12, **settings
    )
    ids = model.vocab.encode(list("abc" + "".join(s.text for s in steps)))
    probs, hidden = teacher_forced(model.model, ids)
    for t, step in enumerate(steps):
        row = 2 + t  # the position that read the token before this one
        token = ids[3 + t]
        assert step.prob == pytest.approx(float(probs[row, token]), abs=1e-5)
        top = probs[row].topk(3)
        assert [a for a, _ in step.alternatives] == [model.vocab.itos[i] for i in top.indices]
        assert [p for _, p in step.alternatives] == pytest.approx(top.values.tolist(), abs=1e-5)
        assert step.hidden == pytest.approx(hidden[row].tolist(), abs=1e-5)


def test_generate_steps_rejects_what_generate_rejects(periodic_run):
    model = lm.load(periodic_run[0])
    with pytest.raises(ValueError, match="length"):
        lm.generate_steps(model, "a", length=0)
    with pytest.raises(DataError, match="'z'"):
        lm.generate_steps(model, "az", length=3)
