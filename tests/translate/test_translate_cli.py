import io
import json
import random

import pytest
import torch

from rnnkit.data.tokenize import Vocab
from rnnkit.runs import RunDir
from rnnkit.translate import TranslateRecipe, Translator
from rnnkit.translate.data import SPECIALS, bucketed_batches
from rnnkit.translate.model import Seq2Seq, Seq2SeqConfig

WORDS = ["red", "green", "blue", "cat", "dog", "big", "small", "file", "open", "read"]  # conftest's
TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--quiet", "--min-freq", "1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, write_parallel_corpus):
    from rnnkit import cli

    root = tmp_path_factory.mktemp("translate")
    corpus = write_parallel_corpus(root / "pairs.tsv")
    out = root / "run"
    code = cli.main(
        ["translate", "train", "--data", str(corpus), "--out", str(out), "--max-steps", "6"] + TINY
    )
    assert code == 0
    return out


def test_train_writes_a_complete_run(trained_run):
    for name in ("run.json", "config.json", "vocab.json", "model.safetensors", "metrics.jsonl"):
        assert (trained_run / name).is_file(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"]["attention"] == "additive"
    assert config["model"]["input_feeding"] is False
    assert config["model"]["hidden_size"] == 16
    assert set(config) >= {"recipe", "model", "train"}  # the schema of every run
    assert config["recipe"]["label_smoothing"] == 0.1


def test_run_translates_arguments_and_stdin(trained_run, run_cli, monkeypatch):
    code, out, _ = run_cli("translate", "run", trained_run, "red cat", "dog %d")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("red cat\n\nblue dog\n"))
    code, out, _ = run_cli("translate", "run", trained_run, "--beam", "3", "--n-best", "2")
    assert code == 0
    blocks = out.split("\n\n")
    assert len(blocks[0].splitlines()) == 2  # two ranked candidates for the first line
    rank, score, _ = blocks[0].splitlines()[0].split("\t")
    assert rank == "1" and float(score) <= 0.0


def test_run_accepts_texts_after_options(trained_run, run_cli):
    code, before, _ = run_cli("translate", "run", trained_run, "red cat")
    assert code == 0
    code, out, _ = run_cli("translate", "run", trained_run, "--beam", "1", "red", "cat")
    assert code == 0
    assert len(out.splitlines()) == 2  # "red" and "cat" are two texts, both translated
    assert run_cli("translate", "run", trained_run, "--beam", "1", "red cat")[1] == before
    with pytest.raises(SystemExit):
        run_cli("translate", "eval", trained_run, "stray")


def test_eval_json_has_scores(trained_run, run_cli):
    code, out, _ = run_cli("translate", "eval", trained_run, "--beam", "2", "--json")
    assert code == 0
    scores = json.loads(out)
    assert scores["split"] == "test" and scores["beam_size"] == 2 and scores["sentences"] > 0
    assert 0.0 <= scores["bleu"] <= 100.0 and 0.0 <= scores["chrf"] <= 100.0
    assert scores["placeholders_kept_reference"] == 1.0  # every reference keeps its %d
    code, out, _ = run_cli("translate", "eval", trained_run, "--split", "valid")
    assert code == 0
    assert out.startswith("valid: ") and "BLEU  " in out and "chrF  " in out


def test_attention_writes_a_png(trained_run, tmp_path, run_cli):
    png = tmp_path / "attention.png"
    code, out, _ = run_cli("translate", "attention", trained_run, "red cat dog", "--out", png)
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in out


def test_resume_continues_the_run(tmp_path, run_cli, write_parallel_corpus):
    corpus = write_parallel_corpus(tmp_path / "pairs.tsv", n=200)
    out = tmp_path / "run"
    first = ["--data", corpus, "--out", out, "--max-steps", "2", "--attention", "none"]
    assert run_cli("translate", "train", *first, *TINY)[0] == 0
    assert run_cli("translate", "train", "--resume", out, "--max-steps", "4", "--quiet")[0] == 0
    summary = json.loads((out / "trainer.json").read_text())
    assert summary["step"] == 4
    err = error_line(run_cli, "translate", "attention", out, "red", "--out", "x.png")
    assert "trained with --attention none" in err


