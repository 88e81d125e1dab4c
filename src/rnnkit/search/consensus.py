"""Re-ranking a beam's finished hypotheses by their agreement with each other (MBR decoding).

Beam search returns the sequence the model finds most probable. When the model spreads its
probability over several equally good phrasings (a caption corpus with paraphrases: "a red
circle", "there is a red circle", "a picture of a red circle", ...), that is one of them at
random, often a rare one; metrics built on consensus with several references (CIDEr-D, BLEU)
reward the phrasing that shares the most with all the others. Minimum Bayes risk decoding
(Kumar & Byrne 2004) picks, from the candidates, the one with the highest expected similarity to
the rest: here the n-gram overlap (orders 1-4, Dice coefficient over n-gram counts), the others
weighted uniformly (``"consensus"``, the consensus re-ranking of Devlin et al. 2015) or by their
probability renormalised over the list (``"mbr"``).

Torch-free: hypotheses are :class:`rnnkit.search.Hypothesis` (or anything with ``tokens`` and
``log_prob``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

RERANKINGS = ("none", "consensus", "mbr")
MAX_ORDER = 4  # n-grams of orders 1..4, as BLEU and CIDEr count them

H = TypeVar("H")


def ngram_counts(tokens: Sequence[Any], max_order: int = MAX_ORDER) -> Counter:
    """Counts of every n-gram (a tuple) of orders 1..``max_order`` in ``tokens``."""
    orders = range(1, max_order + 1)
    return Counter(tuple(tokens[i : i + n]) for n in orders for i in range(len(tokens) - n + 1))


def similarity(a: Counter, b: Counter) -> float:
    """The Dice coefficient of two n-gram multisets: 2 |a & b| / (|a| + |b|), in [0, 1]."""
    total = sum(a.values()) + sum(b.values())
    return 2 * sum((a & b).values()) / total if total else 1.0


def rerank(hypotheses: Sequence[H], method: str = "consensus") -> list[H]:
    """``hypotheses`` ordered by expected similarity to the others, most agreed first.

    The expected similarity of ``h_i`` is ``sum_j w_j sim(h_i, h_j)`` over all ``j`` (itself
    included, which does not favour anyone: ``sim(h, h) = 1``), with ``w_j = 1 / n`` for
    ``"consensus"`` and ``w_j = p_j / sum_k p_k`` (``p = exp(log_prob)``) for ``"mbr"``. Ties keep
    the given order; ``"none"`` returns the list unchanged.
    """
    if method not in RERANKINGS:
        raise ValueError(f"rerank must be one of {', '.join(RERANKINGS)}, got {method!r}")
    if method == "none" or len(hypotheses) < 2:
        return list(hypotheses)
    if method == "mbr":
        log_probs = [h.log_prob for h in hypotheses]  # type: ignore[attr-defined]
        top = max(log_probs)
        if top == -math.inf:  # none possible: no evidence to weigh them by
            weights = [1.0] * len(log_probs)
        else:
            weights = [math.exp(lp - top) for lp in log_probs]
    else:
        weights = [1.0] * len(hypotheses)
    grams = [ngram_counts(h.tokens) for h in hypotheses]  # type: ignore[attr-defined]
    expected = [sum(w * similarity(g, other) for w, other in zip(weights, grams)) for g in grams]
    order = sorted(range(len(hypotheses)), key=lambda i: -expected[i])  # stable: ties in order
    return [hypotheses[i] for i in order]
