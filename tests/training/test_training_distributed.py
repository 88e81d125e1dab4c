"""Data-parallel training with 2 CPU processes (gloo on loopback), against one process.

One torchrun launch runs every scenario of ``ddp_worker.py`` on both ranks; the same scenarios
run here in one process as the reference. float64 models: parity to 1e-9.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.errors import ConfigError, RunDirError
from rnnkit.runs import RunDir
from rnnkit.training import Runtime, TrainConfig, Trainer
from rnnkit.training.distributed import Group

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"
# A hang (uneven data, a lost rank) fails here instead of blocking CI; generous, since a launch
# of all scenarios takes about a minute on 2 free cores and many times that on a shared machine
# (a collective that waits for a lost rank fails after the worker's own 60 s anyway).
LAUNCH_TIMEOUT_S = 600


def torchrun(*args: str, timeout: float = LAUNCH_TIMEOUT_S, **kw) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 ARGS``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(the 2-rank scenarios' folder, the 1-process reference folder)."""
    two = tmp_path_factory.mktemp("two")
    done = torchrun(str(WORKER), str(two))
    assert done.returncode == 0, done.stderr[-3000:]
    one = tmp_path_factory.mktemp("one")
    ddp_worker.run_all(one, Group(Runtime(device="cpu")))
    return two, one


