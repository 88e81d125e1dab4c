"""CTC decoding: greedy, prefix beam search (vs brute force), LM fusion, words, alignments."""

import itertools

import numpy as np
import pytest
import torch

from rnnkit.reference import ctc as ref
from rnnkit.speech.decode import (
    LMFusion,
    Words,
    forced_align,
    greedy_decode,
    prefix_beam_search,
    word_spans,
)


def peaky(seed, T=20, C=5, sharpness=4.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, C, generator=g, dtype=torch.float64) * sharpness).log_softmax(1)


def posteriors(rows):
    """log of the given per-frame probabilities."""
    return torch.tensor(rows, dtype=torch.float64).log()


def test_greedy_collapses_repeats_and_drops_blanks():
    # best path: a a - a b b -  ->  a a b
    rows = [[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]]
    rows += [[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]]
    assert greedy_decode(posteriors(rows)).tokens == (1, 1, 2)


def confident(seed, T=30, C=5):
    """Posteriors like a trained CTC model's: at every frame one class (blank half the time) has
    probability 0.6-0.99, the rest share what is left."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.rand(T, C, generator=g, dtype=torch.float64)
    best = torch.where(torch.rand(T, generator=g) < 0.5, 0, torch.randint(1, C, (T,), generator=g))
    top = 0.6 + 0.39 * torch.rand(T, generator=g, dtype=torch.float64)
    rest[torch.arange(T), best] = 0.0
    probs = rest / rest.sum(1, keepdim=True) * (1 - top).unsqueeze(1)
    probs[torch.arange(T), best] = top
    return probs.log()


@pytest.mark.parametrize("seed", range(10))
def test_beam_width_one_equals_greedy(seed):
    log_probs = confident(seed)
    assert prefix_beam_search(log_probs, beam=1)[0].tokens == greedy_decode(log_probs).tokens


def test_prefix_probabilities_equal_brute_force_sum_over_alignments():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(4, 3, generator=g, dtype=torch.float64).log_softmax(1)
    hyps = prefix_beam_search(log_probs, beam=10_000, nbest=10_000, prune=float("-inf"))
    found = {h.tokens: h.acoustic for h in hyps}
    # every label sequence over {1, 2} of length <= 4, and its probability by enumeration
    lp = log_probs.numpy()
    expected = {}
    for path in itertools.product(range(3), repeat=4):
        expected.setdefault(ref.collapse(path), None)
    assert set(found) == set(expected)
    for labels in expected:
        assert found[labels] == pytest.approx(-ref.brute_force_loss(lp, labels), abs=1e-9)
    # and the probabilities of all label sequences sum to one
    assert np.logaddexp.reduce(list(found.values())) == pytest.approx(0.0, abs=1e-9)


def test_nbest_is_sorted_and_distinct():
    hyps = prefix_beam_search(peaky(1, sharpness=1.0), beam=8, nbest=5)
    assert len(hyps) == 5
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert len({h.tokens for h in hyps}) == 5


class BigramLM:
    """A decoder (step/reorder) whose next-token log-probabilities depend on the last token."""

    def __init__(self, table):
        self.table = torch.tensor(table, dtype=torch.float64).log()  # (V, V)

    def step(self, tokens, state):
        return self.table[tokens], tokens.view(1, -1, 1).double()  # state: (1, N, 1)

    def reorder(self, state, index):
        return state.index_select(1, index)


# classes: 0 blank, 1 'a', 2 'b'; the LM's tokens: 0 '\n' (start), 1 'a', 2 'b'
AMBIGUOUS = [[0.9, 0.05, 0.05], [0.1, 0.5, 0.4], [0.9, 0.05, 0.05]]


def test_lm_fusion_changes_the_best_hypothesis_where_the_lm_should_win():
    lm = LMFusion(BigramLM([[0.01, 0.09, 0.9], [0.3, 0.4, 0.3], [0.3, 0.4, 0.3]]), [None, 1, 2], 0)
    log_probs = posteriors(AMBIGUOUS)
    assert prefix_beam_search(log_probs, beam=4)[0].tokens == (1,)
    fused = prefix_beam_search(log_probs, beam=4, lm=lm, alpha=1.0)[0]
    assert fused.tokens == (2,)
    assert fused.lm == pytest.approx(np.log(0.9))
    assert fused.acoustic == pytest.approx(-ref.ctc_loss(log_probs.numpy(), [2]))


def test_lm_end_score_prefers_finished_words():
    # Acoustically "ab" and "a" are close; the LM says an utterance ends only after "b".
    table = [[0.01, 0.98, 0.01], [0.3, 0.01, 0.69], [0.98, 0.01, 0.01]]  # rows: after \n, a, b
    rows = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.6, 0.1, 0.3], [0.9, 0.05, 0.05]]
    without_end = LMFusion(BigramLM(table), [None, 1, 2], 0)
    with_end = LMFusion(BigramLM(table), [None, 1, 2], 0, end=0)
    log_probs = posteriors(rows)
    assert prefix_beam_search(log_probs, beam=4, lm=without_end, alpha=1.0)[0].tokens == (1,)
    best = prefix_beam_search(log_probs, beam=4, lm=with_end, alpha=1.0)[0]
    assert best.tokens == (1, 2)
    assert best.lm == pytest.approx(np.log(0.98 * 0.69 * 0.98))


def test_lm_state_follows_each_prefix():
    # The LM says 'b' after 'a' and 'a' after 'b'; acoustics are flat over a/b at both labels.
    table = [[0.01, 0.98, 0.01], [0.01, 0.01, 0.98], [0.01, 0.98, 0.01]]
    lm = LMFusion(BigramLM(table), [None, 1, 2], 0)
    rows = [[0.1, 0.45, 0.45], [0.9, 0.05, 0.05], [0.1, 0.45, 0.45], [0.9, 0.05, 0.05]]
    best = prefix_beam_search(posteriors(rows), beam=6, lm=lm, alpha=1.0)[0]
    assert best.tokens == (1, 2)


def test_hotwords_boost_and_lexicon_constrains():
    alphabet = ["", "a", "b", " "]
    rows = [[0.9, 0.05, 0.04, 0.01], [0.1, 0.5, 0.39, 0.01], [0.9, 0.05, 0.04, 0.01]]
    log_probs = posteriors(rows)
    assert prefix_beam_search(log_probs, beam=4)[0].tokens == (1,)
    boosted = Words(alphabet, hotwords=["b"], weight=1.0)
    assert prefix_beam_search(log_probs, beam=4, words=boosted)[0].tokens == (2,)
    lexicon = Words(alphabet, lexicon=["b", "bb"])
    hyps = prefix_beam_search(log_probs, beam=4, nbest=4, words=lexicon)
    assert hyps[0].tokens == (2,)
    assert all(1 not in h.tokens for h in hyps)  # no word may hold an "a"


def test_forced_align_and_word_spans():
    # frames: - a a - b b - - a -  with text "a b a"? use classes 1 'a', 2 'b', 3 ' '
    b, a, bb, sp = (
        [0.97, 0.01, 0.01, 0.01],
        [0.01, 0.97, 0.01, 0.01],
        [0.01, 0.01, 0.97, 0.01],
        [
            0.01,
            0.01,
            0.01,
            0.97,
        ],
    )
    rows = [b, a, a, b, sp, b, bb, bb, bb, b]
    spans = forced_align(posteriors(rows), [1, 3, 2])
    assert spans == [(1, 3), (4, 5), (6, 9)]
    words = word_spans("a b", spans)
    assert [(w.text, w.start, w.end) for w in words] == [("a", 1, 3), ("b", 6, 9)]
    with pytest.raises(ValueError, match="cannot be aligned"):
        forced_align(posteriors(rows[:2]), [1, 1])