def error_line(run_cli, *argv):
    code, _, err = run_cli(*argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: ")
    return err


def test_bad_corpus_is_a_one_line_error(tmp_path, run_cli):
    missing = tmp_path / "missing.tsv"
    err = error_line(run_cli, "translate", "train", "--data", missing, "--out", "x")
    assert "does not exist" in err
    empty = tmp_path / "empty.po"
    empty.write_text("")
    err = error_line(run_cli, "translate", "train", "--data", empty, "--out", "x")
    assert "holds no translated sentence pairs" in err
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\tun\ntwo deux\n")
    err = error_line(run_cli, "translate", "train", "--data", bad, "--out", "x")
    assert "bad.tsv:2:" in err
    assert not (tmp_path / "x").exists()


def test_unknown_source_and_foreign_run_dir_are_one_line_errors(trained_run, tmp_path, run_cli):
    err = error_line(run_cli, "translate", "run", trained_run, "zzz qqq")
    assert "no token of 'zzz qqq' is in the model's source vocabulary" in err
    RunDir.create(tmp_path / "lm_run", task="lm")
    err = error_line(run_cli, "translate", "eval", tmp_path / "lm_run")
    assert "is an 'lm' run, not a 'translate' run" in err
    err = error_line(run_cli, "translate", "run", tmp_path / "nothing", "red")
    assert "no run directory" in err


def test_bucketed_batches_cover_everything_once_and_group_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(1000)]
    batches = bucketed_batches(lengths, 10, seed=3, epoch=1)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(1000))
    assert batches == bucketed_batches(lengths, 10, seed=3, epoch=1)
    assert batches != bucketed_batches(lengths, 10, seed=3, epoch=2)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 5  # random batches of 10 would spread about 40


def test_unknown_outputs_are_replaced_by_the_most_attended_source_token():
    torch.manual_seed(0)
    source = Vocab(["alpha", "beta", "gamma"], specials=SPECIALS)
    target = Vocab(["x"], specials=SPECIALS)
    model = Seq2Seq(Seq2SeqConfig(len(source), len(target), embedding_dim=8, hidden_size=8))
    with torch.no_grad():
        model.output.bias[target.unk_index] = 100.0  # always write <unk>
    translator = Translator(model, source, target, TranslateRecipe(max_len=3))
    text = "alpha gamma beta"
    plain = translator.translate([text], replace_unknown=False)[0][0]
    assert set(plain.tokens) == {"<unk>"}
    replaced = translator.translate([text])[0][0]
    src, lengths = translator.encode([text])
    ids = torch.tensor([[target.bos_index] + [target.unk_index] * (len(plain.tokens) - 1)])
    weights = model.align(src, lengths, ids)[0]
    expected = [text.split()[int(w.argmax())] for w in weights]
    assert replaced.tokens == expected


def test_pretrained_frozen_source_embeddings_are_loaded_and_kept(
    tmp_path, run_cli, write_parallel_corpus
):
    import numpy as np
    from safetensors.torch import load_file

    from rnnkit.embed import WordVectors

    corpus = write_parallel_corpus(tmp_path / "pairs.tsv", n=200)
    rng = np.random.default_rng(0)
    vectors = WordVectors(WORDS, rng.standard_normal((len(WORDS), 6)).astype(np.float32))
    vectors.save(tmp_path / "vec.txt")
    out = tmp_path / "run"
    args = ["translate", "train", "--data", corpus, "--out", out, "--max-steps", "4"]
    args += ["--embeddings", tmp_path / "vec.txt", "--freeze-embeddings"]
    args += ["--hidden-size", "16", "--min-freq", "1"]
    code, _, progress = run_cli(*args)  # progress lines (not --quiet) go to stderr
    assert code == 0
    assert "source embeddings from word vectors (frozen): 10 of" in progress
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["embedding_dim"] == 6  # taken from the vectors
    assert config["model"]["freeze_src_embedding"] is True
    assert config["model"]["freeze_tgt_embedding"] is False
    vocab = Vocab.from_dict(json.loads((out / "vocab.json").read_text())["source"])
    weights = load_file(out / "model.safetensors")
    for word in ("red", "file", "open"):
        row = weights["src_embedding.weight"][vocab.stoi[word]]
        assert torch.allclose(row, torch.from_numpy(vectors.vectors[vectors.index[word]]))


# ---------------------------------------------------------------------------------------------
# Reliability (docs/reliability.md)


def test_run_translates_the_good_lines_and_reports_the_bad_one(trained_run, run_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("red cat %d\nzzz qqq\nbig dog %d\n"))
    code, out, err = run_cli("translate", "run", trained_run)
    assert code == 2
    lines = out.split("\n")
    assert lines[1] == "" and lines[0] and lines[2]  # one output line per input line
    assert err.strip().splitlines() == [
        "rnnkit: error: text 2: no token of 'zzz qqq' is in the model's source vocabulary; "
        "give text in the language it was trained on"
    ]