def weights(folder: Path, tag: str) -> dict[str, torch.Tensor]:
    return load_file(folder / f"{tag}.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def digests(folder: Path, tag: str) -> list[str]:
    return json.loads((folder / f"{tag}.json").read_text())["digests"]


APPLICATIONS = ["translate", "speech", "caption", "forecast"]


# lm_gru_ddp: the lm_gru scenario with DistributedDataParallel averaging the gradients
REFERENCE = {"lm_gru_ddp": "lm_gru"}


@pytest.mark.parametrize("name", ["lm_rnn", "lm_lstm", "lm_gru", "lm_gru_ddp", *APPLICATIONS])
def test_two_processes_train_the_same_model_as_one(runs, name):
    two, one = runs
    reference = weights(one, f"{REFERENCE.get(name, name)}.rank0")
    for rank in (0, 1):
        assert max_difference(weights(two, f"{name}.rank{rank}"), reference) < 1e-9
    # The logged losses are the global batch's (and validation the single-process number).
    records = RunDir(two / name, "x").read_jsonl("metrics.jsonl")
    expected = RunDir(one / REFERENCE.get(name, name), "x").read_jsonl("metrics.jsonl")
    assert [(r["step"], r["split"]) for r in records] == [(r["step"], r["split"]) for r in expected]
    for got, want in zip(records, expected, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-9)


@pytest.mark.parametrize(
    "name", ["lm_rnn", "lm_lstm", "lm_gru", "lm_gru_ddp", *APPLICATIONS, "resume_straight"]
)
def test_ranks_hold_identical_weights_after_every_step(runs, name):
    two, _ = runs
    steps = digests(two, f"{name}.rank0")
    expected = {"translate": 8, "resume_straight": 6, **ddp_worker.APP_STEPS}
    assert len(steps) == expected.get(name, ddp_worker.LM_STEPS)
    assert steps == digests(two, f"{name}.rank1")


@pytest.mark.parametrize("name", ["lm_broken", "lm_broken_ddp"])
def test_a_broken_allreduce_fails_parity(runs, name):
    """The average replaced by nothing (the shared-memory one, or DDP's all-reduce by a no-op
    hook): each rank keeps its own gradients, and it shows."""
    two, one = runs
    reference = weights(one, "lm_gru.rank0")
    for rank in (0, 1):
        assert max_difference(weights(two, f"{name}.rank{rank}"), reference) > 1e-4
    assert digests(two, f"{name}.rank0")[0] != digests(two, f"{name}.rank1")[0]


def wrapper(folder: Path, tag: str) -> str:
    return json.loads((folder / f"{tag}.json").read_text())["wrapper"]


def test_cpu_ranks_on_one_machine_average_through_shared_memory_unless_told_ddp(runs):
    two, one = runs
    for name in ("lm_gru", "speech", "caption", "resume_straight"):
        for rank in (0, 1):
            assert wrapper(two, f"{name}.rank{rank}") == "SharedMemoryDataParallel"
    assert wrapper(two, "lm_gru_ddp.rank0") == "DistributedDataParallel"
    assert wrapper(one, "lm_gru.rank0") == "TaskStep"  # alone: nothing to average


def test_shared_memory_average_is_the_mean_over_ranks_and_leaves_no_file(runs):
    """Set gradients (ddp_worker.gradient_cases): ``a`` on both ranks, ``b`` on rank 0 only
    (rank 1 counts zeros, as DDP with unused weights does), ``c`` on none (stays None); two
    calls, so both alternating regions are used."""
    two, _ = runs
    records = [json.loads((two / f"gradients.rank{r}.json").read_text()) for r in (0, 1)]
    for call, got in enumerate(zip(records[0]["results"], records[1]["results"], strict=True)):
        base = 10.0 * (call + 1)  # rank 0's; rank 1's is base + 1
        a = [[base + 0.5] * 3 for _ in range(2)]
        a[0][0] = (base * base + (base + 1) ** 2) / 2
        for ranked in got:
            assert ranked == {"a": a, "b": [base / 2] * 4, "c": None}
    assert records[0]["path"] == records[1]["path"]
    assert "rnnkit-gradients-" in records[0]["path"]
    assert not records[0]["exists"] and not records[1]["exists"]


def test_uneven_last_batch_trains_every_pair_without_a_hang(runs):
    """21 pairs in batches of 4: the 6th batch has one pair for two ranks (the fixture's launch
    finished within its timeout, and the run crossed that batch: 8 steps of a 6-batch epoch)."""
    task, _ = ddp_worker.translation_setup(runs[1] / "pairs.tsv")
    sizes = [len(b) for b in task._batches("train", epoch=0)]
    assert sorted(sizes) == [1, 4, 4, 4, 4, 4]
    task.shard(1, 2)
    assert [bool(b.counted) for b in task.train_batches(0, 0)].count(False) == 1


@pytest.mark.parametrize("setup", ["speech_setup", "caption_setup"])
def test_a_rank_left_without_an_example_trains_on_a_stand_in_that_counts_nothing(setup):
    """The parity runs crossed these batches (speech: the 40-frame utterance alone; caption:
    the 13th image), so the stand-in's zero weight is what kept them equal."""
    task, _ = getattr(ddp_worker, setup)()
    task.shard(1, 2)
    assert [b.counted for b in task.train_batches(0, 0)].count(False) == 1


def test_sigterm_to_one_rank_stops_both_and_resume_continues_exactly(runs):
    two, _ = runs
    for rank in (0, 1):
        stopped = json.loads((two / f"resume.rank{rank}.json").read_text())
        assert stopped["status"] == "interrupted"
        assert len(stopped["digests"]) == 4  # asked after step 3; all ranks stop after step 4
        resumed = weights(two, f"resume.resumed.rank{rank}")
        straight = weights(two, f"resume_straight.rank{rank}")
        assert all(torch.equal(resumed[k], straight[k]) for k in straight)  # dropout included
    assert json.loads((two / "resume" / "trainer.json").read_text())["status"] == "finished"


def test_resume_with_another_number_of_processes_is_refused(runs):
    two, _ = runs
    run = RunDir.open(two / "resume", "lm")
    config = TrainConfig(max_steps=8, eval_every=2, seed=3)
    trainer = Trainer(ddp_worker.lm_model("lstm", 0.3), ddp_worker.lm_task(), config, run)
    with pytest.raises(RunDirError, match="trained by 2 process.*resume it with 2"):
        trainer.fit(resume=True)


def test_nproc_launch_equals_one_process(tmp_path, write_text_corpus, run_cli):
    """The real command, float32: `rnnkit lm train --nproc 2` (torch's elastic launcher) and
    `rnnkit lm train`; only rank 0 prints."""
    corpus = write_text_corpus(tmp_path / "c.txt", n=3000)
    args = ["lm", "train", "--data", corpus, "--cell", "gru", "--hidden", "12", "--layers", "1",
            "--embedding", "6", "--bptt", "8", "--batch-size", "4", "--max-steps", "5",
            "--eval-every", "5", "--warmup-steps", "0", "--quiet", "--threads", "1"]  # fmt: skip
    code, _, err = run_cli(*args, "--out", tmp_path / "one")
    assert code == 0, err
    command = [sys.executable, "-m", "rnnkit", *map(str, args), "--out", str(tmp_path / "two"),
               "--nproc", "2"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done:") == 1
    a = weights(tmp_path / "one", "model")
    assert max_difference(weights(tmp_path / "two", "model"), a) < 1e-5


def test_world_size_that_does_not_split_the_batch_names_the_nearest_sizes(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, _, err = run_cli("lm", "train", "--out", tmp_path / "r", "--batch-size", "32")
    assert code == 2
    assert "--batch-size 32 (the global batch) does not split evenly over 3 processes" in err
    assert "use --batch-size 30 or 33, or 2 or 4 processes" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--device", "cuda"], "--device cuda: this torch"),
        (["--precision", "fp16", "--device", "cpu"], "--precision fp16 needs a GPU"),
        (["--nproc", "0"], "--nproc must be >= 1"),
        (["--nproc", "3"], "does not split evenly over 3 processes"),
    ],
)
def test_bad_runtime_options_are_one_line_before_anything_is_made(tmp_path, run_cli, option,
                                                                   message):  # fmt: skip
    if option[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        option = ["--device", "mps"]  # a GPU machine: ask for the device it lacks instead
        message = "--device mps"
    code, _, err = run_cli("lm", "train", "--out", tmp_path / "r", *option)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_busy_rendezvous_port_is_one_line(tmp_path, run_cli):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_cli("lm", "train", "--out", tmp_path / "r", "--nproc", "2",
                               "--batch-size", "4", "--port", port)  # fmt: skip
    assert code == 2 and f"port {port} is in use" in err
    assert not (tmp_path / "r").exists()


def test_several_processes_need_a_task_that_can_shard():
    class Unshardable:
        name = "toy"

        def steps_per_epoch(self):
            return 1

    group = Group(Runtime(device="cpu"), rank=0, world_size=2)
    with pytest.raises(ConfigError, match="toy task cannot train in several processes"):
        Trainer(torch.nn.Linear(2, 2), Unshardable(), TrainConfig(max_steps=1), None, group=group)


def test_bf16_autocast_on_the_cpu_trains_float32_weights():
    """--precision bf16: the forward runs under autocast (the loss differs from fp32's by
    rounding only), the weights and their optimizer stay float32."""
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = ddp_worker.lm_model("gru").float()
        group = Group(Runtime(device="cpu", precision=precision))
        config = TrainConfig(max_steps=3, eval_every=0, lr=1e-2)
        trainer = Trainer(model, ddp_worker.lm_task(), config, _NoRun(), group=group)
        batches = list(ddp_worker.lm_task().train_batches(0, 0))[:3]
        losses[precision] = [trainer._train_step(batch)[0] for batch in batches]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses["bf16"] != losses["fp32"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)


class _NoRun:
    """A run directory that is never written (the steps above neither log nor checkpoint)."""

    path = Path("unused")


@pytest.mark.parametrize(
    "data, message",
    [("short.csv", "fewer than context + horizon"), ("missing.csv", "no such file")],
)
def test_an_error_every_rank_meets_after_the_launch_is_printed_once(tmp_path, data, message):
    """Bad data found by both workers once they read it (a missing file: first rank 0, then the
    others, as the cache rule has it; a series too short for its windows: all at once): one
    line (rank 0's; rank 1 learns through the launch's store that it is the same), exit 2."""
    rows = [f"2024-01-01 {h:02d}:00,{h}" for h in range(20)]
    (tmp_path / "short.csv").write_text("\n".join(["time,value", *rows]) + "\n")
    command = [sys.executable, "-m", "rnnkit", "forecast", "train", "--data",
               str(tmp_path / data), "--out", str(tmp_path / "r"), "--context", "24",
               "--horizon", "6", "--threads", "1", "--nproc", "2"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("rnnkit: error:") == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_a_rank_is_silent_only_about_the_line_rank_zero_prints(monkeypatch):
    """The launch's store (as torchrun's agent hosts it): rank 0 posts what it prints; rank 1
    prints a line of its own, and after waiting in vain for rank 0, its line anyway."""
    import torch.distributed as dist

    from rnnkit.training.distributed import reported_by_rank_zero

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": "2",
           "TORCHELASTIC_USE_AGENT_STORE": "True", "LOCAL_RANK": "0", "RANK": "1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not reported_by_rank_zero("rnnkit: error: bad data", wait_s=0.5)  # nothing posted
    assert reported_by_rank_zero("rnnkit: terminated", echo=False)  # rank 0's to say
    monkeypatch.setenv("RANK", "0")
    assert not reported_by_rank_zero("rnnkit: error: bad data")  # rank 0 prints, and posts
    monkeypatch.setenv("RANK", "1")
    assert reported_by_rank_zero("rnnkit: error: bad data")
    assert not reported_by_rank_zero("rnnkit: error: local rank 1 has no GPU", wait_s=0.5)
