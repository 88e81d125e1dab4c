"""``rnnkit caption``: train, describe, eval end to end; bad input -> one line and exit 2."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.caption import scenes
from rnnkit.cli import main

TINY_ARGS = (
    "--scenes 48 12 12 --image-size 32 --hidden 32 --embedding 16 --batch-size 16 "
    "--max-length 12 --warmup-steps 0 --eval-every 0 --quiet"
).split()


def _error(capsys, argv):
    """Run ``argv``; it must fail with exit 2 and one line on stderr. Returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("pics") / "scene.png"
    Image.fromarray(scenes.generate("test", 1, size=64).images[0]).save(path)
    return path


def test_train_describe_eval(tmp_path, capsys, scene_png):
    out = tmp_path / "cap"
    assert main(["caption", "train", "--out", str(out), "--max-steps", "3", *TINY_ARGS]) == 0
    assert "done: 3 steps" in capsys.readouterr().out
    for name in ("run.json", "config.json", "vocab.json", "model.safetensors", "last.safetensors"):
        assert (out / name).is_file()
    stored = json.loads((out / "config.json").read_text())["recipe"]
    assert stored["consensus_references"] == 40.0  # the synthetic scenes: resolved and saved

    assert main(["caption", "describe", str(out), str(scene_png), "--beam", "3", "--n-best", "2",
                 "--rerank", "none", "--json", "--attention", str(tmp_path / "att.png")
                 ]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["image"] == str(scene_png) and len(result["captions"]) == 2
    first, second = result["captions"]
    assert first["log_prob"] >= second["log_prob"]
    with Image.open(tmp_path / "att.png") as figure:  # one panel per word and the end, + image
        assert figure.width >= 200 * min(6, len(first["text"].split()) + 2) * 0.9

    assert main(["caption", "eval", str(out), "--split", "test", "--beam", "2", "--json",
                 "--rerank", "mbr", "--length-penalty", "gnmt", "--alpha", "0.5"]) == 0  # fmt: skip
    scores = json.loads(capsys.readouterr().out)
    assert scores["images"] == 12 and scores["beam_size"] == 2
    for name in ("greedy", "beam"):
        assert len(scores[name]["bleu"]) == 4 and scores[name]["cider_d"] >= 0
        assert set(scores[name]["subsets"]) <= {"one object", "relations"}
        if "relations" in scores[name]["subsets"]:  # how often a true relation is stated
            assert 0 <= scores[name]["subsets"]["relations"]["relation_right"] <= 1
        ground = scores[name]["grounding"]  # None when no generated word names an object
        assert ground["words"] == 0 or 0 <= ground["chance"] <= 1
    assert main(["caption", "eval", str(out), "--beam", "1", "--limit", "4"]) == 0
    text = capsys.readouterr().out
    assert "4 images" in text and "CIDEr-D" in text and "greedy" in text and "beam" not in text


def test_bad_pictures_are_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    for name, message in (
        ("text.png", "not an image"),
        ("empty.png", "empty"),
        ("cut.png", "damaged or truncated"),
        ("missing.png", "no such image file"),
    ):
        err = _error(
            capsys, ["caption", "describe", str(tiny_run), str(good), str(tmp_path / name)]
        )
        assert message in err and name in err
    # --attention never replaces an input picture, or a file rnnkit did not draw.
    before = good.read_bytes()
    argv = ["caption", "describe", str(tiny_run), str(good), "--attention"]
    assert "also an input" in _error(capsys, [*argv, str(good), "--force"])
    assert "not an rnnkit image" in _error(capsys, [*argv, str(good).replace("good", "text")])
    assert good.read_bytes() == before


def test_a_run_of_another_task_is_refused(tmp_path, capsys, scene_png):
    from rnnkit.runs import RunDir

    RunDir.create(tmp_path / "lm-run", "lm")
    err = _error(capsys, ["caption", "describe", str(tmp_path / "lm-run"), str(scene_png)])
    assert "'lm' run, not a 'caption' run" in err
    err = _error(capsys, ["caption", "eval", str(tmp_path / "nothing")])
    assert "no run directory" in err


def test_training_into_an_existing_run_loses_nothing(tiny_run, capsys):
    before = {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()}
    err = _error(
        capsys, ["caption", "train", "--out", str(tiny_run), "--max-steps", "1", *TINY_ARGS]
    )
    assert "already holds a run" in err
    assert {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()} == before


def test_bad_caption_files_name_file_and_line(tmp_path, capsys):
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    (tmp_path / "caps.tsv").write_text("a.png\ta cat\nb.png\ta dog\n")
    argv = ["caption", "train", "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_ARGS]
    err = _error(capsys, [*argv, "--data", str(tmp_path / "caps.tsv")])
    assert "caps.tsv:2: image b.png not found" in err
    assert not (tmp_path / "run").exists()  # nothing created before the data was read
    (tmp_path / "caps.tsv").write_text("a.png\t...\n")
    assert "caps.tsv:1: the caption is empty" in _error(
        capsys, [*argv, "--data", str(tmp_path / "caps.tsv")]
    )
    (tmp_path / "coco.json").write_text(json.dumps({"annotations": []}))
    assert "Karpathy split layout" in _error(capsys, [*argv, "--data", str(tmp_path / "coco.json")])
    assert "no such caption file" in _error(capsys, [*argv, "--data", str(tmp_path / "none.tsv")])


def test_bad_options_are_one_line(tiny_run, capsys, scene_png):
    err = _error(capsys, ["caption", "describe", str(tiny_run), str(scene_png), "--n-best", "3"])
    assert "n-best must be between 1 and the beam size" in err
    err = _error(capsys, ["caption", "train", "--out", "x", "--encoder", "resnet", *TINY_ARGS])
    assert "encoder='resnet'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "x", "--hidden", "0"], "--hidden: must be an integer >= 1, got 0"),
        (["train", "--out", "x", "--image-size", "50"], "must be a multiple of 8 from 32 to 1024"),
        (["train", "--out", "x", "--dropout", "1.5"], "--dropout: must be a finite number >= 0"),
        (["train", "--out", "x", "--lr", "nan"], "--lr: must be a finite number > 0, got nan"),
        (["train", "--out", "x", "--scenes", "5", "0", "5"], "--scenes: must be an integer >= 1"),
        (["train", "--out", "x", "--max-length", "1"], "--max-length: must be an integer from 2"),
        (["train", "--out", "x", "--glimpses", "5"], "--glimpses: must be an integer from 1 to 4"),
        (["train", "--out", "x", "--glimpse-positions", "all"], "--glimpse-positions: invalid"),
        (["train", "--out", "x", "--word-dropout", "1"], "--word-dropout: must be a finite number"),
        (
            ["train", "--out", "x", "--consensus-references", "-1"],
            "--consensus-references: must be a finite number >= 0 and <= 100, got -1",
        ),
        (
            ["train", "--out", "x", "--scheduled-sampling", "-0.1"],
            "--scheduled-sampling: must be a finite number >= 0 and <= 0.99, got -0.1",
        ),
        (
            ["train", "--out", "x", "--warmup-steps", "-1"],
            "--warmup-steps: must be an integer >= 0",
        ),
        (["describe", "r", "p.png", "--beam", "0"], "--beam: must be an integer from 1 to 100000"),
        (["describe", "r", "p.png", "--n-best", "-1"], "--n-best: must be an integer from 1"),
        (["eval", "r", "--limit", "0"], "--limit: must be an integer >= 1, got 0"),
        (["eval", "r", "--rerank", "bleu"], "--rerank: invalid choice: 'bleu'"),
    ],
)
def test_numeric_options_are_checked_when_parsing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main(["caption", *argv])
    assert refused.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_a_model_without_attention_says_so_when_asked_for_the_figure(tmp_path, capsys, scene_png):
    out = tmp_path / "mean"
    assert main(["caption", "train", "--out", str(out), "--decoder", "mean", "--max-steps", "1",
                 *TINY_ARGS]) == 0  # fmt: skip
    capsys.readouterr()
    err = _error(capsys, ["caption", "describe", str(out), str(scene_png), "--attention", "a.png"])
    assert "no attention" in err


