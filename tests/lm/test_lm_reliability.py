"""What survives a signal, a bad option, a damaged run or a closed pipe (docs/reliability.md),
through the ``lm`` commands (the run-directory and training machinery every application shares)."""

import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from rnnkit import cli

SMALL = ["--hidden", "16", "--embedding", "8", "--layers", "1", "--bptt", "8", "--batch-size", "2"]
RNNKIT = [sys.executable, "-c", "import sys; from rnnkit.cli import main; sys.exit(main())"]


def train_argv(data, out, *extra):
    return ["lm", "train", "--data", data, "--out", out, "--quiet", *SMALL, *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, write_text_corpus):
    return write_text_corpus(tmp_path_factory.mktemp("lmrel") / "text.txt", n=1500)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("lmrun") / "run"
    assert (
        cli.main([str(a) for a in train_argv(corpus, out, "--max-steps", 6, "--eval-every", 3)])
        == 0
    )
    return out


def copy_run(src, dst):
    dst.mkdir()
    for path in src.iterdir():
        if path.is_file() and path.name != "run.lock":
            (dst / path.name).write_bytes(path.read_bytes())
    return dst


class Stop(KeyboardInterrupt):
    """SIGINT at a chosen moment (the CLI turns KeyboardInterrupt into exit 130)."""


