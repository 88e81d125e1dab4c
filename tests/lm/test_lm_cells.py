"""The language model with MinGRU/MinLSTM layers (``--cell mingru|minlstm``) and with rnnkit.nn's
layer options (``--layer-norm``, ``--zoneout``, ``--recurrent-dropout``, ``--weight-drop``)."""

import json

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.lm.model import LMConfig, RNNLanguageModel

SMALL = ["--hidden", "16", "--embedding", "8", "--layers", "2", "--bptt", "8", "--batch-size", "2"]


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_model_learns_a_repeating_sequence(cell):
    """A few Adam steps on a period-5 token stream: the loss falls far below chance (ln 7)."""
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig(vocab_size=7, cell=cell, embedding_dim=8, hidden_size=16))
    stream = torch.tensor([1, 4, 2, 6, 3] * 8)
    inputs, targets = stream[:-1].view(-1, 1), stream[1:].view(-1, 1)  # (T, B=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(40):
        loss, _ = model.loss(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2


def test_cli_trains_and_generates_with_mingru(tmp_path, run_cli, write_text_corpus):
    data = write_text_corpus(tmp_path / "text.txt", n=600)
    out = tmp_path / "run"
    argv = ["lm", "train", "--data", data, "--out", out, "--cell", "mingru", "--max-steps", 4]
    code, _, err = run_cli(*argv, "--eval-every", 4, "--quiet", *SMALL)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["model"]["cell"] == "mingru"
    code, text, err = run_cli("lm", "generate", out, "--prime", "to", "--length", 10)
    assert code == 0, err
    assert text.startswith("to")


def test_unknown_cell_lists_the_names(tmp_path, capsys):
    from rnnkit import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["lm", "train", "--data", "x.txt", "--out", str(tmp_path / "r"), "--cell", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'x'" in err and "mingru" in err and "minlstm" in err


def test_layer_options_reach_the_layer_and_the_run(tmp_path, run_cli, write_text_corpus):
    data = write_text_corpus(tmp_path / "text.txt", n=600)
    out = tmp_path / "run"
    options = ["--cell", "lstm", "--layer-norm", "--zoneout", "0.1", "--weight-drop", "0.2"]
    argv = ["lm", "train", "--data", data, "--out", out, "--max-steps", 3, *options]
    code, _, err = run_cli(*argv, "--recurrent-dropout", "0.1", "--quiet", *SMALL)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["layer_norm"] and config["zoneout"] == 0.1 and config["weight_drop"] == 0.2
    model = RNNLanguageModel(LMConfig.from_dict({**config, "vocab_size": 5}))
    assert model.rnn.layer_norm and model.rnn.recurrent_dropout == 0.1
    assert any(n.startswith("ln_weight_c_l1") for n, _ in model.rnn.named_parameters())
    code, text, err = run_cli("lm", "generate", out, "--prime", "to", "--length", 8)
    assert code == 0, err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"zoneout": 1.5}, r"zoneout must be in \[0, 1\]"),
        ({"weight_drop": 1.0}, r"weight_drop must be in \[0, 1\)"),
        ({"cell": "mingru", "layer_norm": True}, "layer_norm apply to the rnn, lstm and gru"),
        ({"impl": "torch", "zoneout": 0.1}, "need rnnkit's kernels"),
        ({"impl": "torch", "layer_norm": True, "weight_drop": 0.2}, "^layer_norm need rnnkit's"),
    ],
)
def test_bad_layer_options_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LMConfig(vocab_size=5, **kwargs)


def test_weight_drop_runs_with_torchs_operator():
    model = RNNLanguageModel(LMConfig(vocab_size=5, impl="torch", weight_drop=0.3))
    assert model.rnn.impl == "torch" and model.rnn.weight_drop == 0.3


def test_bad_option_on_the_command_line_is_one_line(tmp_path, run_cli, write_text_corpus, capsys):
    data = write_text_corpus(tmp_path / "text.txt", n=200)
    argv = ["lm", "train", "--data", data, "--out", tmp_path / "r", "--zoneout", "2"]
    with pytest.raises(SystemExit) as caught:  # refused while parsing, with the allowed range
        run_cli(*argv)
    assert caught.value.code == 2
    assert (
        "argument --zoneout: must be a finite number >= 0 and <= 1, got 2"
        in capsys.readouterr().err
    )
    code, _, err = run_cli(*argv[:-1], "0.5", "--cell", "mingru")
    assert code == 2 and "zoneout apply to the rnn, lstm and gru cells, not mingru" in err
    assert not (tmp_path / "r").exists()