def test_resume_continues_to_the_same_weights(tmp_path, recipe):
    from safetensors.torch import load_file

    from rnnkit.caption.api import train

    straight, split = tmp_path / "straight", tmp_path / "split"
    train(straight, recipe=recipe(max_steps=4, schedule="constant"))
    train(split, recipe=recipe(max_steps=2, schedule="constant"))
    assert main(["caption", "train", "--resume", str(split), "--max-steps", "4", "--quiet"]) == 0
    a, b = load_file(straight / "last.safetensors"), load_file(split / "last.safetensors")
    weights = [k for k in a if k.startswith("model.")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)
    assert json.loads((split / "trainer.json").read_text())["step"] == 4


def test_a_baseline_run_saved_before_resumes_with_the_draw_it_trained_with(
    tmp_path, recipe, monkeypatch
):
    """A new mean-pooling run draws consensus-weighted references like the attention decoder and
    says so in config.json; one saved before (no such key, k = 40 recorded) drew uniformly and
    resumes so, with the beam ranked by consensus as it was."""
    from rnnkit.caption import api
    from rnnkit.caption.recipe import DRAWN_FOR_EVERY_DECODER

    drawn_with = []

    class Spy(api.CaptionTask):
        def __init__(self, *args, **kwargs):
            drawn_with.append(kwargs["consensus_references"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(api, "CaptionTask", Spy)
    out = tmp_path / "mean"
    api.train(out, recipe=recipe(decoder="mean", max_steps=1))
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"][DRAWN_FOR_EVERY_DECODER] is True
    assert api.load(out).recipe.consensus_k() == 40.0
    del config["recipe"][DRAWN_FOR_EVERY_DECODER]  # as the runs saved before wrote it
    (out / "config.json").write_text(json.dumps(config))
    assert api.load(out).recipe.consensus_k() == 0.0
    api.train(out, resume=True, budget={"max_steps": 2})
    assert drawn_with == [40.0, 0.0]
    assert json.loads((out / "trainer.json").read_text())["step"] == 2


def test_train_help_shows_the_recipe_defaults(capsys):
    from rnnkit.caption.recipe import CaptionRecipe

    with pytest.raises(SystemExit):
        main(["caption", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    d = CaptionRecipe()
    for option, value in (("--hidden", d.hidden_size), ("--lr", d.lr), ("--decoder", d.decoder)):
        assert f"(default: {value})" in text.split(option, 2)[-1].split("--", 1)[0]
    draw = text.split("--consensus-references K", 2)[-1].split(" --", 1)[0]
    assert draw.strip().startswith("every decoder:") and "(default: 40 on synth-scenes" in draw


def test_train_and_eval_on_a_tsv_of_ones_own_pictures(tmp_path, capsys):
    rows = []
    for i in range(8):
        Image.new("RGB", (30 + i, 20), (30 * i, 100, 0)).save(tmp_path / f"p{i}.jpg")
        rows += [f"p{i}.jpg\tA green field, number {i}.", f"p{i}.jpg\tgrass"]
    (tmp_path / "caps.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    argv = ["caption", "train", "--out", str(out), "--data", str(tmp_path / "caps.tsv")]
    assert main([*argv, "--max-steps", "2", *TINY_ARGS]) == 0
    stored = json.loads((out / "config.json").read_text())["recipe"]
    assert stored["consensus_references"] == 0.0  # a user's captions: drawn uniformly
    assert main(["caption", "eval", str(out), "--json", "--beam", "1"]) == 0
    scores = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert scores["images"] == 1 and "subsets" not in scores["greedy"]
    assert "grounding" not in scores["greedy"] and len(scores["greedy"]["bleu"]) == 4


@pytest.mark.parametrize(
    ("kind", "stem", "advice"),
    [
        ("cp1252", "\u2019p\u2019", "is not valid utf-8 text (line 1, byte"),
        ("utf-16-le", "caf\u00e9 ", "looks like UTF-16 without a byte-order mark; give --encoding"),
    ],
)
def test_train_reads_a_caption_tsv_in_the_encoding_given(tmp_path, capsys, kind, stem, advice):
    # caption train had no --encoding: such a file had to be saved as UTF-8.
    rows = []
    for i in range(8):
        Image.new("RGB", (30 + i, 20), (30 * i, 100, 0)).save(tmp_path / f"{stem}{i}.jpg")
        rows += [f"{stem}{i}.jpg\tA green field, number {i}.", f"{stem}{i}.jpg\tgrass"]
    (tmp_path / "caps.tsv").write_bytes(("\n".join(rows) + "\n").encode(kind))
    out = tmp_path / "run"
    argv = ["caption", "train", "--out", str(out), "--data", str(tmp_path / "caps.tsv")]
    argv += ["--max-steps", "1", *TINY_ARGS]
    assert advice in _error(capsys, argv) and not out.exists()
    assert main([*argv, "--encoding", kind]) == 0
    assert json.loads((out / "config.json").read_text())["recipe"]["encoding"] == kind
    # eval reads the run's caption file in the encoding it was trained with
    assert main(["caption", "eval", str(out), "--json", "--beam", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["images"] == 1
