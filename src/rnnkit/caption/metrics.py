"""Caption scores as the COCO evaluation computes them: corpus BLEU-1..4 and CIDEr-D; grounding.

Captions are lists of words (already tokenised, lower-case). ``references[i]`` holds the
reference captions of image ``i``, ``hypotheses[i]`` the caption a model generated for it.

**BLEU** (Papineni et al. 2002) as ``pycocoevalcap``'s ``Bleu`` scores a corpus: clipped n-gram
matches and candidate n-grams summed over all images, the effective reference length of an image
is the reference length closest to its hypothesis (the shorter on ties), one brevity penalty for
the corpus, BLEU-n the geometric mean of the precisions of orders 1..n. Like the COCO code, the
precisions get ``1e-15`` added above and ``1e-9`` below, so a corpus without 4-gram matches scores
~0 instead of failing.

**CIDEr-D** (Vedantam et al. 2015) as ``pycocoevalcap``'s ``Cider`` (which is CIDEr-D): n-grams of
orders 1..4 weighted by TF-IDF, where the document frequency counts the images whose references
contain the n-gram and the IDF is ``log(number of images) - log(max(1, df))``; per order, the cosine
of the hypothesis vector and each reference vector, with the hypothesis counts clipped at the
reference's and a Gaussian penalty ``exp(-delta^2 / (2 * 6^2))`` on the length difference; averaged
over references and orders and multiplied by 10. As in the COCO code the "length" in the penalty
counts bigrams (words - 1).

**Grounding**: see :func:`grounding`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

Caption = Sequence[str]
_TINY, _SMALL = 1e-15, 1e-9  # the COCO BLEU code's smoothing of the precisions
CIDER_SIGMA = 6.0
MAX_ORDER = 4


def ngrams(words: Caption, n: int) -> Counter:
    """Counts of the n-grams (tuples) of order ``n`` in ``words``."""
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _check(hypotheses: Sequence[Caption], references: Sequence[Sequence[Caption]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"got {len(hypotheses)} hypotheses for {len(references)} reference sets; "
            "give one hypothesis per image"
        )
    if not hypotheses:
        raise ValueError("no captions to score")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every image needs at least one reference caption")


def bleu(
    hypotheses: Sequence[Caption], references: Sequence[Sequence[Caption]], max_order: int = 4
) -> list[float]:
    """Corpus BLEU-1..``max_order`` (fractions in [0, 1]), as the COCO evaluation computes them."""
    _check(hypotheses, references)
    matches, totals = [0] * max_order, [0] * max_order
    hyp_length = ref_length = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_length += len(hyp)
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_order + 1):
            counts = ngrams(hyp, n)
            most = Counter()
            for ref in refs:
                most |= ngrams(ref, n)  # max count of each n-gram over the references
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    scores, product = [], 1.0
    for n in range(max_order):
        product *= (matches[n] + _TINY) / (totals[n] + _SMALL)
        scores.append(product ** (1.0 / (n + 1)))
    ratio = (hyp_length + _TINY) / (ref_length + _SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _tfidf(
    words: Caption, document_frequency: Counter, log_images: float
) -> tuple[list[dict], list[float], int]:
    """Per order: the TF-IDF vector, its norm; and the length (bigram count) of a caption."""
    vectors, norms = [], []
    for n in range(1, MAX_ORDER + 1):
        vector = {
            g: c * (log_images - math.log(max(1.0, document_frequency[g])))
            for g, c in ngrams(words, n).items()
        }
        vectors.append(vector)
        norms.append(math.sqrt(sum(v * v for v in vector.values())))
    return vectors, norms, max(0, len(words) - 1)


def cider_d(
    hypotheses: Sequence[Caption],
    references: Sequence[Sequence[Caption]],
    *,
    per_image: bool = False,
) -> float | tuple[float, list[float]]:
    """Corpus CIDEr-D (the mean over images); with ``per_image`` also each image's score."""
    _check(hypotheses, references)
    document_frequency: Counter = Counter()
    for refs in references:
        document_frequency.update(
            {g for ref in refs for n in range(1, MAX_ORDER + 1) for g in ngrams(ref, n)}
        )
    log_images = math.log(float(len(references)))
    scores = []
    for hyp, refs in zip(hypotheses, references):
        vec, norm, length = _tfidf(hyp, document_frequency, log_images)
        total = np.zeros(MAX_ORDER)
        for ref in refs:
            ref_vec, ref_norm, ref_length = _tfidf(ref, document_frequency, log_images)
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * CIDER_SIGMA**2))
            for n in range(MAX_ORDER):
                dot = sum(min(v, ref_vec[n].get(g, 0.0)) * ref_vec[n].get(g, 0.0)
                          for g, v in vec[n].items())  # fmt: skip
                if norm[n] != 0 and ref_norm[n] != 0:
                    dot /= norm[n] * ref_norm[n]
                total[n] += dot * penalty
        scores.append(float(total.mean()) / len(refs) * 10.0)
    corpus = float(np.mean(scores))
    return (corpus, scores) if per_image else corpus


def grounding(
    words: Sequence[Caption],
    attention: Sequence[np.ndarray],
    objects: Sequence[Sequence[object]],
    *,
    image_size: int,
    vocabulary: dict[str, str],
) -> dict[str, Any]:
    """How often the model looks at the object a word names, against chance.

    For every generated word that names an object attribute (``vocabulary`` maps such words to
    the attribute they name: ``{"red": "colour", "circle": "shape", ...}``), the most-attended cell
    of that step is a **hit** when its square overlaps the box of an object of the image that has
    the attribute (a word naming nothing in the image is a miss). **Chance** is the hit rate of a
    cell drawn uniformly at random: the fraction of cells overlapping such a box; ``area`` is the
    fraction of the image those boxes cover. All three are None when no word names an object.

    Args:
        words: the generated captions.
        attention: per caption, its attention weights ``(T, L)`` (row t: the step emitting word t).
        objects: per image, objects with ``box`` (x0, y0, x1, y1) and the attributes as fields.
        image_size: side of the images in pixels (the grid is sqrt(L) x sqrt(L) over it).
    """
    hits = chances = areas = 0.0
    count = 0
    for caption, weights, objs in zip(words, attention, objects):
        side = int(round(math.sqrt(weights.shape[1])))
        cell = image_size / side
        for t, word in enumerate(caption):
            field = vocabulary.get(word)
            if field is None or t >= len(weights):
                continue
            boxes = [o.box for o in objs if getattr(o, field) == word]
            covered = np.zeros((side, side), dtype=bool)  # cells overlapping a named box
            mask = np.zeros((image_size, image_size), dtype=bool)
            for x0, y0, x1, y1 in boxes:
                mask[y0:y1, x0:x1] = True
                rows = range(int(y0 // cell), min(side, int(math.ceil(y1 / cell))))
                cols = range(int(x0 // cell), min(side, int(math.ceil(x1 / cell))))
                covered[np.ix_(list(rows), list(cols))] = True
            best = int(np.argmax(weights[t]))
            hits += float(covered[best // side, best % side])
            chances += float(covered.mean())
            areas += float(mask.mean())
            count += 1
    if count == 0:
        return {"words": 0, "hit_rate": None, "chance": None, "area": None}
    return {
        "words": count,
        "hit_rate": hits / count,
        "chance": chances / count,
        "area": areas / count,
    }
