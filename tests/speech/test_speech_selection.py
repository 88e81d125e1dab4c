"""``--selection wer``: the speech trainer keeps the weights with the lowest greedy WER on
validation utterances; the default and runs saved before keep the lowest CTC loss."""

import json

import pytest
import torch
from speech_tones import write_tone_corpus

from rnnkit import runs
from rnnkit.cli import main
from rnnkit.errors import ConfigError
from rnnkit.speech import api
from rnnkit.speech import data as speech_data
from rnnkit.speech.data import Example
from rnnkit.speech.metrics import wer
from rnnkit.speech.recipe import SELECTIONS, SpeechRecipe
from rnnkit.speech.task import SpeechTask

# TINY as recipe fields, a constant rate: a run's weights at step k do not depend on its budget.
FIELDS = dict(hidden_size=24, num_layers=1, n_mels=16, batch_frames=1500, dropout=0.0,
              warmup_steps=5, lr=0.01, schedule="constant", max_minutes=None)  # fmt: skip


def _examples(asr, items):
    return speech_data.featurize(items, asr.alphabet, asr.features, stats=asr.stats)


def _task(asr, items, selection):
    examples = _examples(asr, items)
    return SpeechTask({"train": examples, "valid": examples}, batch_frames=1500, seed=0,
                      augment=None, selection=selection, alphabet=asr.alphabet)  # fmt: skip


def _greedy_wer(asr, items):
    """The evaluation's path: each file read, segmented, decoded greedily and stitched."""
    texts = [t.text for t in asr.transcribe([i.path for i in items], beam=1)]
    return wer([i.text for i in items], texts)


def test_the_score_is_the_greedy_wer_that_evaluate_reports(trained, tone_tsv):
    asr = api.load(trained)
    items = speech_data.user_corpus(str(tone_tsv))
    valid = items["valid"]
    task = _task(asr, valid, _examples(asr, valid))
    with torch.no_grad():
        score = task.selection_score(asr.model)
    expected = api.evaluate(trained, split="valid", beam=1)["greedy"]["wer"]
    assert (score.name, score.higher_is_better) == ("WER", False)
    assert score.value == pytest.approx(expected, abs=1e-12)
    # Weights that make mistakes, on more utterances (several to a batch, of mixed lengths).
    torch.manual_seed(1)
    with torch.no_grad():
        for p in asr.model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    train = items["train"]
    noisy = _task(asr, train, _examples(asr, train))
    with torch.no_grad():
        value = noisy.selection_score(asr.model).value
        again = noisy.selection_score(asr.model).value
    assert value == again and 0.0 < value == pytest.approx(_greedy_wer(asr, train), abs=1e-12)
    assert _task(asr, train, None).selection_score(asr.model) is None


def test_wer_keeps_the_step_of_the_best_wer_not_of_the_lowest_loss(tmp_path, monkeypatch):
    """Constructed: the selection's references are what a run's weights at step 30 say (most
    of them wrong; the loss still reads the true transcripts), so step 30 (or an earlier one as
    good) has WER 0 and is kept, while the loss goes on falling."""
    tsv = write_tone_corpus(tmp_path / "tones", n=120)
    first = tmp_path / "first"
    api.train(first, recipe=SpeechRecipe(corpus=str(tsv), max_steps=30, eval_every=30, **FIELDS))
    asr = api.load(first)  # its only validated weights: those of step 30
    assert runs.load_tensors(first / runs.BEST)[1]["step"] == 30
    valid = speech_data.user_corpus(str(tsv))["valid"]
    said = [t.text for t in asr.transcribe([i.path for i in valid])]
    assert len(valid) >= 4

    class Scripted(SpeechTask):
        def __init__(self, *args, selection, **kwargs):
            assert [e.text for e in selection] == [i.text for i in valid]
            selection = [Example(e.feats, e.labels, t) for e, t in zip(selection, said)]
            super().__init__(*args, selection=selection, **kwargs)

    monkeypatch.setattr(api, "SpeechTask", Scripted)
    out = tmp_path / "second"
    recipe = SpeechRecipe(corpus=str(tsv), max_steps=160, eval_every=10, selection="wer", **FIELDS)
    result = api.train(out, recipe=recipe)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid_records = [r for r in records if r["split"] == "valid"]
    scores = {r["step"]: r["score"] for r in valid_records}
    losses = {r["step"]: r["loss"] for r in valid_records}
    assert scores[30] == 0.0 and scores[160] > 0.0  # the same weights as the first run's
    best = min(scores, key=lambda s: (scores[s], s))  # the first of the lowest
    lowest_loss = min(losses, key=losses.get)
    summary = json.loads((out / "trainer.json").read_text())
    assert summary["selected_on"] == "WER" and summary["best_step"] == best <= 30
    assert result.best_step == best and result.best_score == 0.0
    assert lowest_loss > best  # the loss would have kept a later step
    _, meta = runs.load_tensors(out / runs.BEST)
    assert (meta["step"], meta["score"]) == (best, 0.0)


