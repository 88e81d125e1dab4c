import json
import math
import os
import signal

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.lm.model import LMConfig, RNNLanguageModel
from rnnkit.lm.task import LanguageModelTask
from rnnkit.runs import BEST, RunDir
from rnnkit.training import (
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
)
from rnnkit.training.optim import lr_at

TEXT = "the quick brown fox jumps over the lazy dog. " * 20


def make_task(batch_size=4, bptt=8):
    ids = torch.tensor([ord(c) % 32 for c in TEXT])
    splits = {"train": ids[:800], "valid": ids[800:850], "test": ids[850:]}
    return LanguageModelTask(splits, batch_size=batch_size, bptt=bptt)


def make_model(cell="lstm", seed=0):
    torch.manual_seed(seed)
    config = LMConfig(
        vocab_size=32, cell=cell, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.2
    )
    return RNNLanguageModel(config)


def config(**kw):
    base = dict(max_steps=30, eval_every=10, log_every=5, lr=1e-2, warmup_steps=3, seed=3)
    return TrainConfig(**{**base, **kw})


def records(run):
    return [(r["step"], r["split"], r["loss"]) for r in run.read_jsonl("metrics.jsonl")]


@pytest.mark.parametrize("optimizer, ema", [("adamw", 0.0), ("sgd", 0.0), ("adamw", 0.9)])
def test_interrupted_then_resumed_run_ends_with_identical_weights(tmp_path, optimizer, ema):
    task = make_task()  # 25 windows per epoch: the stop at 13 is mid-epoch, the run crosses one
    assert task.steps_per_epoch() == 25
    cfg = config(optimizer=optimizer, momentum=0.9, ema=ema)
    straight_run = RunDir.create(tmp_path / "a", task="lm")
    straight = make_model()
    Trainer(straight, task, cfg, straight_run).fit()

    run = RunDir.create(tmp_path / "b", task="lm")

    def stop_at_13(trainer):
        if trainer.step == 13:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted, match="interrupted at step 13.*--resume"):
        Trainer(make_model(), task, cfg, run, on_step=stop_at_13).fit()
    assert json.loads((run.path / "trainer.json").read_text())["status"] == "interrupted"
    resumed = make_model(seed=99)  # other initial weights: all must come from the checkpoint
    result = Trainer(resumed, task, cfg, run).fit(resume=True)
    assert result.steps == 30
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert records(run) == records(straight_run)  # validation losses of the averaged weights too
    kept, _ = run.load_tensors("model.safetensors")
    straight_kept, _ = straight_run.load_tensors("model.safetensors")
    assert kept.keys() == straight_kept.keys()
    for name, value in straight_kept.items():
        assert torch.equal(value, kept[name]), name


def test_ema_validates_and_keeps_the_moving_average_of_the_trained_weights(tmp_path):
    decay, steps = 0.5, 12  # (1 + n) / (10 + n) reaches 0.5 at step 8
    model = make_model()
    average = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    mixed = []

    def follow(trainer):  # the average by hand, from the weights after each step
        n = trainer.step
        rate = 1.0 - min(decay, (1 + n) / (10 + n))
        mixed.append(rate)
        for name, p in trainer.model.named_parameters():
            average[name] += rate * (p.detach().double() - average[name])

    run = RunDir.create(tmp_path / "r", task="lm")
    cfg = config(max_steps=steps, eval_every=0, ema=decay)  # one validation, at the end
    result = Trainer(model, make_task(), cfg, run, on_step=follow).fit()
    assert mixed[:3] == pytest.approx([1 - 2 / 11, 1 - 3 / 12, 1 - 4 / 13])  # warm-up rates
    assert mixed[-1] == pytest.approx(1 - decay)
    kept, meta = run.load_tensors("model.safetensors")
    last, _ = run.load_tensors("last.safetensors")
    differs = 0
    for name, p in model.named_parameters():
        assert torch.allclose(kept[name].double(), average[name], atol=1e-6), name
        assert torch.equal(last[f"model.{name}"], p.detach()), name  # training goes on raw
        differs += not torch.allclose(kept[name], p.detach(), atol=1e-4)
    assert differs > 0  # the average is not the last weights
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(kept[name])
    assert result.valid_loss == pytest.approx(make_task().evaluate(model.eval(), "valid"), rel=1e-5)


