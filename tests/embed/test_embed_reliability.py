"""``embed``: what --out may replace, atomic vector files under a full disk, queries folded the
way the vectors were trained, damaged vector files (docs/reliability.md)."""

import errno
import os

import numpy as np
import pytest
import torch

from rnnkit.embed.pretrained import load_into_embedding
from rnnkit.embed.vectors import WordVectors


def train_argv(data, out, *extra):
    return ["embed", "train", "--data", data, "--out", out, "--dim", "4", "--epochs", "1",
            "--min-count", "1", "--impl", "torch", "--quiet", *extra]  # fmt: skip


def test_out_never_replaces_the_corpus_a_run_file_or_a_foreign_file(
    tmp_path, write_text_corpus, run_cli
):
    data = write_text_corpus(tmp_path / "my.txt", n=400)
    corpus = data.read_bytes()
    code, _, err = run_cli(*train_argv(data, data, "--force"))
    assert code == 2 and "is also an input" in err and data.read_bytes() == corpus
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"weights")
    code, _, err = run_cli(*train_argv(data, run / "model.safetensors", "--force"))
    assert code == 2 and "inside the run directory" in err
    assert (run / "model.safetensors").read_bytes() == b"weights"
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, _, err = run_cli(*train_argv(data, notes))
    assert code == 2 and "not an rnnkit vector file" in err and "--force" in err
    assert notes.read_text() == "my notes\n"
    # A vector file is replaced (the usual retraining), and --force replaces anything else.
    vectors = tmp_path / "v.txt"
    assert run_cli(*train_argv(data, vectors))[0] == 0
    assert run_cli(*train_argv(data, vectors, "--format", "glove"))[0] == 0
    assert run_cli(*train_argv(data, vectors))[0] == 0
    assert run_cli(*train_argv(data, notes, "--force"))[0] == 0
    assert len(WordVectors.load(notes)) == len(WordVectors.load(vectors))


def test_a_full_disk_while_writing_vectors_is_one_line_and_keeps_the_old_file(
    tmp_path, write_text_corpus, run_cli, monkeypatch
):
    data = write_text_corpus(tmp_path / "my.txt", n=400)
    out = tmp_path / "v.txt"
    assert run_cli(*train_argv(data, out))[0] == 0
    before = out.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = run_cli(*train_argv(data, out, "--seed", "7"))
    assert code == 2
    assert err == f"rnnkit: error: {out}: No space left on device\n"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.txt", "v.txt", "v.txt.rnnkit.json"]


def test_queries_are_folded_like_the_vectors_and_missing_words_get_suggestions(tmp_path, run_cli):
    words = ["god", "king", "queen", "kings"]
    lower = WordVectors(words, np.eye(4, dtype=np.float32) + 0.1)
    path = tmp_path / "lower.txt"
    lower.save(path)
    code, out, _ = run_cli("embed", "similar", path, "God", "-k", "1")
    assert code == 0 and out.split()[1] in {"king", "queen", "kings"}
    code, _, err = run_cli("embed", "similar", path, "kng")
    assert code == 2 and "unknown word 'kng'" in err and "did you mean 'king'" in err
    # Vectors trained with --keep-case keep the case of queries.
    cased = WordVectors(["God", "king", "queen", "kings"], np.eye(4, dtype=np.float32))
    assert not cased.lowercase and cased.key("god") is None and lower.key("GOD") == "god"


def test_case_folding_is_recorded_with_trained_vectors_and_read_back(
    tmp_path, write_text_corpus, run_cli
):
    # A corpus without capitals: detection would call --keep-case vectors lowercased.
    data = tmp_path / "lower.txt"
    data.write_text(write_text_corpus(tmp_path / "c.txt", n=400).read_text().lower())
    kept, folded = tmp_path / "kept.txt", tmp_path / "folded.txt"
    assert run_cli(*train_argv(data, kept, "--keep-case"))[0] == 0
    assert run_cli(*train_argv(data, folded))[0] == 0
    word = WordVectors.load(folded).words[0]
    assert word == word.lower() and word.upper() != word
    # The record wins over detection: the kept-case file does not fold queries.
    code, out, _ = run_cli("embed", "similar", folded, word.upper(), "-k", "1")
    assert code == 0 and len(out.splitlines()) == 1
    code, _, err = run_cli("embed", "similar", kept, word.upper())
    assert code == 2 and f"unknown word {word.upper()!r}" in err and f"did you mean {word!r}" in err
    assert "kept as typed: trained keeping case, as recorded in" in err and "kept.txt.rnnkit" in err
    # The file itself stays plain word2vec text (what gensim and word2vec's tools read).
    header = kept.read_text().splitlines()[0].split()
    assert len(header) == 2 and all(p.isdigit() for p in header)
    # A sidecar that does not describe the file (another version of it) is ignored: detection.
    text = kept.read_text()
    kept.write_text(text.replace(f"\n{word} ", f"\nzzz{word} ", 1))
    again = WordVectors.load(kept)
    assert again.lowercase and not again.case_recorded and "no record" in again.case_rule
    # Translation and language models start embeddings with the same rule.
    for path, expect in ((folded, 1), (tmp_path / "kept2.txt", 0)):
        if expect == 0:
            assert run_cli(*train_argv(data, path, "--keep-case"))[0] == 0
        layer = torch.nn.Embedding(2, 4)
        coverage = load_into_embedding(layer, [word, word.capitalize()], WordVectors.load(path))
        assert (coverage.exact, coverage.lowercase) == (1, expect)
        assert "as recorded in" in str(coverage)


def test_damaged_or_foreign_vector_files_are_one_line(tmp_path, run_cli):
    nan = tmp_path / "nan.txt"
    nan.write_text("2 3\nking 1 2 3\nqueen nan 0 1\n")
    code, _, err = run_cli("embed", "similar", nan, "king")
    assert code == 2 and "'queen'" in err and "NaN or infinite" in err
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    code, _, err = run_cli("embed", "similar", binary, "king")
    assert code == 2 and "--encoding" not in err and "pass the file's encoding" not in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit):
        run_cli("embed", "train", "--out", tmp_path / "v.txt", "--dim", "0")


def test_absurd_vector_sizes_are_refused_before_allocating(tmp_path, write_text_corpus, run_cli):
    data = write_text_corpus(tmp_path / "my.txt", n=400)
    argv = train_argv(data, tmp_path / "v.txt")
    argv[argv.index("--dim") + 1] = str(10**12)
    code, _, err = run_cli(*argv)
    assert code == 2 and "needs about" in err and "--dim" in err
    assert not (tmp_path / "v.txt").exists()
