import numpy as np
import pytest
import torch

from rnnkit.embed import UnknownWordError, WordVectors
from rnnkit.embed.pretrained import load_into_embedding
from rnnkit.embed.vectors import FORMATS, detect_format
from rnnkit.errors import DataError

# Dimensions: royal, male, female, fruit.
TOY = {
    "man": [0, 1, 0, 0],
    "woman": [0, 0, 1, 0],
    "king": [1, 1, 0, 0],
    "queen": [1, 0, 1, 0],
    "apple": [0, 0, 0, 1],
}

ODD_WORDS = [
    "naïve",
    "日本語",
    "emoji😀",
    "tab\there",
    "quote\"'",
    "back\\slash",
    "zero\u200dwidth",
    "nbsp\u00a0inside",
    "line\u2028separator",
    "next\x85line",
    "carriage\rreturn",
    "<unk>",
    "123",
    "-0.5",
]


def toy_vectors():
    return WordVectors(list(TOY), np.array(list(TOY.values()), dtype=np.float32))


def random_vectors(words, dim=7, seed=0):
    return WordVectors(words, np.random.default_rng(seed).normal(size=(len(words), dim)))


def test_similarity_is_cosine():
    v = toy_vectors()
    assert v.similarity("king", "queen") == pytest.approx(0.5)
    assert v.similarity("man", "woman") == pytest.approx(0.0)
    assert v.similarity("king", "man") == pytest.approx(2**-0.5)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_on_handmade_vectors(method):
    v = toy_vectors()
    (word, score), (_, runner_up) = v.analogy("man", "king", "woman", k=2, method=method)
    assert word == "queen" and score > runner_up
    assert v.analogy("king", "man", "queen", method=method)[0][0] == "woman"


def test_analogy_never_answers_a_query_word():
    v = toy_vectors()
    # king - man + man = king: the best raw answer is a query word, so it must be skipped.
    answers = v.analogy("man", "king", "man", k=5)
    assert [w for w, _ in answers] == [w for w in ["queen", "woman", "apple"]][: len(answers)]
    assert {"man", "king"}.isdisjoint(w for w, _ in answers)
    assert len(answers) == 3


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_matches_brute_force(method):
    words = [f"w{i}" for i in range(40)]
    v = random_vectors(words, seed=3)
    unit = v.vectors / np.linalg.norm(v.vectors, axis=1, keepdims=True)
    a, b, c = 4, 9, 17

    def score(x):
        cos = [float(unit[x] @ unit[q]) for q in (a, b, c)]
        if method == "3cosadd":
            target = unit[b] - unit[a] + unit[c]
            return float(unit[x] @ target) / float(np.linalg.norm(target))
        ca, cb, cc = ((t + 1) / 2 for t in cos)
        return cb * cc / (ca + 1e-3)

    expected = sorted((x for x in range(40) if x not in (a, b, c)), key=score, reverse=True)[:6]
    got = v.analogy(words[a], words[b], words[c], k=6, method=method)
    assert [w for w, _ in got] == [words[x] for x in expected]
    assert [s for _, s in got] == pytest.approx([score(x) for x in expected], rel=1e-5)


