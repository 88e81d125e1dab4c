"""WER/CER from our own edit distance, against brute force and against jiwer."""

import itertools
import random

import jiwer
import pytest

from rnnkit.speech.metrics import cer, edit_distance, wer


def brute_distance(a, b):
    """Shortest edit script by breadth-first search over strings (tiny inputs only)."""
    alphabet = sorted(set(a) | set(b))
    frontier, seen, steps = {a}, {a}, 0
    while b not in frontier:
        nxt = set()
        for s in frontier:
            for i in range(len(s) + 1):
                for c in alphabet:
                    nxt.add(s[:i] + c + s[i:])
                if i < len(s):
                    nxt.add(s[:i] + s[i + 1 :])
                    for c in alphabet:
                        nxt.add(s[:i] + c + s[i + 1 :])
        frontier = nxt - seen
        seen |= nxt
        steps += 1
    return steps


def test_edit_distance_equals_breadth_first_search():
    for a, b in itertools.product(["", "ab", "ba", "aab"], ["", "b", "abb", "bab"]):
        assert edit_distance(a, b) == brute_distance(a, b)


def test_wer_and_cer_match_jiwer():
    rng = random.Random(0)
    words = ["one", "two", "three", "oh", "nine"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(30)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(30)]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps))
    assert wer(refs, refs) == 0.0