def test_attention_writes_exactly_the_named_file_and_never_a_directory(
    trained_run, run_cli, tmp_path
):
    code, out, _ = run_cli("translate", "attention", trained_run, "red cat", "--out",
                           tmp_path / "plain")  # fmt: skip
    assert code == 0 and out.strip().endswith(f"wrote {tmp_path / 'plain'}")
    assert (tmp_path / "plain").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "plain.png").exists()
    (tmp_path / "dir").mkdir()
    code, _, err = run_cli("translate", "attention", trained_run, "red cat", "--out",
                           tmp_path / "dir")  # fmt: skip
    assert code == 2 and "is a directory" in err and not (tmp_path / "dir.png").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    code, _, err = run_cli("translate", "attention", trained_run, "red", "--out", notes)
    assert code == 2 and "--force" in err and notes.read_text() == "mine"


def test_bad_search_values_are_refused_at_parse_time(trained_run, run_cli, capsys):
    for options in (["--length-penalty", "nonsense"], ["--beam", "0"], ["--alpha", "nan"]):
        with pytest.raises(SystemExit):
            run_cli("translate", "run", trained_run, "red", *options)
        err = capsys.readouterr().err
        assert "invalid choice" in err or "must be" in err


def test_absurd_model_sizes_are_refused_before_anything_exists(run_cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("translate", "train", "--out", out, "--hidden-size", "100000",
                           "--embedding-dim", "100000", "--max-steps", "1")  # fmt: skip
    assert code == 2 and "needs about" in err and "--hidden-size" in err and not out.exists()


def test_eval_of_a_corpus_without_placeholders_prints_no_nan(tmp_path, run_cli):
    rng = random.Random(0)
    lines = []
    for _ in range(200):
        words = [rng.choice(WORDS) for _ in range(3)]
        lines.append(" ".join(words) + "\t" + " ".join(reversed(words)).upper())
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n")
    code, _, _ = run_cli("translate", "train", "--data", tmp_path / "p.tsv", "--out",
                         tmp_path / "run", "--max-steps", "2", *TINY)  # fmt: skip
    assert code == 0
    code, out, _ = run_cli("translate", "eval", tmp_path / "run", "--beam", "1")
    # It used to print "placeholders kept  nan% of 0 sentences with placeholders (... nan%)".
    assert code == 0 and "placeholders kept  no sentence has placeholders" in out
    assert "nan" not in out


@pytest.mark.parametrize("texts, which", [([""], 1), (["red cat", "  "], 2)])
def test_an_empty_text_argument_is_a_one_line_error(trained_run, run_cli, texts, which):
    code, out, err = run_cli("translate", "run", trained_run, *texts)
    assert code == 2 and out == ""
    assert err == f"rnnkit: error: text {which} is empty; give a sentence to translate\n"


def test_an_empty_text_for_attention_is_a_one_line_error(trained_run, tmp_path, run_cli):
    out = tmp_path / "a.png"
    err = error_line(run_cli, "translate", "attention", trained_run, "", "--out", out)
    assert "empty" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["latin-1", "utf-16-be"])
def test_train_reads_a_tsv_in_the_encoding_given(tmp_path, run_cli, write_parallel_corpus, kind):
    # translate train had no --encoding: a latin-1 TSV was "not valid utf-8", a UTF-16 one
    # without a byte-order mark was read as UTF-8, its NUL bytes inside every word.
    utf8 = write_parallel_corpus(tmp_path / "utf8.tsv", n=200)
    corpus = tmp_path / "mine.tsv"
    corpus.write_bytes(utf8.read_text().replace("cat", "ch\u00e2t").encode(kind))
    out = tmp_path / "run"
    argv = ["translate", "train", "--data", corpus, "--out", out, "--max-steps", "2", *TINY]
    advice = "is not valid utf-8 text (line" if kind == "latin-1" else f"give --encoding {kind}"
    assert advice in error_line(run_cli, *argv) and not out.exists()
    assert run_cli(*argv, "--encoding", kind)[0] == 0
    vocab = json.loads((out / "vocab.json").read_text())
    assert "ch\u00e2t" in vocab["source"]["tokens"]
    # eval reads the run's corpus in the encoding it was trained with
    code, text, _ = run_cli("translate", "eval", out, "--json", "--split", "valid")
    assert code == 0 and json.loads(text)["sentences"] > 0