def test_most_similar_by_word_vector_and_exclude():
    v = toy_vectors()
    assert [w for w, _ in v.most_similar("king", k=2)] == ["man", "queen"]
    assert v.most_similar("king", k=1, exclude=["man"])[0][0] == "queen"
    by_vector = v.most_similar(np.array([1, 0, 1, 0.1]), k=1)
    assert by_vector[0][0] == "queen"
    assert by_vector[0][1] == pytest.approx(2 / np.sqrt(2 * 2.01), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        v.most_similar(np.ones(3))


def test_unknown_words_are_named():
    v = toy_vectors()
    with pytest.raises(UnknownWordError, match="'prince'"):
        v.similarity("king", "prince")
    with pytest.raises(UnknownWordError, match="'duke', 'earl'"):
        v.analogy("duke", "king", "earl")
    with pytest.raises(UnknownWordError) as exc:
        v.most_similar("pear")
    assert str(exc.value).startswith("unknown word 'pear'")


def test_lowercased_keeps_first_spelling():
    v = WordVectors(["The", "the", "King"], np.eye(3))
    low = v.lowercased()
    assert low.words == ["the", "king"]
    assert np.array_equal(low["the"], [1, 0, 0])


@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_with_unusual_words(tmp_path, format):
    v = random_vectors(ODD_WORDS, dim=5, seed=1)
    path = tmp_path / "vectors"
    v.save(path, format=format)
    assert detect_format(path.read_bytes()) == format
    for given in (format, None):
        back = WordVectors.load(path, format=given)
        assert back.words == ODD_WORDS
        assert np.array_equal(back.vectors, v.vectors)  # 9 digits: float32 exactly


def test_binary_without_newlines_between_records(tmp_path):
    path = tmp_path / "v.bin"
    rows = np.array([[1, 2], [3, 4]], dtype="<f4")
    path.write_bytes(b"2 2\nab " + rows[0].tobytes() + b"cd " + rows[1].tobytes())
    back = WordVectors.load(path)
    assert back.words == ["ab", "cd"] and np.array_equal(back.vectors, rows)


def test_glove_text_is_detected(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nof -1 2 3e-2\n", encoding="utf-8")
    back = WordVectors.load(path)
    assert back.words == ["the", "of"]
    assert back.vectors[1, 2] == pytest.approx(0.03)


def test_word_with_space_cannot_be_saved(tmp_path):
    v = WordVectors(["new york"], np.ones((1, 2)))
    with pytest.raises(ValueError, match="'new york'"):
        v.save(tmp_path / "v.txt")


@pytest.mark.parametrize(
    "content, message",
    [
        ("2 3\na 1 2 3\nb 1 2\n", r"line 3: mismatched dimensions: 'b' has 2 values, expected 3"),
        ("a 1 2\nb 1 2 3\n", r"line 2: mismatched dimensions"),
        ("2 3\na 1 2\nb 1 2\n", r"line 2: mismatched dimensions: 'a' has 2 values, expected 3"),
        ("2 2\na 1 2\nb 1 x\n", r"line 3: a value of 'b' is not a number"),
        ("3 2\na 1 2\nb 1 2\n", r"header says 3 words but the file has 2"),
        ("a 1\n\nb 2\n", r"line 2: expected a word and its numbers"),
        ("   \n", r"empty vector file"),
    ],
)
def test_malformed_text_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        WordVectors.load(path)


def test_malformed_binary_files(tmp_path):
    path = tmp_path / "bad.bin"
    good = np.ones(3, dtype="<f4").tobytes()
    path.write_bytes(b"2 3\na " + good + b"\nb " + good[:8])
    with pytest.raises(DataError, match="record 2 of 2 is truncated"):
        WordVectors.load(path, format="word2vec-binary")
    path.write_bytes(b"1 2\na " + good + b"\n")  # 3 values where the header promises 2
    with pytest.raises(DataError, match="mismatched dimensions"):
        WordVectors.load(path, format="word2vec-binary")


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"a 1 2\n\xff\xfe 1 2\n")
    with pytest.raises(DataError, match="line 2: not valid utf-8"):
        WordVectors.load(path)
    assert WordVectors.load(path, encoding="latin-1").words == ["a", "ÿþ"]


def test_constructor_checks_shapes_and_duplicates():
    with pytest.raises(ValueError, match="2 words but 3 vector rows"):
        WordVectors(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="duplicate word 'a'"):
        WordVectors(["a", "a"], np.zeros((2, 2)))


def test_load_into_embedding_matches_exact_then_lowercase():
    vectors = WordVectors(["king", "the"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    embedding = torch.nn.Embedding(5, 2, padding_idx=0)
    before = embedding.weight.detach().clone()
    vocab = ["<pad>", "king", "The", "<unk>", "queen"]
    coverage = load_into_embedding(embedding, vocab, vectors, freeze=True)
    assert (coverage.exact, coverage.lowercase, coverage.total) == (1, 1, 5)
    assert coverage.missing == ["<unk>", "queen"]
    assert "2 of 5 vocabulary words (40.0%)" in str(coverage)
    w = embedding.weight.detach()
    assert torch.equal(w[1], torch.tensor([1.0, 2.0])) and torch.equal(
        w[2], torch.tensor([3.0, 4.0])
    )
    assert torch.equal(w[[0, 3, 4]], before[[0, 3, 4]])
    assert not embedding.weight.requires_grad


def test_load_into_embedding_rejects_other_dimension():
    vectors = WordVectors(["a"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="mismatched dimensions: the embedding has 4 columns"):
        load_into_embedding(torch.nn.Embedding(1, 4), ["a"], vectors)
