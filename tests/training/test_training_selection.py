"""Choosing the weights kept as best on a task's own validation score (``selection_score``)
instead of the validation loss; tasks without it keep the loss."""

import json

import pytest
import torch
from test_training_loop import ScriptedValidation, config, make_model, make_task

from rnnkit.runs import RunDir
from rnnkit.training import Score, Trainer, TrainingInterrupted
from rnnkit.training import loop as loop_module

LOSSES = [5.0, 4.0, 3.0, 2.0, 1.0]  # falls at every validation (steps 10 .. 50)
SCORES = [0.2, 0.6, 0.5, 0.4, 0.1]  # the score peaks at step 20


class ScriptedSelection(ScriptedValidation):
    """Validation losses and selection scores given in advance (``None``: the loss chooses)."""

    def __init__(self, task, losses, scores, *, higher_is_better=True):
        super().__init__(task, losses)
        self.scores, self.higher = list(scores), higher_is_better
        self.modes = []

    def selection_score(self, model):
        self.modes.append((model.training, torch.is_grad_enabled()))
        value = self.scores.pop(0)
        return None if value is None else Score("CIDEr-D", value, self.higher)


def weights_at(steps):
    """An ``on_step`` that keeps copies of the weights after the given steps."""
    kept = {}

    def keep(trainer):
        if trainer.step in steps:
            kept[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    return kept, keep


def saved_best(run):
    tensors, meta = run.load_tensors("model.safetensors")
    return tensors, meta


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_best_score_chooses_the_weights_not_the_lowest_loss(tmp_path):
    task = ScriptedSelection(make_task(), LOSSES, SCORES)
    run = RunDir.create(tmp_path / "r", "lm")
    kept, keep = weights_at({20, 50})
    lines = []
    result = Trainer(make_model(), task, config(max_steps=50), run, on_step=keep,
                     report=lines.append).fit()  # fmt: skip
    tensors, meta = saved_best(run)
    assert same(tensors, kept[20]) and not same(tensors, kept[50])
    assert meta == {"step": 20, "loss": 4.0, "score": 0.6}
    summary = json.loads((run.path / "trainer.json").read_text())
    assert summary["best_step"] == 20 and summary["best_valid_loss"] == 4.0
    assert (summary["selected_on"], summary["best_score"]) == ("CIDEr-D", 0.6)
    assert (result.best_step, result.best_score, result.selected_on) == (20, 0.6, "CIDEr-D")
    assert result.best_valid_loss == 4.0 and result.valid_loss == 1.0
    valid = [r for r in run.read_jsonl("metrics.jsonl") if r["split"] == "valid"]
    assert [(r["loss"], r["score"]) for r in valid] == list(zip(LOSSES, SCORES))
    said = [line for line in lines if "valid loss" in line]
    assert (
        said[1]
        == "step 20: valid loss 4.0000 nats/token, valid CIDEr-D 0.6000 (best so far, saved)"
    )
    assert (
        said[4]
        == "step 50: valid loss 1.0000 nats/token, valid CIDEr-D 0.1000 (best 0.6000 at step 20)"
    )
    assert task.modes == [(False, False)] * 5  # scored in eval mode, without gradients


def test_a_score_where_lower_is_better_keeps_the_lowest(tmp_path):
    task = ScriptedSelection(
        make_task(), LOSSES, [0.3, 0.2, 0.25, 0.1, 0.4], higher_is_better=False
    )
    run = RunDir.create(tmp_path / "r", "lm")
    result = Trainer(make_model(), task, config(max_steps=50), run).fit()
    assert (result.best_step, result.best_score) == (40, 0.1)


def test_without_a_selection_score_the_loss_chooses_as_before(tmp_path):
    """A task without ``selection_score``, and one whose ``selection_score`` returns None, train
    alike: lowest loss kept, and no score in the summary, the metrics or the weights' file."""
    losses = [5.0, 3.0, 4.0, 3.5, 6.0]
    runs = []
    for name, task in (("plain", ScriptedValidation(make_task(), losses)),
                       ("none", ScriptedSelection(make_task(), losses, [None] * 5))):  # fmt: skip
        run = RunDir.create(tmp_path / name, "lm")
        kept, keep = weights_at({20})
        result = Trainer(make_model(), task, config(max_steps=50), run, on_step=keep).fit()
        tensors, meta = saved_best(run)
        assert same(tensors, kept[20]) and meta == {"step": 20, "loss": 3.0}
        assert (result.best_step, result.best_valid_loss, result.best_score) == (20, 3.0, None)
        summary = json.loads((run.path / "trainer.json").read_text())
        assert set(summary) == {"status", "step", "epoch", "checkpoint_step", "best_valid_loss",
                                "best_step", "elapsed_s"}  # fmt: skip
        assert all("score" not in r for r in run.read_jsonl("metrics.jsonl"))
        runs.append(run)
    assert same(saved_best(runs[0])[0], saved_best(runs[1])[0])


def test_a_resumed_run_keeps_its_best_score(tmp_path):
    """Interrupted after the best score (step 20) and resumed: a later, lower score does not
    replace it, and the run ends with the uninterrupted run's files."""
    straight = RunDir.create(tmp_path / "a", "lm")
    Trainer(make_model(), ScriptedSelection(make_task(), LOSSES, SCORES), config(max_steps=50),
            straight).fit()  # fmt: skip
    run = RunDir.create(tmp_path / "b", "lm")

    def stop_at_25(trainer):
        if trainer.step == 25:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted):
        Trainer(make_model(), ScriptedSelection(make_task(), LOSSES, SCORES), config(max_steps=50),
                run, on_step=stop_at_25).fit()  # fmt: skip
    rest = ScriptedSelection(make_task(), LOSSES[2:], SCORES[2:])  # validations 30, 40, 50
    result = Trainer(make_model(seed=7), rest, config(max_steps=50), run).fit(resume=True)
    assert (result.best_step, result.best_score) == (20, 0.6)
    assert same(saved_best(run)[0], saved_best(straight)[0])
    assert saved_best(run)[1] == saved_best(straight)[1]
    summary = json.loads((run.path / "trainer.json").read_text())
    assert summary["selected_on"] == "CIDEr-D" and summary["best_step"] == 20


def test_nt_asgd_and_patience_follow_their_own_figures(tmp_path, monkeypatch):
    """NT-ASGD's trigger is told the validation loss, not the score; patience counts the
    validations since the best score."""
    told = []
    monkeypatch.setattr(loop_module, "observe_validation", lambda opt, loss: told.append(loss))
    task = ScriptedSelection(make_task(), LOSSES, SCORES)
    run = RunDir.create(tmp_path / "r", "lm")
    result = Trainer(make_model(), task, config(max_steps=80, patience=2), run).fit()
    assert result.steps == 40  # best score at 20; 30 and 40 no better: stop (the loss fell)
    assert told == LOSSES[:4]


def test_a_non_finite_score_never_becomes_the_best(tmp_path):
    task = ScriptedSelection(make_task(), LOSSES, [float("nan"), 0.3, float("inf"), 0.2, 0.1])
    run = RunDir.create(tmp_path / "r", "lm")
    result = Trainer(make_model(), task, config(max_steps=50), run).fit()
    assert (result.best_step, result.best_score) == (20, 0.3)