def test_sigint_writes_a_checkpoint_before_stopping(tmp_path):
    run = RunDir.create(tmp_path / "r", task="lm")

    def interrupt(trainer):
        if trainer.step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background by a shell
    with pytest.raises(TrainingInterrupted):
        Trainer(make_model(), make_task(), config(), run, on_step=interrupt).fit()
    _, meta = run.load_tensors("last.safetensors")
    assert meta["trainer"]["step"] == 4 and meta["trainer"]["position"] == 4
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is restored


class NaNAfter:
    """Wraps a task; its loss becomes NaN from step ``n`` on."""

    def __init__(self, task, n):
        self.task, self.n, self.calls = task, n, 0
        self.name = task.name

    def __getattr__(self, name):
        return getattr(self.task, name)

    def train_loss(self, model, batch, carry):
        loss, count, state = self.task.train_loss(model, batch, carry)
        self.calls += 1
        return (loss * math.nan if self.calls > self.n else loss), count, state


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = RunDir.create(tmp_path / "r", task="lm")
    with pytest.raises(
        NonFiniteLossError, match="loss became nan at step 13.*step 10.*kept"
    ) as exc:
        Trainer(make_model(), NaNAfter(make_task(), 12), config(), run).fit()
    assert "\n" not in str(exc.value)
    _, meta = run.load_tensors("last.safetensors")
    assert meta["trainer"]["step"] == 10
    weights, _ = run.load_tensors("model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    summary = json.loads((run.path / "trainer.json").read_text())
    assert summary["status"].startswith("stopped") and summary["checkpoint_step"] == 10


def test_nan_before_any_checkpoint_says_so(tmp_path):
    run = RunDir.create(tmp_path / "r", task="lm")
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet"):
        Trainer(make_model(), NaNAfter(make_task(), 0), config(), run).fit()


class NaNValidation(NaNAfter):
    """Wraps a task; its validation loss is NaN (its training loss stays finite)."""

    def evaluate(self, model, split):
        return math.nan


def test_nan_at_the_first_validation_is_the_nan_message(tmp_path):
    run = RunDir.create(tmp_path / "r", task="lm")
    with pytest.raises(
        NonFiniteLossError, match="validation loss became nan at step 1; .*no checkpoint"
    ):
        Trainer(make_model(), NaNValidation(make_task(), 99), config(eval_every=1), run).fit()
    assert not run.has("last.safetensors")


def test_budgets_epochs_and_minutes(tmp_path):
    task = make_task()
    result = Trainer(
        make_model(), task, config(max_steps=None, epochs=2), RunDir.create(tmp_path / "e", "lm")
    ).fit()
    assert result.steps == 2 * task.steps_per_epoch()
    tiny = config(max_steps=None, max_minutes=1e-6)
    result = Trainer(make_model(), task, tiny, RunDir.create(tmp_path / "m", "lm")).fit()
    assert result.steps <= 1


@pytest.mark.parametrize(
    "eval_every, steps", [(0, [25, 50, 60]), (10, [10, 20, 25, 30, 40, 50, 60])]
)
def test_eval_each_epoch_validates_at_every_pass_end_too(tmp_path, eval_every, steps):
    task = make_task()  # 25 windows per pass
    cfg = config(max_steps=60, eval_every=eval_every, eval_each_epoch=True)
    run = RunDir.create(tmp_path / "r", "lm")
    Trainer(make_model(), task, cfg, run).fit()
    assert [step for step, split, _ in records(run) if split == "valid"] == steps
    plain = RunDir.create(tmp_path / "p", "lm")  # off by default: no pass-end validations
    Trainer(make_model(), task, config(max_steps=60, eval_every=eval_every), plain).fit()
    assert 25 not in [step for step, split, _ in records(plain) if split == "valid"]


def test_a_run_resumed_after_a_pass_end_validation_matches_the_straight_run(tmp_path):
    task = make_task()
    cfg = config(max_steps=60, eval_every=0, eval_each_epoch=True)
    straight = RunDir.create(tmp_path / "a", "lm")
    Trainer(make_model(), task, cfg, straight).fit()
    run = RunDir.create(tmp_path / "b", "lm")

    def stop_at_the_pass_end(trainer):  # after the validation at step 25
        if trainer.step == 25:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted, match="step 25"):
        Trainer(make_model(), task, cfg, run, on_step=stop_at_the_pass_end).fit()
    Trainer(make_model(seed=99), task, cfg, run).fit(resume=True)
    assert [r[:2] for r in records(run) if r[1] == "valid"] == [(25, "valid"), (50, "valid"),
                                                               (60, "valid")]  # fmt: skip
    assert records(run) == records(straight)


