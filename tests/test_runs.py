import json
import os

import pytest
import torch

import rnnkit
from rnnkit import runs
from rnnkit.errors import ConfigError, RunDirError
from rnnkit.runs import RunDir, load_model_weights
from rnnkit.training.state import flatten, unflatten


def test_create_writes_manifest_with_task_and_version(tmp_path):
    run = RunDir.create(tmp_path / "run", task="lm")
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["task"] == "lm"
    assert manifest["rnnkit_version"] == rnnkit.__version__
    assert RunDir.open(run.path, task="lm").path == run.path


def test_create_refuses_existing_run_non_empty_dir_and_file(tmp_path):
    run = RunDir.create(tmp_path / "run", task="lm")
    run.save_tensors(runs.CHECKPOINT, {"w": torch.zeros(1)})
    with pytest.raises(RunDirError, match="already holds a run; continue it with --resume"):
        RunDir.create(tmp_path / "run", task="lm")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="not empty"):
        RunDir.create(tmp_path / "other", task="lm")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir.create(tmp_path / "f", task="lm")


def test_open_refuses_other_task_other_version_missing_files(tmp_path):
    run = RunDir.create(tmp_path / "run", task="translate")
    with pytest.raises(RunDirError, match="is a 'translate' run, not an 'lm' run"):
        RunDir.open(run.path, task="lm")
    manifest = json.loads((run.path / "run.json").read_text())
    manifest["rnnkit_version"] = "0.0.1"
    (run.path / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="written by rnnkit 0.0.1"):
        RunDir.open(run.path, task="translate")
    good = RunDir.create(tmp_path / "good", task="lm")
    with pytest.raises(RunDirError, match="missing config.json, vocab.json"):
        RunDir.open(good.path, task="lm", require=["config.json", "vocab.json"])
    with pytest.raises(RunDirError, match="no run directory"):
        RunDir.open(tmp_path / "nowhere", task="lm")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunDirError, match="not an rnnkit run directory"):
        RunDir.open(tmp_path / "plain", task="lm")


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path / "run", task="lm")
    run.save_tensors("w.safetensors", {"a": torch.ones(3)}, {"step": 1})

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(runs, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        run.save_tensors("w.safetensors", {"a": torch.zeros(3)}, {"step": 2})
    tensors, meta = run.load_tensors("w.safetensors")
    assert torch.equal(tensors["a"], torch.ones(3)) and meta == {"step": 1}
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json", "run.lock", "w.safetensors"]


def test_optimizer_state_round_trips_through_flatten(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, skeleton = flatten(opt.state_dict(), "optimizer")
    run = RunDir.create(tmp_path / "run", task="lm")
    run.save_tensors("opt.safetensors", tensors, skeleton)
    loaded, meta = run.load_tensors("opt.safetensors")
    restored = unflatten(json.loads(json.dumps(meta)), loaded)
    assert set(restored["state"]) == {0, 1}  # int keys survive JSON
    assert restored["param_groups"][0]["betas"] == (0.8, 0.9)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(restored)
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_flatten_refuses_objects_it_cannot_store():
    with pytest.raises(TypeError, match="cannot store a object"):
        flatten({"x": object()}, "p")


def test_tied_weights_save_and_load(tmp_path):
    emb = torch.nn.Embedding(5, 4)
    model = torch.nn.Sequential(emb, torch.nn.Linear(4, 5))
    model[1].weight = emb.weight
    run = RunDir.create(tmp_path / "run", task="lm")
    run.save_tensors("model.safetensors", model.state_dict())
    other = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5))
    other[1].weight = other[0].weight
    load_model_weights(run, other)
    assert torch.equal(other[0].weight, emb.weight)
    wrong = torch.nn.Sequential(torch.nn.Embedding(6, 4), torch.nn.Linear(4, 5))
    with pytest.raises(RunDirError, match="does not fit the model"):
        load_model_weights(run, wrong)


# ------------------------------------------------------------------ one format for every task


def fake_trained_run(path, task, config):
    """A run directory of ``task`` with ``config`` and placeholder vocabulary/weights files."""
    run = RunDir.create(path, task)
    run.write_json(runs.CONFIG, config)
    run.write_json(runs.VOCAB, {})
    run.save_tensors(runs.BEST, {"w": torch.zeros(1)})
    return run


def load_lm(path):
    from rnnkit import lm

    return lm.load(path)


def load_translate(path):
    from rnnkit import translate

    return translate.load(path)


@pytest.mark.parametrize(("task", "load"), [("lm", load_lm), ("translate", load_translate)])
def test_damaged_config_is_the_same_one_line_error_for_every_task(tmp_path, task, load):
    run = fake_trained_run(tmp_path / "no_model", task, {"recipe": {}, "train": {}})
    with pytest.raises(RunDirError) as missing:
        load(run.path)
    assert str(missing.value) == (
        f"{run.file('config.json')} is damaged (no 'model' section); "
        "train a new run or restore the file"
    )
    run = fake_trained_run(tmp_path / "bad_model", task, {"recipe": {}, "train": {}, "model": {}})
    with pytest.raises(RunDirError, match=r"config.json is damaged \(section 'model': "):
        load(run.path)
    (run.path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match=r"config.json is damaged \(not valid JSON\)"):
        load(run.path)


