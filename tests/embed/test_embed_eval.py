import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.embed import WordVectors, evaluate_analogies, evaluate_similarity
from rnnkit.embed import evaluate as evaluate_module
from rnnkit.embed.evaluate import _ranks, spearman, standard_set_path
from rnnkit.errors import DataError

TOY = {
    "man": [0, 1, 0, 0],
    "woman": [0, 0, 1, 0],
    "king": [1, 1, 0, 0],
    "queen": [1, 0, 1, 0],
    "Apple": [0, 0, 0, 1],
    "pear": [0, 0.2, 0, 1],
}

ANALOGIES = """\
: royalty
man king woman queen
woman queen man king
man king woman apple
: fruit
Apple pear man woman
man woman unicorn horn
"""

PAIRS = """\
# word1\tword2\tscore
king\tqueen\t8.0
apple\tpear\t9.0
man\tapple\t1.0
king\tunicorn\t5.0
woman\tqueen\t7.5
"""


@pytest.fixture
def toy(tmp_path):
    vectors = WordVectors(list(TOY), np.array(list(TOY.values()), dtype=np.float32))
    (tmp_path / "analogies.txt").write_text(ANALOGIES, encoding="utf-8")
    (tmp_path / "pairs.tsv").write_text(PAIRS, encoding="utf-8")
    return vectors, tmp_path


def test_analogy_accuracy_per_section_with_skips(toy):
    vectors, path = toy
    score = evaluate_analogies(vectors, path / "analogies.txt")
    royalty, fruit = score.sections
    assert (royalty.name, royalty.correct, royalty.answered, royalty.skipped) == (
        "royalty",
        2,
        3,
        0,
    )
    assert (fruit.name, fruit.answered, fruit.skipped) == ("fruit", 1, 1)
    assert score.answered == 4 and score.skipped == 1
    assert score.accuracy == pytest.approx(score.correct / 4)


def test_case_sensitive_evaluation_skips_other_spellings(toy):
    vectors, path = toy
    score = evaluate_analogies(vectors, path / "analogies.txt", case_insensitive=False)
    assert score.sections[0].skipped == 1  # "apple" is only there as "Apple"


def test_similarity_spearman_and_skips(toy):
    vectors, path = toy
    result = evaluate_similarity(vectors, path / "pairs.tsv")
    assert (result.pairs, result.skipped) == (4, 1)
    cosines = [
        vectors.similarity(*p)
        for p in [("king", "queen"), ("Apple", "pear"), ("man", "Apple"), ("woman", "queen")]
    ]
    assert result.spearman == pytest.approx(
        spearman(np.array(cosines), np.array([8.0, 9.0, 1.0, 7.5]))
    )


def test_spearman_matches_the_textbook_formula_without_ties():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    d = np.argsort(np.argsort(x)) - np.argsort(np.argsort(y))
    assert spearman(x, y) == pytest.approx(1 - 6 * (d**2).sum() / (30 * (30**2 - 1)))
    assert spearman(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)


def test_ties_get_mean_ranks():
    assert _ranks(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [4.0, 1.0, 2.5, 2.5]
    assert math.isnan(spearman(np.ones(3), np.arange(3.0)))


def test_malformed_evaluation_files(tmp_path):
    (tmp_path / "a.txt").write_text(": s\na b c\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected four words"):
        evaluate_analogies(WordVectors(["a"], np.ones((1, 2))), tmp_path / "a.txt")
    (tmp_path / "p.tsv").write_text("a\tb\tx\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: expected 'word1 word2 score'"):
        evaluate_similarity(WordVectors(["a"], np.ones((1, 2))), tmp_path / "p.tsv")


def test_missing_gensim_names_the_extra_to_install(monkeypatch, run_cli, toy):
    from rnnkit.errors import MissingExtraError

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"pip install 'rnnkit\[embeddings\]'"):
        standard_set_path("wordsim353")
    vectors, path = toy
    vectors.save(path / "v.txt")
    code, _, err = run_cli("embed", "eval", path / "v.txt")  # a documented command: one line
    assert code == 2 and err == (
        "rnnkit: error: the standard evaluation sets (gensim's test data) need the gensim package, "
        "which is not installed; install it with: pip install 'rnnkit[embeddings]'\n"
    )


