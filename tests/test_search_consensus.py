"""Re-ranking a beam by consensus (rnnkit.search.consensus) against a brute-force oracle."""

import math

import pytest

from rnnkit.errors import ConfigError
from rnnkit.search import Hypothesis, SearchOptions, beam_search, decode, rerank
from test_search import EOS, ToyDecoder, bos_for

# Paraphrases of one caption, as word ids: "a red circle", "there is a red circle",
# "a picture of a red circle", "a single red circle", "a red circle on a white background".
A, RED, CIRCLE, THERE, IS, PICTURE, OF, SINGLE, ON, WHITE, BACKGROUND = range(2, 13)
PARAPHRASES = [
    [A, RED, CIRCLE],
    [THERE, IS, A, RED, CIRCLE],
    [A, PICTURE, OF, A, RED, CIRCLE],
    [A, SINGLE, RED, CIRCLE],
    [A, RED, CIRCLE, ON, A, WHITE, BACKGROUND],
]


def dice_by_enumeration(a, b):
    """2 |common n-grams| / (|n-grams of a| + |n-grams of b|), n = 1..4, matched one by one."""
    grams_a = [tuple(a[i : i + n]) for n in range(1, 5) for i in range(len(a) - n + 1)]
    grams_b = [tuple(b[i : i + n]) for n in range(1, 5) for i in range(len(b) - n + 1)]
    unmatched, common = list(grams_b), 0
    for g in grams_a:
        if g in unmatched:
            unmatched.remove(g)
            common += 1
    return 2 * common / (len(grams_a) + len(grams_b))


def hyps(log_probs):
    return [Hypothesis(t, lp, lp) for t, lp in zip(PARAPHRASES, log_probs)]


@pytest.mark.parametrize("method", ["consensus", "mbr"])
def test_rerank_orders_by_expected_similarity(method):
    found = hyps([-1.0, -1.2, -0.9, -0.8, -2.0])
    probs = [math.exp(h.log_prob) for h in found] if method == "mbr" else [1.0] * len(found)
    expected = [
        sum(p * dice_by_enumeration(h.tokens, o.tokens) for p, o in zip(probs, found))
        for h in found
    ]
    order = sorted(range(len(found)), key=lambda i: -expected[i])
    assert rerank(found, method) == [found[i] for i in order]
    # Every other phrasing contains "a red circle": it agrees most with the rest, although
    # "a single red circle" is the most probable.
    assert rerank(found, "consensus")[0].tokens == [A, RED, CIRCLE]
    assert max(found, key=lambda h: h.log_prob).tokens == [A, SINGLE, RED, CIRCLE]


def test_mbr_follows_a_dominant_hypothesis_and_none_keeps_the_order():
    found = hyps([-9.0, -9.0, -9.0, -0.01, -9.0])  # nearly all the mass on "a single red circle"
    assert rerank(found, "mbr")[0].tokens == [A, SINGLE, RED, CIRCLE]
    assert rerank(found, "consensus")[0].tokens == [A, RED, CIRCLE]
    assert rerank(found, "none") == found
    assert rerank(found[:1], "mbr") == found[:1]
    with pytest.raises(ValueError, match="rerank must be one of"):
        rerank(found, "bleu")


@pytest.mark.parametrize("method", ["none", "consensus", "mbr"])
def test_decode_reranks_the_whole_beam(method):
    dec, n = ToyDecoder(vocab=6, seed=3, eos_bias=0.5, scale=1.0), 20
    options = SearchOptions(beam_size=4, n_best=2, rerank=method)
    found = decode(dec, dec.start(range(n)), bos_for(n), EOS, 9, options)
    beams = beam_search(dec, dec.start(range(n)), bos_for(n), EOS, 4, 9, n_best=4)
    assert found == [rerank(b, method)[:2] for b in beams]
    if method == "none":  # the plain beam: its two best by score
        assert found == beam_search(dec, dec.start(range(n)), bos_for(n), EOS, 4, 9, n_best=2)
    else:
        assert any(f[0] != b[0] for f, b in zip(found, beams))  # it does change the winner


def test_greedy_search_ignores_reranking():
    dec = ToyDecoder(vocab=6, seed=3, eos_bias=0.5)
    plain = decode(dec, dec.start(range(4)), bos_for(4), EOS, 9, SearchOptions())
    reranked = decode(dec, dec.start(range(4)), bos_for(4), EOS, 9, SearchOptions(rerank="mbr"))
    assert reranked == plain


def test_search_options_refuse_an_unknown_reranking():
    with pytest.raises(ConfigError, match="rerank must be one of none, consensus, mbr, got 'x'"):
        SearchOptions(beam_size=3, rerank="x")
