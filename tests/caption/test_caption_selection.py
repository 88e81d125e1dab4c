"""The caption task chooses the weights a run keeps on the CIDEr-D of greedy captions of
validation pictures (the recipe's default); runs saved before keep choosing on the loss."""

import json

import pytest
import torch

from rnnkit.caption import api
from rnnkit.caption.recipe import SELECTIONS, CaptionRecipe
from rnnkit.cli import main
from rnnkit.errors import ConfigError


def _task(captioner, **changes):
    recipe = CaptionRecipe(**{**captioner.recipe.__dict__, **changes})
    return api.build_task(recipe, api._load_splits(recipe), captioner.vocab, 0)


def test_the_selection_score_is_the_greedy_cider_d_that_evaluate_reports(tiny_run):
    """Oracle: ``evaluate`` decodes the same pictures through the API and scores them against
    the split's own words."""
    captioner = api.load(tiny_run)
    task = _task(captioner, selection_images=8)
    with torch.no_grad():
        score = task.selection_score(captioner.model.eval())
        again = task.selection_score(captioner.model)
    expected = api.evaluate(captioner, split="valid", beam_size=1, limit=8)["greedy"]["cider_d"]
    assert score.name == "CIDEr-D" and score.higher_is_better
    assert score.value == pytest.approx(expected, abs=1e-12) and again == score
    whole = _task(captioner, selection_images=1000)  # more than the split: the whole split
    with torch.no_grad():
        value = whole.selection_score(captioner.model).value
    expected = api.evaluate(captioner, split="valid", beam_size=1)["greedy"]["cider_d"]
    assert value == pytest.approx(expected, abs=1e-12)
    assert _task(captioner, selection="loss").selection_score(captioner.model) is None


def test_a_new_run_keeps_the_weights_of_its_best_validation_cider_d(tiny_run):
    summary = json.loads((tiny_run / "trainer.json").read_text())
    assert summary["selected_on"] == "CIDEr-D" and summary["best_step"] == summary["step"]
    assert json.loads((tiny_run / "config.json").read_text())["recipe"]["selection"] == "cider-d"
    _, meta = api.runs.load_tensors(tiny_run / "model.safetensors")
    assert meta["score"] == summary["best_score"] and meta["step"] == summary["best_step"]


def test_recipe_default_old_runs_and_bad_values():
    d = CaptionRecipe()
    assert (d.selection, d.selection_images) == ("cider-d", 500)
    saved = {k: v for k, v in d.__dict__.items() if k not in ("selection", "selection_images")}
    assert CaptionRecipe.from_dict(saved).selection == "loss"  # saved before: chosen on the loss
    assert CaptionRecipe.from_dict({**saved, "selection": "cider-d"}).selection == "cider-d"
    for bad in ({"selection": "bleu"}, {"selection_images": 0}, {"selection_images": 2.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            CaptionRecipe(**bad)
    assert SELECTIONS == ("cider-d", "loss")


def test_a_run_saved_before_loads_and_resumes_choosing_on_the_loss(tmp_path, recipe):
    out = tmp_path / "old"
    api.train(out, recipe=recipe(max_steps=2, selection="loss"))
    config = json.loads((out / "config.json").read_text())
    for key in ("selection", "selection_images"):  # as the runs saved before wrote it
        del config["recipe"][key]
    (out / "config.json").write_text(json.dumps(config))
    assert api.load(out).recipe.selection == "loss"
    result = api.train(out, resume=True, budget={"max_steps": 4})
    summary = json.loads((out / "trainer.json").read_text())
    assert summary["step"] == 4 and "selected_on" not in summary
    assert result.selected_on is None and result.best_valid_loss is not None


def test_train_help_and_options_show_the_selection(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["caption", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    option = text.split("--selection {cider-d,loss}", 2)[-1].split("--selection-images N", 1)[0]
    assert "CIDEr-D of greedy captions" in option and "(default: cider-d)" in option
    images = text.split("--selection-images N", 2)[-1].split("--seed SEED", 1)[0]
    assert "(default: 500)" in images
    with pytest.raises(SystemExit) as exc:
        main(["caption", "train", "--out", str(tmp_path / "r"), "--selection", "bleu"])
    assert exc.value.code == 2
