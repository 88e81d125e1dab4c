"""Word and character error rates from a Levenshtein alignment written here.

``error_rate(refs, hyps)`` = (substitutions + deletions + insertions) / reference length, summed
over all utterances before dividing (as jiwer and NIST's sclite do).
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """The fewest substitutions, deletions and insertions that turn ``ref`` into ``hyp``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rate(refs: Sequence[Sequence[object]], hyps: Sequence[Sequence[object]]) -> float:
    """Total edits over total reference length (0 for empty references and outputs)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    length = sum(len(r) for r in refs)
    return edits / length if length else float(edits > 0)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate of transcripts (words split on whitespace)."""
    return error_rate([r.split() for r in refs], [h.split() for h in hyps])


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate (spaces count as characters)."""
    return error_rate(list(refs), list(hyps))
