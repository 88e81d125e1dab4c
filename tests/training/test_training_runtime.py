"""``--device`` and ``--precision`` on every command that trains, evaluates or decodes: one
definition (``rnnkit.options.add_runtime_arguments``), checked before any run or data is read,
and carried to the model (its device and autocast: ``rnnkit.training.distributed.place``)."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.training.distributed import Group

COMMANDS = [
    ("lm", "train", "--out", "{new}"),
    ("lm", "eval", "{run}"),
    ("lm", "generate", "{run}"),
    ("lm", "finetune", "{run}", "--out", "{new}"),
    ("translate", "train", "--data", "{run}/pairs.tsv", "--out", "{new}"),
    ("translate", "run", "{run}", "hello"),
    ("translate", "eval", "{run}"),
    ("speech", "train", "--out", "{new}"),
    ("speech", "transcribe", "{run}", "{run}/a.wav"),
    ("speech", "eval", "{run}"),
    ("caption", "train", "--out", "{new}"),
    ("caption", "describe", "{run}", "{run}/a.png"),
    ("caption", "eval", "{run}"),
    ("forecast", "train", "--data", "{run}/series.csv", "--out", "{new}"),
    ("forecast", "predict", "{run}"),
    ("forecast", "backtest", "{run}"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_device_this_machine_lacks_is_one_line_before_anything_is_read(
    tmp_path, run_cli, command
):
    wanted, message = "cuda", "--device cuda: this torch"
    if torch.cuda.is_available():  # a GPU machine: ask for the device it lacks instead
        wanted, message = "mps", "--device mps"
    argv = [a.format(run=tmp_path / "missing", new=tmp_path / "new") for a in command]
    code, _, err = run_cli(*argv, "--device", wanted)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new").exists()


def series_csv(path, steps=240):
    """An hourly daily cycle."""
    rows = [f"2024-01-{1 + t // 24:02d} {t % 24:02d}:00,{10 + 3 * math.sin(t * math.pi / 12):.4f}"
            for t in range(steps)]  # fmt: skip
    path.write_text("\n".join(["time,value", *rows]) + "\n")
    return path


@pytest.fixture
def precisions(monkeypatch) -> list[tuple[str, str]]:
    """The (device, precision) of every autocast a command enters."""
    seen, original = [], Group.autocast

    def recording(self):
        seen.append((self.device.type, self.runtime.precision))
        return original(self)

    monkeypatch.setattr(Group, "autocast", recording)
    return seen


def test_the_precision_reaches_the_forecasting_model(tmp_path, run_cli, precisions):
    data, run = series_csv(tmp_path / "s.csv"), tmp_path / "r"
    small = ["--hidden", 8, "--layers", 1, "--context", 24, "--horizon", 6, "--lags", "1,2"]
    code, _, err = run_cli("forecast", "train", "--data", data, "--out", run, "--max-steps", 2,
                           *small, "--batch-size", 8, "--quiet", "--threads", 1)  # fmt: skip
    assert code == 0, err
    precisions.clear()
    for command in (["predict"], ["backtest"]):
        code, out, err = run_cli("forecast", *command, run, "--samples", 8, "--json",
                                 "--device", "cpu", "--precision", "bf16")  # fmt: skip
        assert code == 0 and out.strip(), err
        assert precisions and set(precisions) == {("cpu", "bf16")}
        precisions.clear()


def test_the_precision_reaches_the_language_model(tmp_path, run_cli, write_text_corpus,
                                                  precisions):  # fmt: skip
    corpus, run = write_text_corpus(tmp_path / "c.txt", n=600), tmp_path / "r"
    code, _, err = run_cli("lm", "train", "--data", corpus, "--out", run, "--max-steps", 2,
                           "--hidden", 8, "--layers", 1, "--embedding", 4, "--bptt", 8,
                           "--batch-size", 4, "--quiet", "--threads", 1)  # fmt: skip
    assert code == 0, err
    precisions.clear()
    code, out, err = run_cli("lm", "generate", run, "--length", 5, "--seed", 1, "--precision",
                             "bf16", "--device", "cpu")  # fmt: skip
    assert code == 0 and out.strip(), err
    assert set(precisions) == {("cpu", "bf16")}


def test_more_processes_than_training_examples_is_one_line_naming_the_limit():
    from rnnkit.errors import ConfigError
    from rnnkit.training.distributed import check_world

    check_world(3, 3, "training pairs")  # as many ranks as examples: each gets one
    message = r"^4 processes but only 3 training pairs; use at most 3$"
    with pytest.raises(ConfigError, match=message):
        check_world(4, 3, "training pairs")


def test_an_unknown_gradient_sync_is_refused_naming_the_choices():
    from rnnkit.errors import ConfigError
    from rnnkit.training import Runtime

    with pytest.raises(ConfigError, match="gradient_sync must be one of auto, ddp"):
        Runtime(gradient_sync="nccl")


def test_adamw_takes_the_fused_kernel_on_the_cpu_with_the_same_updates():
    """make_optimizer's AdamW is the fused one wherever it can be (one device, floating point),
    and its updates are torch's reference AdamW's up to rounding (float64)."""
    from rnnkit.training import TrainConfig
    from rnnkit.training.optim import fusable, make_optimizer

    torch.manual_seed(0)
    model = torch.nn.GRU(3, 4, 2).double()
    config = TrainConfig(lr=1e-2, weight_decay=0.1, max_steps=5)
    optimizer = make_optimizer(model, config)
    assert optimizer.param_groups[0]["fused"] is True
    twin = [p.detach().clone().requires_grad_() for p in model.parameters()]
    model_start = {id(p): p.detach().clone() for p in model.parameters()}
    reference = torch.optim.AdamW(twin, lr=1e-2, betas=config.betas, weight_decay=0.1)
    for _ in range(5):
        for p, q in zip(model.parameters(), twin, strict=True):
            q.grad = torch.randn_like(q)
            p.grad = q.grad.clone()
        optimizer.step()
        reference.step()
    for p, q in zip(model.parameters(), twin, strict=True):
        assert torch.allclose(p.detach(), q.detach(), rtol=1e-13, atol=1e-15)
        assert not torch.equal(p.detach(), model_start[id(p)])  # (they did move)
    assert not fusable([torch.nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)])
    assert not fusable([])