STAGES = {
    "after the manifest": "rnnkit.runs.RunDir.write_config",
    "after config.json": "rnnkit.data.tokenize.Vocab.save",
    "before the first step": "rnnkit.training.loop.Trainer._train_step",
    "during the first checkpoint": "rnnkit.training.loop.save_training_state",
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_signal_at_every_stage_leaves_no_run_or_a_resumable_one(
    stage, tmp_path, corpus, run_cli, monkeypatch
):
    import importlib

    target = STAGES[stage]
    module_name, _, attr = target.rpartition(".")
    try:
        owner = importlib.import_module(module_name)
    except ModuleNotFoundError:
        module_name, _, cls_name = module_name.rpartition(".")
        owner = getattr(importlib.import_module(module_name), cls_name)

    def interrupt(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(owner, attr, interrupt)
    out = tmp_path / "run"
    code, _, err = run_cli(*train_argv(corpus, out, "--max-steps", 4, "--eval-every", 2))
    assert code == 130 and "interrupted" in err
    monkeypatch.undo()
    # --out takes the directory again (it never got a checkpoint) and the run completes.
    code, _, err = run_cli(*train_argv(corpus, out, "--max-steps", 4, "--eval-every", 2))
    assert code == 0, err
    assert json.loads((out / "trainer.json").read_text())["status"] == "finished"


def test_options_are_checked_before_anything_exists(tmp_path, corpus, run_cli, capsys):
    out = tmp_path / "run"
    refused_by_parser = [
        ["--bptt", "0"], ["--weight-decay", "-1"], ["--lr", "inf"], ["--lr", "nan"],
        ["--seed", str(2**64)], ["--threads", "-1"], ["--warmup-steps", "-1"],
        ["--embedding", "0"], ["--hidden", "0"], ["--dropout", "2"], ["--max-steps", "0"],
    ]  # fmt: skip
    for options in refused_by_parser:
        with pytest.raises(SystemExit) as caught:
            cli.main([str(a) for a in train_argv(corpus, out, "--max-steps", 2, *options)])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "must be" in err and options[0] in err, (options, err)
        assert not out.exists()
    code, _, err = run_cli(*train_argv(corpus, out, "--max-steps", 2, "--hidden", "100000",
                                       "--embedding", "100000"))  # fmt: skip
    assert code == 2 and "needs about" in err and "GiB of memory" in err and "--hidden" in err
    assert err.count("\n") == 1 and not out.exists()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run_cli("lm", "train", "--data", fifo, "--out", out, "--max-steps", 2)
    assert code == 2 and "FIFO" in err and not out.exists()
    code, _, err = run_cli("lm", "train", "--data", "/dev/zero", "--out", out, "--max-steps", 2)
    assert code == 2 and "not a regular file" in err and not out.exists()


def test_resume_changes_only_the_budget_and_a_failed_resume_writes_nothing(
    tmp_path, trained, corpus, run_cli
):
    run = copy_run(trained, tmp_path / "run")
    before = (run / "config.json").read_bytes()
    for options in (["--hidden", "32"], ["--lr", "0.5"], ["--cell", "lstm"], ["--data", "x.txt"]):
        code, _, err = run_cli("lm", "train", "--resume", run, *options, "--max-steps", 9)
        assert code == 2, options
        assert f"not {options[0]}" in err and "only the budget" in err
    assert (run / "config.json").read_bytes() == before
    # A resume that fails after the options were accepted (a damaged checkpoint) writes nothing.
    (run / "last.safetensors").write_bytes(b"not a checkpoint")
    code, _, err = run_cli("lm", "train", "--resume", run, "--max-steps", 9)
    assert code == 2 and "last.safetensors" in err
    assert (run / "config.json").read_bytes() == before
    # A good resume records its new budget.
    run2 = copy_run(trained, tmp_path / "run2")
    code, _, err = run_cli("lm", "train", "--resume", run2, "--max-steps", 8, "--quiet")
    assert code == 0, err
    assert json.loads((run2 / "config.json").read_text())["train"]["max_steps"] == 8


def test_the_schedule_spans_the_budget_across_a_resume(tmp_path, corpus, run_cli, capsys):
    """Documented in --help: a new budget on resume stretches the schedule to it."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--eval-every", 0, "--warmup-steps", 0, "--schedule", "cosine"]
    assert run_cli(*train_argv(corpus, straight, "--max-steps", 8, *common))[0] == 0
    assert run_cli(*train_argv(corpus, split, "--max-steps", 4, *common))[0] == 0
    assert run_cli("lm", "train", "--resume", split, "--max-steps", 8, "--quiet")[0] == 0
    a, b = (load_file(d / "last.safetensors") for d in (straight, split))
    assert not torch.equal(a["model.decoder.weight"], b["model.decoder.weight"])
    with pytest.raises(SystemExit):
        run_cli("lm", "train", "--help")
    assert "is not the same as N steps straight" in " ".join(capsys.readouterr().out.split())


def damage(run, what):
    if what == "config without model":
        config = json.loads((run / "config.json").read_text())
        del config["model"]
        (run / "config.json").write_text(json.dumps(config))
    elif what == "NaN weights":
        tensors = load_file(run / "model.safetensors")
        tensors["decoder.weight"][0, 0] = math.nan
        save_file(tensors, run / "model.safetensors")
    elif what == "short vocab":
        vocab = json.loads((run / "vocab.json").read_text())
        vocab["tokens"] = vocab["tokens"][:-1] if "tokens" in vocab else vocab["itos"][:-1]
        (run / "vocab.json").write_text(json.dumps(vocab))


@pytest.mark.parametrize(
    "what, message",
    [
        ("config without model", "no 'model' section"),
        ("NaN weights", "NaN or infinite"),
        ("short vocab", "vocab.json is damaged: it has"),
    ],
)
def test_damaged_run_files_are_one_line(tmp_path, trained, run_cli, what, message):
    run = copy_run(trained, tmp_path / "run")
    damage(run, what)
    code, _, err = run_cli("lm", "generate", run, "--length", 5)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_checkpoint_with_a_wrong_shape_hidden_state_is_one_line(tmp_path, trained, run_cli):
    run = copy_run(trained, tmp_path / "run")
    from safetensors import safe_open

    with safe_open(str(run / "last.safetensors"), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(run / "last.safetensors")
    carry = [k for k in tensors if k.startswith("carry")]
    assert carry
    for key in carry:
        tensors[key] = torch.zeros(1, 3, 5)
    save_file(tensors, run / "last.safetensors", metadata=meta)
    code, _, err = run_cli("lm", "train", "--resume", run, "--max-steps", 9, "--quiet")
    assert code == 2 and "hidden state has shape" in err and err.count("\n") == 1, err


def test_nan_at_the_first_validation_is_the_nan_message(tmp_path, corpus, run_cli):
    out = tmp_path / "run"
    code, _, err = run_cli(*train_argv(
        corpus, out, "--lr", "1e35", "--clip", "0", "--schedule", "constant",
        "--warmup-steps", "0", "--eval-every", "1", "--max-steps", "5",
    ))  # fmt: skip
    assert "Traceback" not in err and "format" not in err
    assert code == 2 and "non-finite" in err or "became nan" in err, err
    assert err.count("\n") == 1


def test_generate_caps_beam_and_length_and_refuses_bad_values(trained, run_cli, capsys):
    refused = [["--beam", "0"], ["--beam", "-2"], ["--beam", "1000000"],
               ["--temperature", "inf"], ["--temperature", "0"], ["--length", "-1"]]  # fmt: skip
    for options in refused:
        with pytest.raises(SystemExit):
            cli.main(["lm", "generate", str(trained), *options])
        assert "must be" in capsys.readouterr().err
    code, _, err = run_cli("lm", "generate", trained, "--length", 10**15)
    assert code == 2 and "needs about" in err and "--length" in err


def test_generate_caps_the_beam_by_the_memory_the_model_needs(trained, run_cli, monkeypatch):
    from rnnkit import limits

    monkeypatch.setattr(limits, "physical_memory", lambda: 10**6)
    code, _, err = run_cli("lm", "generate", trained, "--beam", 100_000, "--length", 5)
    widest = int(re.search(r"widest beam that fits is ([\d,]+)", err)[1].replace(",", ""))
    assert code == 2 and "decoder state" in err and err.count("\n") == 1 and 1 < widest < 10**4
    assert run_cli("lm", "generate", trained, "--beam", widest, "--length", 5)[0] == 0
    code, _, err = run_cli("lm", "generate", trained, "--beam", widest + 1, "--length", 5)
    assert code == 2 and f"--beam {widest} or less" in err


def run_shell(command, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)  # fmt: skip


def test_closed_pipe_exits_quietly_and_a_full_device_is_one_line(tmp_path, trained):
    rnnkit = " ".join(f"'{a}'" for a in RNNKIT)
    done = run_shell(
        f"{rnnkit} lm generate '{trained}' --length 20000 | head -c 20 >/dev/null; "
        "echo status ${PIPESTATUS[0]} >&2",
        tmp_path,
    )
    assert "status 141" in done.stderr or "status 0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
    done = run_shell(f"{rnnkit} lm generate '{trained}' --length 50 > /dev/full", tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "rnnkit: error: cannot write the output: No space left on device"
    ]


def test_late_checks_of_demo_and_reference_come_first(tmp_path, run_cli, capsys):
    for argv in (["demo", "--length", "-5"], ["reference", "train", "--temperature", "0"],
                 ["reference", "train", "--sample-length", "-1"]):  # fmt: skip
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert "must be" in capsys.readouterr().err
    text = tmp_path / "latin.txt"
    text.write_bytes("caf\xe9 au lait, ".encode("latin-1") * 40)
    code, out, err = run_cli("reference", "train", "--data", text, "--encoding", "latin-1",
                             "--prime", "XYZ", "--steps", 5)  # fmt: skip
    assert code == 2 and "--prime has characters" in err and "step" not in out
    code, _, err = run_cli("reference", "train", "--data", text, "--steps", "2")
    assert code == 2 and "--encoding" in err
    code, out, err = run_cli("reference", "train", "--data", text, "--encoding", "latin-1",
                             "--steps", "2", "--hidden", "8", "--sample-length", "5")  # fmt: skip
    assert code == 0, err


def test_kill_9_during_the_first_checkpoint_leaves_a_directory_out_takes_again(
    tmp_path, corpus, run_cli
):
    out = tmp_path / "run"
    argv = [str(a) for a in train_argv(corpus, out, "--max-steps", 4, "--eval-every", 2)]
    script = (
        "import os, signal, sys\n"
        "import rnnkit.training.loop as loop\n"
        "from rnnkit.cli import main\n"
        "def die(*a, **k):\n"
        "    (a[0].path / '.last.safetensors.kill.tmp').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "loop.save_training_state = die\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert (out / "run.json").exists() and not (out / "last.safetensors").exists()
    code, _, err = run_cli("lm", "train", "--resume", out, "--max-steps", 4)
    assert code == 2 and "never wrote a checkpoint" in err and f"--out {out}" in err
    code, _, err = run_cli(*train_argv(corpus, out, "--max-steps", 4, "--eval-every", 2))
    assert code == 0, err
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
