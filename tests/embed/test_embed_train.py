from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from rnnkit.embed import Word2VecConfig, train_word_vectors
from rnnkit.embed.train import (
    AliasSampler,
    build_vocab,
    encode,
    keep_probabilities,
    negative_sampler,
    subsample,
    tokenize_corpus,
)
from rnnkit.errors import DataError


def topic_corpus(seed=0, sentences=300, length=20):
    """Sentences drawn from one of two disjoint topics, plus shared filler words."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]]
    filler = ["the", "of", "and"]
    corpus = []
    for s in range(sentences):
        words = topics[s % 2] + filler
        corpus.append([str(w) for w in rng.choice(words, size=length)])
    return corpus, topics


def test_build_vocab_orders_by_count_then_first_seen():
    words, counts = build_vocab([["b", "a", "c", "a"], ["c", "d", "b"]], min_count=2)
    assert words == ["b", "a", "c"] and counts.tolist() == [2, 2, 2]
    words, counts = build_vocab([["x", "y", "y", "y", "z", "z"]], min_count=1)
    assert words == ["y", "z", "x"] and counts.tolist() == [3, 2, 1]


def test_encode_drops_unknown_tokens_and_keeps_raw_positions():
    ids, owners, positions = encode([["a", "?", "b"], ["?", "a"]], {"a": 0, "b": 1})
    assert ids.tolist() == [0, 1, 0]
    assert owners.tolist() == [0, 0, 1]
    assert positions.tolist() == [0, 2, 4]


def test_keep_probabilities_formula():
    counts = np.array([900, 90, 9, 1])
    t = 0.01 * counts.sum()  # 10
    expected = np.minimum(1, (np.sqrt(counts / t) + 1) * t / counts)
    assert np.allclose(keep_probabilities(counts, 0.01), expected)
    assert keep_probabilities(counts, 0.01)[0] == pytest.approx((np.sqrt(90) + 1) / 90)
    assert np.array_equal(keep_probabilities(counts, 0.0), np.ones(4))


def test_subsampling_keeps_each_word_at_its_rate():
    counts = np.array([5000, 2000, 500, 100])
    corpus = torch.from_numpy(np.repeat(np.arange(4), counts))
    keep = torch.from_numpy(keep_probabilities(counts, 0.05))
    kept = subsample(corpus, keep, torch.Generator().manual_seed(0))
    rates = torch.bincount(corpus[kept], minlength=4).double() / torch.from_numpy(counts)
    sigma = torch.sqrt(keep * (1 - keep) / torch.from_numpy(counts)).clamp(min=1e-3)
    assert torch.all((rates - keep).abs() < 4 * sigma)
    assert keep[0] < 0.5 and keep[3] == 1  # frequent words are thinned, rare ones kept


def test_negatives_follow_unigram_to_three_quarters():
    counts = np.array([900, 300, 100, 30, 10, 1])
    draws = negative_sampler(counts).sample((200_000,), torch.Generator().manual_seed(1))
    freq = np.bincount(draws.numpy(), minlength=6) / 200_000
    p = counts**0.75 / (counts**0.75).sum()
    sigma = np.sqrt(p * (1 - p) / 200_000)
    assert np.all(np.abs(freq - p) < 4 * sigma)


def test_alias_sampler_exact_on_a_small_distribution():
    sampler = AliasSampler(np.array([0.0, 1.0, 3.0]))
    draws = sampler.sample((60_000,), torch.Generator().manual_seed(2))
    freq = np.bincount(draws.numpy(), minlength=3) / 60_000
    assert freq[0] == 0
    assert freq[2] == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        AliasSampler(np.array([-1.0, 2.0]))


IMPLS = pytest.mark.parametrize("impl", ["torch", "native"])


@IMPLS
@pytest.mark.parametrize("model", ["sgns", "cbow"])
def test_cooccurring_words_end_up_closer(model, impl):
    corpus, topics = topic_corpus()
    config = Word2VecConfig(
        model=model, dim=16, window=3, epochs=3, min_count=1, sample=0, workers=1, seed=0,
        lr=0.05, batch_size=16, impl=impl,
    )  # fmt: skip
    v = train_word_vectors(corpus, config)
    same = [v.similarity(x, y) for t in topics for x in t for y in t if x < y]
    cross = [v.similarity(x, y) for x in topics[0] for y in topics[1]]
    assert np.mean(same) > np.mean(cross) + 0.3
    assert min(same) > max(cross)


@IMPLS
@pytest.mark.parametrize("model", ["sgns", "cbow"])
def test_training_is_reproducible_with_one_worker(model, impl):
    corpus, _ = topic_corpus(sentences=40)
    config = Word2VecConfig(model=model, dim=8, epochs=1, min_count=1, workers=1, seed=5, impl=impl)
    a = train_word_vectors(corpus, config)
    b = train_word_vectors(corpus, config)
    c = train_word_vectors(corpus, replace(config, seed=6))
    assert a.words == b.words and np.array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)


@IMPLS
@pytest.mark.parametrize("model", ["sgns", "cbow"])
def test_two_workers_train_the_same_vocabulary(model, impl):
    corpus, topics = topic_corpus(sentences=100)
    config = Word2VecConfig(model=model, dim=8, epochs=1, min_count=1, workers=2, impl=impl)
    v = train_word_vectors(corpus, config)
    assert sorted(v.words) == sorted({w for s in corpus for w in s})
    assert np.isfinite(v.vectors).all()


def test_min_count_filters_and_empty_vocabulary_is_an_error():
    v = train_word_vectors([["a", "a", "b"]] * 3, Word2VecConfig(dim=4, min_count=4, epochs=1))
    assert v.words == ["a"]
    with pytest.raises(DataError, match="min_count=10"):
        train_word_vectors([["a", "b"]], Word2VecConfig(min_count=10))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model", "glove", "unknown model 'glove'"),
        ("dim", 0, "dim must be at least 1"),
        ("window", 0, "window must be at least 1"),
        ("sample", -1.0, "sample must be >= 0"),
        ("min_lr", 1.0, "min_lr <= lr"),
        ("impl", "c", "unknown impl 'c'"),
    ],
)
def test_config_validation_names_the_field(field, value, message):
    config = Word2VecConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_tokenize_corpus_lowercases_and_cuts_long_text():
    sentences = tokenize_corpus("To be, or NOT\nto be.", max_length=4)
    assert sentences == [["to", "be", ",", "or"], ["not", "to", "be", "."]]
    assert tokenize_corpus("King Lear", lowercase=False) == [["King", "Lear"]]


def test_windows_shrink_uniformly_and_stop_at_sentence_ends(monkeypatch):
    from rnnkit.embed import train as train_module

    seen = []
    original = train_module._Trainer.sgns_step

    def record(self, context, mask, targets, lr):
        seen.append(
            (context.clone(), None if mask is None else mask.clone(), targets[:, 0].clone())
        )
        return original(self, context, mask, targets, lr)

    monkeypatch.setattr(train_module._Trainer, "sgns_step", record)
    sentences = [[f"w{i}" for i in range(600)], [f"w{i}" for i in range(600, 1000)]]
    config = Word2VecConfig(
        dim=4, window=4, epochs=1, min_count=1, sample=0, workers=1, impl="torch"
    )
    train_word_vectors(sentences, config)
    widths = Counter()
    for context, mask, centres in seen:
        b = context.shape[1] // 2
        widths[b] += len(centres)
        for row, centre in enumerate(centres.tolist()):
            sentence_end = 600 if centre < 600 else 1000
            sentence_start = 0 if centre < 600 else 600
            expected = [centre + o for o in [*range(-b, 0), *range(1, b + 1)]]
            valid = [sentence_start <= x < sentence_end for x in expected]
            got_valid = [True] * (2 * b) if mask is None else mask[row].bool().tolist()
            assert got_valid == valid
            assert [x for x, ok in zip(context[row].tolist(), valid) if ok] == [
                x for x, ok in zip(expected, valid) if ok
            ]
    assert sum(widths.values()) == 1000
    assert all(abs(widths[b] - 250) < 4 * (1000 * 0.25 * 0.75) ** 0.5 for b in range(1, 5))