def test_a_run_stopped_at_its_last_step_validates_when_resumed(tmp_path):
    task, cfg = make_task(), config(max_steps=30, eval_every=20)
    straight = RunDir.create(tmp_path / "a", "lm")
    Trainer(make_model(), task, cfg, straight).fit()
    run = RunDir.create(tmp_path / "b", "lm")

    def stop_at_30(trainer):
        if trainer.step == 30:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted, match="step 30"):
        Trainer(make_model(), task, cfg, run, on_step=stop_at_30).fit()
    assert (30, "valid") not in [r[:2] for r in records(run)]
    Trainer(make_model(seed=99), task, cfg, run).fit(resume=True)
    assert records(run) == records(straight)  # the final validation at 30 included
    assert json.loads((run.path / "trainer.json").read_text())["status"] == "finished"


class ScriptedValidation:
    """A task whose validation losses are given: the trainer's stopping rule can be checked."""

    def __init__(self, task, losses):
        self.task, self.losses = task, list(losses)
        self.name = task.name

    def __getattr__(self, name):
        return getattr(self.task, name)

    def evaluate(self, model, split):
        return self.losses.pop(0)


def test_patience_stops_after_that_many_validations_without_a_new_best(tmp_path):
    task = ScriptedValidation(make_task(), [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0])
    run = RunDir.create(tmp_path / "p", "lm")
    result = Trainer(make_model(), task, config(max_steps=80, patience=3), run).fit()
    assert result.steps == 60  # best at 30; 40, 50, 60 no better: stop, though 70 would be
    summary = json.loads((run.path / "trainer.json").read_text())
    assert (summary["best_step"], summary["status"]) == (30, "finished")
    assert result.best_valid_loss == 3.0


@pytest.mark.parametrize("reserve, steps", [(False, 60), (True, 40)])
def test_reserve_refit_leaves_the_time_to_retrain_up_to_the_best_step(tmp_path, reserve, steps):
    """One second per step, a one-minute budget, the best validation at step 20: without the
    reserve the run takes the whole minute; with it, it stops at 40 s, when 40 s + 20 steps at
    1 s would reach the budget (a refit of the best checkpoint's 20 steps fits what is left)."""
    task = ScriptedValidation(make_task(), [5.0, 4.0] + [6.0] * 10)
    now = [0.0]

    def tick(trainer):
        now[0] += 1.0

    cfg = config(max_steps=None, max_minutes=1.0, reserve_refit=reserve)
    run = RunDir.create(tmp_path / f"r{reserve}", "lm")
    result = Trainer(make_model(), task, cfg, run, on_step=tick, clock=lambda: now[0]).fit()
    assert result.steps == steps
    assert json.loads((run.path / "trainer.json").read_text())["best_step"] == 20
    assert not reserve or steps + 20 <= 60  # the refit's 20 steps at 1 s fit the minute


