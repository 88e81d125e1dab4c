import json

import pytest
import torch

import rnnkit
from rnnkit import runs
from rnnkit.errors import RunDirError
from rnnkit.runs import RunDir, load_model_weights
from rnnkit.training.state import flatten, unflatten


def test_create_writes_manifest_with_task_and_version(tmp_path):
    run = RunDir.create(tmp_path / "run", task="lm")
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["task"] == "lm"
    assert manifest["rnnkit_version"] == rnnkit.__version__
    assert RunDir.open(run.path, task="lm").path == run.path


def test_create_refuses_existing_run_non_empty_dir_and_file(tmp_path):
    RunDir.create(tmp_path / "run", task="lm")
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
    with pytest.raises(RunDirError, match="is a 'translate' run, not a 'lm' run"):
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
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json", "w.safetensors"]


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