def test_resume_may_change_the_budget_only(tmp_path):
    run = runs.start(tmp_path / "r", "lm", recipe={}, model={}, train={"max_steps": 10, "lr": 1.0})
    run.save_tensors(runs.CHECKPOINT, {"w": torch.zeros(1)})
    assert runs.RESUMABLE == {"epochs", "max_steps", "max_minutes"}
    _, config = runs.resume(run.path, "lm", {"max_steps": 20, "epochs": None})
    assert config["train"] == {"max_steps": 20, "lr": 1.0}
    assert json.loads(run.file("config.json").read_text())["train"]["max_steps"] == 10  # unwritten
    with pytest.raises(ConfigError, match="only the budget .* may change, not --lr, --seed"):
        runs.resume(run.path, "lm", {"lr": 0.1, "seed": 3, "max_steps": 20})


def test_resume_needs_a_checkpoint(tmp_path):
    run = runs.start(tmp_path / "r", "lm", recipe={}, model={}, train={})
    with pytest.raises(RunDirError, match="never wrote a checkpoint.* again with --out"):
        runs.resume(run.path, "lm")


# ---------------------------------------------------------------------------------------------
# Reliability: the lock, unstarted runs, torn metrics, temporary files (docs/reliability.md)


def test_a_second_process_gets_one_line_naming_the_lock_holder(tmp_path):
    import subprocess
    import sys

    run = RunDir.create(tmp_path / "r", task="lm")
    run.save_tensors(runs.CHECKPOINT, {"w": torch.zeros(1)})
    run.write_config({"recipe": {}, "model": {}, "train": {}})
    run.unlock()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rnnkit import runs; "
         f"run, _ = runs.resume({str(run.path)!r}, 'lm'); print('locked', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            RunDirError, match=f"in use by another rnnkit process \\(pid {holder.pid}\\)"
        ):
            runs.resume(run.path, "lm")
        with pytest.raises(RunDirError, match="already holds a run"):
            RunDir.create(run.path, "lm")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # The holder has exited: its lock file stays, stale, and is taken over.
    assert (run.path / runs.LOCK).read_text().strip() == str(holder.pid)
    resumed, _ = runs.resume(run.path, "lm")
    assert (run.path / runs.LOCK).read_text().strip() == str(os.getpid())
    resumed.unlock()


def test_out_reuses_a_run_that_never_wrote_a_checkpoint(tmp_path):
    first = runs.start(tmp_path / "r", "lm", recipe={"a": 1}, model={}, train={})
    first.write_json(runs.SUMMARY, {"status": "running"})
    (first.path / ".last.safetensors.x1.tmp").write_bytes(b"half")  # a killed write
    first.unlock()
    again = runs.start(tmp_path / "r", "lm", recipe={"a": 2}, model={}, train={})
    assert again.read_config()["recipe"] == {"a": 2}
    assert sorted(p.name for p in again.path.iterdir()) == ["config.json", "run.json", "run.lock"]
    # ... but not one that holds files of the user's.
    again.unlock()
    (again.path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="never started and other files \\(notes.txt\\)"):
        runs.start(tmp_path / "r", "lm", recipe={}, model={}, train={})
    assert (again.path / "notes.txt").read_text() == "mine"


def test_torn_last_metrics_line_is_dropped_and_other_damage_named(tmp_path, caplog):
    run = RunDir.create(tmp_path / "r", task="lm")
    run.append_jsonl(runs.METRICS, {"step": 1, "loss": 2.0})
    with open(run.file(runs.METRICS), "a") as handle:
        handle.write('{"step": 2, "lo')  # what a kill or a full disk leaves
    assert run.read_jsonl(runs.METRICS) == [{"step": 1, "loss": 2.0}]
    assert "torn last line" in caplog.text and "metrics.jsonl" in caplog.text
    run.file(runs.METRICS).write_text('{"step": 1}\ngarbage\n{"step": 3}\n')
    with pytest.raises(RunDirError, match="metrics.jsonl, line 2: damaged record"):
        run.read_jsonl(runs.METRICS)


def test_temporary_files_of_a_killed_checkpoint_write_go_at_the_next_start(tmp_path):
    run = runs.start(tmp_path / "r", "lm", recipe={}, model={}, train={})
    run.save_tensors(runs.CHECKPOINT, {"w": torch.zeros(1)})
    run.unlock()
    stale = run.path / ".last.safetensors.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)
    resumed, _ = runs.resume(run.path, "lm")
    assert not stale.exists()
    resumed.unlock()


def test_a_truncated_weights_file_says_it_is_damaged_and_what_to_do(tmp_path):
    path = tmp_path / "model.safetensors"
    runs.save_tensors_atomic(path, {"w": torch.ones(64, 64)})
    path.write_bytes(path.read_bytes()[:1000])  # a copy cut short
    # It used to pass on safetensors' own words only ("incomplete metadata, file not fully ...").
    with pytest.raises(RunDirError, match=r"model\.safetensors: the file is damaged or truncated"):
        runs.load_tensors(path)


def test_a_file_is_named_a_file_not_a_missing_run_directory(tmp_path):
    (tmp_path / "wide.csv").write_text("a,b\n")
    for task, made_by in [("lm", "`rnnkit lm train --out`"), (None, "`train --out`")]:
        with pytest.raises(RunDirError) as err:
            RunDir.open(tmp_path / "wide.csv", task=task)
        assert str(err.value) == (
            f"{tmp_path / 'wide.csv'} is a file, not a run directory; "
            f"give the directory {made_by} wrote"
        )


@pytest.mark.parametrize(
    "name, said",
    [("lm", "an 'lm'"), ("embed", "an 'embed'"), ("translate", "a 'translate'"),
     ("speech", "a 'speech'"), ("forecast", "a 'forecast'"), ("caption", "a 'caption'")],
)  # fmt: skip
def test_task_names_take_the_article_they_are_said_with(name, said):
    assert runs.a_task(name) == said