def test_schedule_steps_replays_the_start_of_a_longer_schedule(tmp_path):
    """A 20-step run on the schedule of 40 steps ends with the weights the 40-step run had at
    step 20 (what a refit that stops part-way through its first stage's schedule relies on)."""
    seen = {}

    def keep_step_20(trainer):
        if trainer.step == 20:
            seen.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    long_run = RunDir.create(tmp_path / "long", "lm")
    Trainer(make_model(), make_task(), config(max_steps=40), long_run, on_step=keep_step_20).fit()
    short = make_model()
    short_run = RunDir.create(tmp_path / "short", "lm")
    Trainer(short, make_task(), config(max_steps=20, schedule_steps=40), short_run).fit()
    for name, value in short.state_dict().items():
        assert torch.equal(value, seen[name]), name
    lr = lambda run: [r["lr"] for r in run.read_jsonl("metrics.jsonl") if r["split"] == "train"]  # noqa: E731
    assert lr(short_run) == lr(long_run)[:4]  # steps 5..20
    annealed = RunDir.create(tmp_path / "anneal", "lm")
    Trainer(make_model(), make_task(), config(max_steps=20), annealed).fit()
    assert lr(annealed)[-1] < lr(short_run)[-1] / 2  # without it, the 20 steps decay fully


def test_training_learns_and_writes_metrics_and_plot(tmp_path):
    run = RunDir.create(tmp_path / "r", task="lm")
    trainer = Trainer(make_model("gru"), make_task(), config(max_steps=60, lr=2e-2), run)
    before = trainer.evaluate("valid")
    result = trainer.fit()
    assert result.best_valid_loss < before - 0.5
    lines = run.read_jsonl("metrics.jsonl")
    train = [r for r in lines if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(5, 61, 5))
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 for r in train)
    assert [r["step"] for r in lines if r["split"] == "valid"] == [10, 20, 30, 40, 50, 60]
    assert (run.path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"model.safetensors", "last.safetensors", "trainer.json"} <= {
        p.name for p in run.path.iterdir()
    }


def test_learning_rate_schedule():
    c = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(c, 0, 0.0) == pytest.approx(0.1)
    assert lr_at(c, 9, 0.09) == pytest.approx(1.0)
    assert lr_at(c, 50, 0.5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(c, 100, 1.0) == pytest.approx(0.1)
    lin = TrainConfig(max_steps=10, lr=2.0, schedule="linear")
    assert lr_at(lin, 5, 0.25) == pytest.approx(1.5)
    assert lr_at(TrainConfig(epochs=1, schedule="constant"), 7, 0.9) == 2e-3


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_steps_cap_the_decay_of_a_long_budget(schedule):
    """decay_steps: a budget of at most that many steps decays exactly as without it; a longer
    one follows the decay over decay_steps down to the floor, holds the floor, and ends with the
    budget's own decay once that is lower (analytic values, every step)."""
    shape = {
        "cosine": lambda p: 0.5 * (1 + math.cos(math.pi * min(p, 1.0))),
        "linear": lambda p: 1 - min(p, 1.0),
    }[schedule]
    plain = TrainConfig(max_steps=400, lr=2.0, warmup_steps=5, schedule=schedule)
    capped = TrainConfig(max_steps=400, lr=2.0, warmup_steps=5, schedule=schedule,
                         decay_steps=100, decay_floor=0.25)  # fmt: skip
    for budget in (50, 100):  # no longer than decay_steps: unchanged
        assert [lr_at(capped, s, s / budget) for s in range(budget)] == [
            lr_at(plain, s, s / budget) for s in range(budget)
        ]
    rates = [lr_at(capped, s, s / 400) for s in range(401)]
    for step in range(5, 401):
        expected = 2.0 * min(shape(step / 400), max(0.25, shape(step / 100)))
        assert rates[step] == pytest.approx(expected), step
    assert rates[100] == pytest.approx(0.5)  # the floor at decay_steps ...
    assert rates[150] == rates[200] == pytest.approx(0.5)  # ... held ...
    assert rates[400] == pytest.approx(0.0) and rates[390] < 0.5  # ... and the budget ends it
    assert all(b <= a + 1e-12 for a, b in zip(rates[5:], rates[6:], strict=False))
    assert lr_at(plain, 150, 150 / 400) > 1.0  # without the cap: still above half the peak


def test_trainer_follows_decay_steps(tmp_path):
    run = RunDir.create(tmp_path / "r", "lm")
    c = config(max_steps=40, decay_steps=10, decay_floor=0.25, lr=1e-2, log_every=1)
    Trainer(make_model(), make_task(), c, run).fit()
    lr = {r["step"]: r["lr"] for r in run.read_jsonl("metrics.jsonl") if r["split"] == "train"}
    assert lr[15] == pytest.approx(2.5e-3) and lr[25] == pytest.approx(2.5e-3)
    assert lr[40] < 1e-3  # the budget's own decay at the end


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give a budget"),
        ({"max_steps": 5, "optimizer": "adam"}, "optimizer"),
        ({"max_steps": 5, "lr": 0}, "lr"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 5, "schedule": "step"}, "schedule"),
        ({"max_steps": 5, "patience": 0}, "patience"),
        ({"max_steps": 5, "schedule_steps": 0}, "schedule_steps"),
        ({"max_steps": 5, "decay_steps": 0}, "decay_steps"),
        ({"max_steps": 5, "decay_floor": 1.5}, "decay_floor"),
        ({"max_steps": 5, "ema": 1.0}, "ema must be in"),
        ({"max_steps": 5, "ema": -0.1}, "ema must be in"),
        ({"max_steps": 5, "ema": float("nan")}, "ema must be in"),
        ({"max_steps": 5, "ema": 0.99, "optimizer": "nt-asgd"}, "choose one"),
    ],
)
def test_bad_training_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_resume_into_another_model_shape_is_a_run_dir_error(tmp_path):
    from rnnkit.errors import RunDirError

    run = RunDir.create(tmp_path / "r", task="lm")
    Trainer(make_model(), make_task(), config(max_steps=3), run).fit()
    torch.manual_seed(0)
    other = RNNLanguageModel(LMConfig(vocab_size=32, embedding_dim=8, hidden_size=12, num_layers=2))
    with pytest.raises(RunDirError, match="does not fit this model"):
        Trainer(other, make_task(), config(max_steps=6), run).fit(resume=True)


