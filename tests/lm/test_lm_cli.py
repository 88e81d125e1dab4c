import json

import pytest

from rnnkit import cli

SMALL = ["--hidden", "24", "--embedding", "8", "--layers", "1", "--bptt", "16", "--batch-size", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_text_corpus):
    tmp = tmp_path_factory.mktemp("lm")
    data = write_text_corpus(tmp / "text.txt")
    out = tmp / "run"
    argv = [
        "lm",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--max-steps",
        40,
        "--eval-every",
        20,
        "--quiet",
    ]
    assert cli.main([str(a) for a in argv + SMALL + ["--lr", "0.01"]]) == 0
    return out, data


def test_train_writes_the_run_directory(trained):
    out, _ = trained
    names = {p.name for p in out.iterdir()}
    assert {
        "run.json",
        "config.json",
        "vocab.json",
        "model.safetensors",
        "last.safetensors",
    } <= names
    assert {"metrics.jsonl", "loss.png", "trainer.json"} <= names
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["hidden_size"] == 24 and config["train"]["max_steps"] == 40


def test_eval_reports_loss_perplexity_bits_per_char(trained, run_cli):
    out, _ = trained
    code, stdout, _ = run_cli("lm", "eval", out, "--split", "test", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["split"] == "test"
    assert result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    assert result["bits_per_char"] == pytest.approx(result["loss"] / 0.693147, rel=1e-4)
    assert 0 < result["loss"] < 3.0  # learned something: uniform over ~15 chars is 2.7+
    code, stdout, _ = run_cli("lm", "eval", out)
    assert "perplexity" in stdout and "bits/char" in stdout


def test_generate_streams_reproducible_samples(trained, run_cli):
    out, _ = trained
    args = ["lm", "generate", out, "--prime", "to be", "--length", 40, "--seed", 3]
    code, first, _ = run_cli(*args)
    assert code == 0 and first.startswith("to be") and len(first) == len("to be") + 40 + 1
    assert run_cli(*args)[1] == first
    for extra in (
        ["--greedy"],
        ["--beam", 3],
        ["--top-k", 3, "--top-p", 0.9, "--temperature", 0.5],
    ):
        code, text, _ = run_cli("lm", "generate", out, "--prime", "to", "--length", 20, *extra)
        assert code == 0 and text.startswith("to") and len(text) == 23


def test_prime_outside_the_vocabulary_names_the_characters(trained, run_cli):
    out, _ = trained
    code, _, err = run_cli("lm", "generate", out, "--prime", "toZ€")
    assert code == 2
    assert "outside the model's vocabulary: 'Z', '€'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_existing_run_is_not_overwritten(trained, run_cli):
    out, data = trained
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli("lm", "train", "--data", data, "--out", out, "--max-steps", 2, *SMALL)
    assert code == 2 and "--resume" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_continues_to_the_new_budget(tmp_path, run_cli, write_text_corpus):
    data = write_text_corpus(tmp_path / "text.txt")
    out = tmp_path / "run"
    base = ["--quiet", "--eval-every", 10]
    assert (
        run_cli("lm", "train", "--data", data, "--out", out, "--max-steps", 10, *SMALL, *base)[0]
        == 0
    )
    code, stdout, _ = run_cli(
        "lm", "train", "--resume", out, "--max-steps", 25, "--quiet", "--threads", 1
    )
    assert code == 0 and "25 steps" in stdout
    assert json.loads((out / "trainer.json").read_text())["step"] == 25


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"short text", "fewer than one batch window"),
        (b"\x00\x01\x02binary\x00", "binary"),
        ("caf\u00e9 ".encode("latin-1") * 200, "--encoding"),
        # was "looks like a binary file"
        (
            "caf\u00e9 ".encode("utf-16-le") * 200,
            "UTF-16 without a byte-order mark; give --encoding",
        ),
    ],
)
def test_bad_corpus_is_one_line_error_and_no_run(tmp_path, content, match, run_cli):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    code, _, err = run_cli(
        "lm",
        "train",
        "--data",
        path,
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
        "--quiet",
        *SMALL,
    )
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["latin-1", "utf-16-le", "utf-16-be"])
def test_encoding_option_reads_latin1_and_utf16(tmp_path, run_cli, kind):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 au lait\n".encode(kind) * 100)
    argv = ["lm", "train", "--data", path, "--encoding", kind, "--out", tmp_path / "run"]
    assert run_cli(*argv, "--max-steps", 2, "--quiet", *SMALL)[0] == 0
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert "\u00e9" in vocab["tokens"]


def test_directory_as_data_is_refused(tmp_path, run_cli):
    code, _, err = run_cli(
        "lm", "train", "--data", tmp_path, "--out", tmp_path / "r", "--quiet", *SMALL
    )
    assert code == 2 and "is a directory" in err


def test_run_dir_problems_are_named(trained, tmp_path, run_cli):
    out, _ = trained
    code, _, err = run_cli("lm", "eval", tmp_path / "nothing")
    assert code == 2 and "no run directory" in err
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((out / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**manifest, "task": "translate"}))
    code, _, err = run_cli("lm", "generate", other)
    assert code == 2 and "is a 'translate' run" in err
    (other / "run.json").write_text(json.dumps({**manifest, "rnnkit_version": "0.0.1"}))
    code, _, err = run_cli("lm", "eval", other)
    assert code == 2 and "rnnkit 0.0.1" in err
    (other / "run.json").write_text(json.dumps(manifest))
    code, _, err = run_cli("lm", "eval", other)
    assert code == 2 and "missing config.json, vocab.json, model.safetensors" in err