# ------------------------------------------------------------------------------------ CLI


def test_cli_train_similar_analogy(tmp_path, run_cli):
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "cat", "dog", "cow"]
    corpus.write_text(" ".join(rng.choice(words, size=3000)) + "\n", encoding="utf-8")
    out = tmp_path / "v.bin"
    code, stdout, _ = run_cli(
        "embed", "train", "--data", str(corpus), "--out", str(out), "--dim", "8",
        "--epochs", "1", "--min-count", "1", "--format", "word2vec-binary", "--quiet",
    )  # fmt: skip
    assert code == 0 and "wrote 6 vectors of dimension 8" in stdout
    assert WordVectors.load(out).words.__len__() == 6
    code, stdout, _ = run_cli("embed", "similar", str(out), "cat", "-k", "3", "--json")
    answer = json.loads(stdout)
    assert code == 0 and answer["word"] == "cat" and len(answer["answers"]) == 3
    assert "cat" not in [a["word"] for a in answer["answers"]]
    code, stdout, _ = run_cli("embed", "analogy", str(out), "red", "cat", "blue", "-k", "2")
    assert code == 0 and len(stdout.strip().splitlines()) == 2


def test_cli_unknown_word_is_one_line_error(toy, run_cli):
    vectors, path = toy
    vectors.save(path / "v.txt")
    code, _, err = run_cli("embed", "analogy", str(path / "v.txt"), "man", "king", "prince")
    assert code == 2
    assert (
        err.strip()
        == f"rnnkit: error: unknown word 'prince': not among the {len(TOY)} words of these vectors"
    )


def test_cli_malformed_file_is_one_line_error(tmp_path, run_cli):
    (tmp_path / "v.txt").write_text("2 2\na 1 2\nb 1\n", encoding="utf-8")
    code, _, err = run_cli("embed", "similar", str(tmp_path / "v.txt"), "a")
    assert code == 2 and "line 3: mismatched dimensions" in err and len(err.splitlines()) == 1


def test_cli_reads_vector_files_in_the_encoding_given(tmp_path, run_cli):
    path = tmp_path / "v.txt"
    path.write_bytes("3 2\ncaf\u00e9 1 0\nth\u00e9 0.9 0.1\neau 0 1\n".encode("latin-1"))
    code, _, err = run_cli("embed", "similar", str(path), "caf\u00e9")
    assert code == 2 and "line 2: not valid utf-8" in err and "--encoding" in err
    queries = {"similar": ["caf\u00e9", "-k", "1"], "analogy": ["eau", "caf\u00e9", "eau"]}
    for command, extra in queries.items():
        code, out, err = run_cli("embed", command, str(path), *extra, "--encoding", "latin-1",
                                 "--json")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["answers"][0]["word"] == "th\u00e9"


def test_cli_eval_json(toy, run_cli, monkeypatch):
    vectors, path = toy
    vectors.save(path / "v.txt")
    files = {"analogy": "analogies.txt", "wordsim353": "pairs.tsv", "simlex999": "pairs.tsv"}
    monkeypatch.setattr(evaluate_module, "standard_set_path", lambda name: path / files[name])
    code, stdout, _ = run_cli("embed", "eval", str(path / "v.txt"), "--json")
    result = json.loads(stdout)
    assert code == 0
    assert result["analogy"]["answered"] == 4 and result["analogy"]["skipped"] == 1
    assert [s["name"] for s in result["analogy"]["sections"]] == ["royalty", "fruit"]
    assert result["wordsim353"]["pairs"] == 4 and result["simlex999"]["skipped"] == 1
    code, stdout, _ = run_cli("embed", "eval", str(path / "v.txt"))
    assert code == 0 and "royalty" in stdout and "WordSim-353" in stdout


def test_querying_vectors_does_not_import_torch(toy):
    vectors, path = toy
    vectors.save(path / "v.txt")
    code = (
        "import sys; from rnnkit import cli; "
        f"cli.main(['embed', 'similar', {str(path / 'v.txt')!r}, 'king', '-k', '1']); "
        "print('torch' in sys.modules)"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    ).stdout.split()  # fmt: skip
    assert out[-2:] == ["man", "False"]