class PerValue(ScriptedValidation):
    loss_unit = "nats/value"


@pytest.mark.parametrize("unit", [None, "nats/value"])
def test_the_progress_line_says_the_tasks_loss_unit(tmp_path, unit):
    task = ScriptedValidation(make_task(), [2.0]) if unit is None else PerValue(make_task(), [2.0])
    lines = []
    run = RunDir.create(tmp_path / "u", "lm")
    Trainer(make_model(), task, config(max_steps=10), run, report=lines.append).fit()
    said = [line for line in lines if "valid loss" in line]
    assert said == [f"step 10: valid loss 2.0000 {unit or 'nats/token'} (best so far, saved)"]


@pytest.mark.parametrize(
    "module, unit",
    [("forecast", "nats/value"), ("speech", "nats/character"), ("caption", "nats/word"),
     ("lm", "nats/token"), ("translate", "nats/token")],
)  # fmt: skip
def test_each_application_names_its_loss_unit(module, unit):
    import importlib

    from rnnkit.serve.panels import loss_unit

    tasks = importlib.import_module(f"rnnkit.{module}.task")
    (cls,) = [c for n, c in vars(tasks).items() if n.endswith("Task") and isinstance(c, type)]
    assert getattr(cls, "loss_unit", "nats/token") == unit
    assert loss_unit(module) == unit  # the playground's legend, read from the torch-free recipe


def test_ema_skips_the_steps_the_fp16_grad_scaler_skips(tmp_path):
    # The fp16 path (CUDA) on the CPU: on steps 3 and 7 a gradient is made infinite, as an fp16
    # overflow makes it; the scaler skips those optimizer steps, and the average must skip them too.
    run = RunDir.create(tmp_path / "r", task="lm")
    model = make_model()
    trainer = Trainer(model, make_task(), config(max_steps=12, eval_every=0, ema=0.9), run)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1000)
    first = next(model.parameters())
    first.register_hook(lambda g: g * math.inf if trainer.step in (3, 7) else g)
    trainer.fit()
    taken = {int(s["step"]) for s in trainer.optimizer.state.values()}  # AdamW counts its steps
    assert taken == {10} and trainer.ema.updates == 10


