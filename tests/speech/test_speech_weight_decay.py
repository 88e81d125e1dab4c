"""The speech recipe's weight decay (AdamW's, decoupled): on by default (0.1), applied to every
weight exactly as AdamW defines it, 0 for runs saved before it existed, bad values refused."""

import json
import math

import pytest

from rnnkit import runs
from rnnkit.cli import main
from rnnkit.errors import ConfigError
from rnnkit.speech import api
from rnnkit.speech.recipe import SpeechRecipe

# A tiny model, no dropout, a constant rate from the first step.
FIELDS = dict(hidden_size=16, num_layers=1, n_mels=16, batch_frames=1500, dropout=0.0,
              warmup_steps=0, schedule="constant", max_minutes=None, max_steps=1,
              eval_every=1)  # fmt: skip
LR = 0.01


def _one_step(out, corpus, weight_decay):
    recipe = SpeechRecipe(corpus=str(corpus), lr=LR, weight_decay=weight_decay, **FIELDS)
    api.train(out, recipe=recipe)
    weights, _ = runs.RunDir.open(out, "speech").load_tensors(runs.CHECKPOINT)
    assert json.loads((out / "trainer.json").read_text())["step"] == 1
    return {k: v.double() for k, v in weights.items() if k.startswith("model.")}


def test_one_step_shrinks_every_weight_by_lr_times_the_decay(tmp_path, tone_tsv):
    """AdamW: w1 = w0 (1 - lr wd) - lr m/(sqrt(v) + eps). Two runs of the same seed, without and
    with decay, differ by -lr wd w0; and Adam's first step is lr times the gradient's sign, so the
    w0 recovered from that difference lies lr from the undecayed run's weights."""
    decay = 0.5
    plain = _one_step(tmp_path / "plain", tone_tsv, 0.0)
    decayed = _one_step(tmp_path / "decayed", tone_tsv, decay)
    assert plain.keys() == decayed.keys() and len(plain) > 3
    for name, w1 in plain.items():
        w0 = (w1 - decayed[name]) / (LR * decay)  # the initial weights, recovered
        assert w0.abs().max() > 0.01, name  # the decay moved this weight
        step = (w0 - w1).abs()  # |Adam's first step|: lr wherever the gradient is not 0
        # |m / (sqrt(v) + eps)| = |g| / (|g| + eps) <= 1: exactly lr but where |g| is near eps
        assert float(step.max()) < LR + 1e-5, name
        assert ((step - LR).abs() < 1e-5).double().mean() > 0.95, name


def test_default_help_old_runs_and_bad_values(tmp_path, capsys):
    assert SpeechRecipe().weight_decay == 0.1
    assert SpeechRecipe().train_config().weight_decay == 0.1  # what the optimizer is given
    saved = {k: v for k, v in SpeechRecipe().to_dict().items() if k != "weight_decay"}
    assert SpeechRecipe.from_dict(saved).weight_decay == 0.0  # runs saved before the field
    assert SpeechRecipe.from_dict({**saved, "weight_decay": 0.05}).weight_decay == 0.05
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ConfigError, match="weight_decay"):
            SpeechRecipe(weight_decay=bad)
    with pytest.raises(SystemExit):
        main(["speech", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    option = text.split("--weight-decay WEIGHT_DECAY", 2)[-1].split("--", 1)[0]
    assert "decoupled weight decay" in option and "(default: 0.1)" in option
    with pytest.raises(SystemExit) as exc:
        main(["speech", "train", "--out", str(tmp_path / "r"), "--weight-decay", "-1"])
    assert exc.value.code == 2
    assert "--weight-decay" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "r").exists()
