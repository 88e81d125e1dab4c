"""The language model with MinGRU/MinLSTM layers (``--cell mingru|minlstm``)."""

import json

import pytest
import torch

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