def test_keep_last_keeps_the_latest_validated_weights_even_when_worse(tmp_path):
    task = ScriptedValidation(make_task(), [5.0, 4.0, 6.0])
    run = RunDir.create(tmp_path / "k", "lm")
    model = make_model()
    result = Trainer(model, task, config(max_steps=30, keep="last"), run).fit()
    kept, meta = run.load_tensors(BEST)
    assert meta["step"] == 30 and result.best_valid_loss == 6.0  # worse than 4.0, kept anyway
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())
    best = ScriptedValidation(make_task(), [5.0, 4.0, 6.0])
    run = RunDir.create(tmp_path / "b", "lm")
    Trainer(make_model(), best, config(max_steps=30), run).fit()
    assert run.load_tensors(BEST)[1]["step"] == 20  # the default keeps the lowest loss


def test_keep_must_be_best_or_last():
    with pytest.raises(ConfigError, match="keep must be 'best' or 'last'"):
        TrainConfig(keep="first")


def saturating(model):
    """``model`` with its first LSTM layer's input, forget and cell gates pinned open (biases
    +30; torch's gate order i, f, g, o): c_t = c_{t-1} + 1 in every unit, without bound."""
    hidden = model.config.hidden_size
    with torch.no_grad():
        model.rnn.bias_ih_l0[: 3 * hidden] = 30.0
    return model


def test_a_saturated_lstm_cell_state_is_reported_once(tmp_path):
    reports = []
    run = RunDir.create(tmp_path / "r", task="lm")
    model = saturating(make_model("lstm"))
    # a tiny rate: the weights stay, the state is saturated at all three validations (10-30)
    Trainer(model, make_task(), config(lr=1e-9), run, report=reports.append).fit()
    warnings = [line for line in reports if "warning" in line]
    assert warnings == [
        "step 10: warning: 100% of the units of LSTM layer 1 have a saturated cell state "
        "(|c| > 20, so tanh(c) = +-1 and passes no gradient); such a model learns little more "
        "than how often each token occurs. A longer --warmup-steps (500) or --layer-norm avoids "
        'it (docs/language-models.md, "A saturated LSTM")'
    ]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_healthy_run_gets_no_warning(tmp_path, cell):
    reports = []
    run = RunDir.create(tmp_path / "r", task="lm")
    Trainer(make_model(cell), make_task(), config(), run, report=reports.append).fit()
    assert [line for line in reports if "valid loss" in line] and not [
        line for line in reports if "warning" in line
    ]


def test_check_health_names_the_layer_and_its_share_of_saturated_units():
    task, model = make_task(), make_model("lstm")  # 2 layers, 4 streams, 16 units
    h, c = torch.zeros(2, 4, 16), torch.zeros(2, 4, 16)
    c[1, :, :4] = -20.5  # a quarter of layer 2's units, beyond the limit
    assert "25% of the units of LSTM layer 2" in task.check_health(model, (h, c))
    c[1, :, :4] = 19.5  # large but not saturated
    assert task.check_health(model, (h, c)) is None
    c[0, :2, :7] = 50.0  # 14 of 64 in layer 1: under a quarter
    assert task.check_health(model, (h, c)) is None
    assert task.check_health(model, None) is None
    assert task.check_health(make_model("gru"), torch.full((2, 4, 16), 50.0)) is None


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("given", [None, "cpu"])
def test_the_first_report_says_the_device_and_how_to_reach_a_present_gpu(
    tmp_path, monkeypatch, gpu, given
):
    # The Python API trains on the CPU unless told; a benchmark once ran on a GPU machine's CPU
    # twice. With no runtime on a machine with a GPU, the first line says how to use it.
    from rnnkit.training import Runtime
    from rnnkit.training.loop import fit

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    lines = []
    run = RunDir.create(tmp_path / "d", "lm")
    runtime = None if given is None else Runtime(device=given)
    fit(run, make_task(), config(max_steps=2), make_model, report=lines.append, runtime=runtime)
    first = lines[0]
    assert first.startswith("model: ") and "parameters, on cpu" in first
    assert ("Runtime(device='auto')" in first) == (gpu and given is None)