def test_recipe_default_old_runs_and_bad_values():
    d = SpeechRecipe()
    assert (d.selection, d.selection_utterances) == ("last", 1000)
    assert SELECTIONS == ("loss", "wer", "last")
    saved = {k: v for k, v in d.to_dict().items() if not k.startswith("selection")}
    assert SpeechRecipe.from_dict(saved).selection == "loss"
    assert SpeechRecipe.from_dict({**saved, "selection": "wer"}).selection == "wer"
    for bad in ({"selection": "cer"}, {"selection_utterances": 0},
                {"selection_utterances": 2.5}, {"selection_utterances": True}):  # fmt: skip
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SpeechRecipe(**bad)


def test_a_run_saved_before_loads_and_resumes_choosing_on_the_loss(tmp_path, tone_tsv):
    out = tmp_path / "old"
    api.train(out, recipe=SpeechRecipe(corpus=str(tone_tsv), max_steps=2, eval_every=1, **FIELDS))
    config = json.loads((out / "config.json").read_text())
    for key in ("selection", "selection_utterances"):  # as the runs saved before wrote it
        del config["recipe"][key]
    (out / "config.json").write_text(json.dumps(config))
    assert SpeechRecipe.from_dict(api.load(out).config["recipe"]).selection == "loss"
    result = api.train(out, resume=True, budget={"max_steps": 4})
    summary = json.loads((out / "trainer.json").read_text())
    assert summary["step"] == 4 and "selected_on" not in summary
    assert result.selected_on is None and result.best_valid_loss is not None


def test_a_synthesized_corpus_reads_more_validation_utterances_for_the_selection(monkeypatch):
    asked = {}

    def fake_corpus(recipe, **kwargs):
        asked["valid"] = recipe.valid_utterances
        raise ConfigError("stop here")

    monkeypatch.setattr(api, "corpus", fake_corpus)
    for selection, expected in (("loss", 200), ("wer", 1000)):
        with pytest.raises(ConfigError, match="stop here"):
            api.train("unused", recipe=SpeechRecipe(selection=selection))
        assert asked["valid"] == expected


def test_train_help_shows_the_defaults_and_bad_values_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["speech", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    option = text.split("--selection {loss,wer,last}", 2)[-1]
    option = option.split("--selection-utterances N", 1)[0]
    assert "greedy WER" in option and "(default: last)" in option
    count = text.split("--selection-utterances N", 2)[-1].split("--epochs", 1)[0]
    assert "(default: 1000)" in count
    for bad in (["--selection", "cer"], ["--selection-utterances", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(["speech", "train", "--out", str(tmp_path / "r"), *bad])
        assert exc.value.code == 2
        assert "--selection" in capsys.readouterr().err.splitlines()[-1]


def test_the_default_keeps_the_last_weights_even_when_validation_got_worse(tmp_path, tone_tsv):
    out = tmp_path / "last"
    api.train(out, recipe=SpeechRecipe(corpus=str(tone_tsv), max_steps=6, eval_every=2, **FIELDS))
    valid = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in valid if r["split"] == "valid"]
    run = runs.RunDir.open(out, "speech")
    kept, meta = run.load_tensors(runs.BEST)
    last, _ = run.load_tensors(runs.CHECKPOINT)
    assert meta["step"] == 6 and [r["step"] for r in valid][-1] == 6
    assert all(torch.equal(v, last[f"model.{k}"]) for k, v in kept.items())
    lowest = min(valid, key=lambda r: r["loss"])["step"]
    loss_run = tmp_path / "loss"  # the same run choosing by the loss keeps the lowest one
    api.train(loss_run, recipe=SpeechRecipe(corpus=str(tone_tsv), max_steps=6, eval_every=2,
                                            selection="loss", **FIELDS))  # fmt: skip
    assert runs.RunDir.open(loss_run, "speech").load_tensors(runs.BEST)[1]["step"] == lowest


def test_selection_last_keeps_the_last_weights_through_the_trainer():
    from rnnkit import cli
    from rnnkit.speech.cli import recipe_from_args

    args = cli.build_parser().parse_args(["speech", "train", "--out", "R", "--selection", "loss"])
    recipe = recipe_from_args(args)
    assert recipe.selection == "loss" and recipe.train_config().keep == "best"
    assert SpeechRecipe().train_config().keep == "last"  # the default
    assert SpeechRecipe(selection="wer").train_config().keep == "best"
