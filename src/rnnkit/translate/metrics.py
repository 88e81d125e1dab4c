"""Translation quality: BLEU and chrF (sacrebleu, a core dependency) and placeholder fidelity."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from rnnkit.translate.tokens import placeholders


def corpus_scores(
    sources: Sequence[str], outputs: Sequence[str], references: Sequence[str], *, lang: str
) -> dict[str, float]:
    """BLEU, chrF and placeholder fidelity of ``outputs`` against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu_tokenizer = (
        "zh" if lang.startswith("zh") else "char" if lang[:2] in ("ja", "ko") else "13a"
    )
    bleu = BLEU(tokenize=bleu_tokenizer).corpus_score(list(outputs), [list(references)])
    chrf = CHRF().corpus_score(list(outputs), [list(references)])
    with_placeholders = [i for i, s in enumerate(sources) if placeholders(s)]

    def kept(texts: Sequence[str]) -> float:
        if not with_placeholders:
            return float("nan")
        ok = sum(
            not collections.Counter(placeholders(sources[i]))
            - collections.Counter(placeholders(texts[i]))
            for i in with_placeholders
        )
        return ok / len(with_placeholders)

    return {
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "placeholders_kept": kept(outputs),
        "placeholders_kept_reference": kept(references),
        "sentences_with_placeholders": len(with_placeholders),
    }