def test_nan_loss_stops_with_a_clear_message_and_keeps_checkpoint(
    tmp_path, monkeypatch, run_cli, write_text_corpus
):
    from rnnkit.lm.model import RNNLanguageModel

    real_loss, calls = RNNLanguageModel.loss, []

    def loss_turning_nan(self, inputs, targets, state=None):
        loss, state = real_loss(self, inputs, targets, state)
        if self.training:
            calls.append(1)
        return (loss * float("nan") if len(calls) > 6 else loss), state

    monkeypatch.setattr(RNNLanguageModel, "loss", loss_turning_nan)
    out = tmp_path / "run"
    argv = [
        "lm",
        "train",
        "--data",
        write_text_corpus(tmp_path / "text.txt"),
        "--out",
        out,
        "--max-steps",
        20,
    ]
    code, _, err = run_cli(*argv, "--eval-every", 5, "--quiet", *SMALL)
    assert code == 2 and err.count("\n") == 1
    assert "loss became nan at step 7" in err and "checkpoint (step 5) is kept" in err
    assert (out / "last.safetensors").exists() and (out / "model.safetensors").exists()


def test_word_level_model_maps_unknown_prime_words_to_unk(tmp_path, run_cli, write_text_corpus):
    data = write_text_corpus(tmp_path / "text.txt")
    out = tmp_path / "run"
    argv = ["lm", "train", "--data", data, "--out", out, "--level", "word", "--max-steps", 5]
    assert run_cli(*argv, "--quiet", *SMALL)[0] == 0
    code, text, err = run_cli("lm", "generate", out, "--prime", "to be zebra", "--length", 5)
    assert code == 0 and "zebra" in err and "<unk>" in err
    assert text.startswith("to be <unk>")


def test_demo_trains_briefly_then_generates(tmp_path, run_cli, write_text_corpus):
    data = write_text_corpus(tmp_path / "text.txt", n=8000)
    data.write_bytes(data.read_text().replace("\n", "\u2019\n").encode("cp1252"))
    out = tmp_path / "demo"
    argv = ["demo", "--data", data, "--minutes", 0.01, "--out", out, "--length", 30, "--quiet"]
    code, _, err = run_cli(*argv)  # (the demo had no --encoding)
    assert code == 2 and "is not valid utf-8 text" in err and not out.exists()
    code, stdout, _ = run_cli(*argv, "--encoding", "cp1252")
    assert code == 0
    assert "\u2019" in json.loads((out / "vocab.json").read_text())["tokens"]
    assert "validation loss" in stdout and "30 generated characters" in stdout
    assert (out / "model.safetensors").exists()
    assert f"rnnkit lm generate {out}" in stdout


def test_demo_picks_a_free_run_directory(tmp_path, monkeypatch):
    from rnnkit.lm.demo import free_run_dir

    monkeypatch.chdir(tmp_path)
    assert free_run_dir("runs/demo") == "runs/demo"
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    assert free_run_dir("runs/demo") == "runs/demo"  # empty: usable
    (tmp_path / "runs" / "demo" / "run.json").write_text("{}")
    assert free_run_dir("runs/demo") == "runs/demo-2"


def test_word_model_starts_from_frozen_word_vectors(tmp_path, run_cli, write_text_corpus):
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from rnnkit.data import Vocab
    from rnnkit.embed import WordVectors

    data = write_text_corpus(tmp_path / "text.txt")
    words = ["to", "be", "or", "not", "that", "is"]  # "the", "question" have no vector
    vectors = WordVectors(words, np.random.default_rng(0).standard_normal((6, 5)).astype("f4"))
    vectors.save(tmp_path / "vec.txt")
    out = tmp_path / "run"
    argv = ["lm", "train", "--data", data, "--out", out, "--level", "word", "--max-steps", 6]
    argv += ["--hidden", 16, "--layers", 1, "--bptt", 8, "--batch-size", 4, "--quiet"]
    argv += ["--embeddings", tmp_path / "vec.txt", "--freeze-embeddings", "--eval-every", 3]
    code, out_text, err = run_cli(*argv)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["embedding_dim"] == 5  # the vectors' size
    assert config["model"]["freeze_embedding"] is True
    vocab = Vocab.load(out / "vocab.json")
    embedding = load_file(out / "model.safetensors")["embedding.weight"]
    for word in words:
        expected = torch.from_numpy(vectors.vectors[vectors.index[word]])
        assert torch.equal(embedding[vocab.stoi[word]], expected), word  # loaded, then kept


@pytest.mark.parametrize("command", [["eval", "--json"], ["generate", "--length", "5"]])
def test_eval_and_generate_take_threads(trained, run_cli, capsys, command):
    import torch

    out, _ = trained
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    try:
        code, stdout, _ = run_cli("lm", command[0], out, *command[1:], "--threads", wanted)
        assert code == 0 and stdout
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        cli.main(["lm", command[0], str(out), "--threads", "0"])
    assert caught.value.code == 2 and "--threads" in capsys.readouterr().err
