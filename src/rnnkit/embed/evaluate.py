"""Evaluate word vectors on analogy questions and word-similarity ratings.

The standard sets are read from the test data inside the installed ``gensim`` package (rnnkit
never ships them): ``questions-words.txt`` (Mikolov et al. 2013: 19,544 analogies in 14
sections), ``wordsim353.tsv`` (Finkelstein et al. 2002) and ``simlex999.txt`` (Hill et al. 2015).

Both evaluations are case-insensitive by default: words are lowercased and each lowercased word
takes the vector of its first (most frequent) spelling, so vectors trained on cased or lowercased
text are scored alike. Questions or pairs with a word the vectors lack are skipped and counted.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.embed.vectors import WordVectors, analogy_scores
from rnnkit.errors import DataError, RnnkitError, require_extra

STANDARD_SETS = {
    "analogy": "questions-words.txt",
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
}


def standard_set_path(name: str) -> Path:
    """Path of a standard evaluation set (a key of ``STANDARD_SETS``) in the installed gensim."""
    if name not in STANDARD_SETS:
        raise ValueError(f"unknown evaluation set {name!r}; expected one of {list(STANDARD_SETS)}")
    require_extra("gensim", "embeddings", "the standard evaluation sets (gensim's test data)")
    spec = importlib.util.find_spec("gensim")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"
    path = path / STANDARD_SETS[name]
    if not path.is_file():
        raise RnnkitError(
            f"gensim is installed but has no {path}; reinstall it: pip install gensim"
        )
    return path


@dataclass
class SectionScore:
    """Analogy accuracy of one section of the question file."""

    name: str  # section title, e.g. "capital-common-countries"
    correct: int  # questions answered correctly
    answered: int  # questions whose four words all have vectors
    skipped: int  # questions with a word the vectors lack

    @property
    def accuracy(self) -> float:
        """Fraction of answered questions answered correctly (0 when none was answered)."""
        return self.correct / self.answered if self.answered else 0.0


@dataclass
class AnalogyScore:
    """Analogy accuracy per section and over all sections."""

    method: str  # "3cosadd" or "3cosmul"
    sections: list[SectionScore] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.sections)

    @property
    def answered(self) -> int:
        return sum(s.answered for s in self.sections)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sections)

    @property
    def accuracy(self) -> float:
        """Overall accuracy over the answered questions."""
        return self.correct / self.answered if self.answered else 0.0


@dataclass
class SimilarityScore:
    """Rank correlation between cosine similarities and human ratings."""

    spearman: float  # Spearman's rho over the pairs with both words known (nan if < 2 pairs)
    pairs: int  # pairs scored
    skipped: int  # pairs with a word the vectors lack


def read_analogies(path: str | os.PathLike) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of an analogy file: ``": title"`` lines, then lines of four words ``a b c d``."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for number, line in _lines(path):
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        parts = line.split()
        if len(parts) != 4:
            raise DataError(f"{path}, line {number}: expected four words 'a b c d', got {line!r}")
        if not sections:
            raise DataError(f"{path}, line {number}: question before the first ': section' line")
        sections[-1][1].append((parts[0], parts[1], parts[2], parts[3]))
    return sections


def read_word_pairs(path: str | os.PathLike) -> list[tuple[str, str, float]]:
    """Rated word pairs: lines ``word1 word2 score`` (tabs or spaces); ``#`` lines are comments."""
    pairs = []
    for number, line in _lines(path):
        if line.startswith("#"):
            continue
        parts = line.split()
        try:
            pairs.append((parts[0], parts[1], float(parts[2])))
        except (IndexError, ValueError):
            raise DataError(
                f"{path}, line {number}: expected 'word1 word2 score', got {line!r}"
            ) from None
    return pairs


def evaluate_analogies(
    vectors: WordVectors,
    path: str | os.PathLike | None = None,
    *,
    method: str = "3cosadd",
    case_insensitive: bool = True,
    batch_size: int = 512,
) -> AnalogyScore:
    """Accuracy on analogy questions ``a b c d``: is ``d`` the top answer to ``a : b :: c : ?``.

    Args:
        vectors: the word vectors.
        path: question file; ``None`` reads ``questions-words.txt`` from gensim.
        method: ``"3cosadd"`` or ``"3cosmul"``; the three query words are never answers.
        case_insensitive: lowercase the questions and the vocabulary (see the module docstring).
        batch_size: questions scored per matrix product.
    """
    path = standard_set_path("analogy") if path is None else path
    vectors = vectors.lowercased() if case_insensitive else vectors
    score = AnalogyScore(method=method)
    for name, questions in read_analogies(path):
        known, skipped = [], 0
        for question in questions:
            words = [w.lower() for w in question] if case_insensitive else question
            if all(w in vectors.index for w in words):
                known.append([vectors.index[w] for w in words])
            else:
                skipped += 1
        correct = 0
        rows = np.array(known, dtype=np.int64).reshape(-1, 4)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            scores = analogy_scores(vectors.unit, batch[:, :3], method=method)  # (Q, n)
            np.put_along_axis(scores, batch[:, :3], -np.inf, axis=1)
            correct += int((scores.argmax(axis=1) == batch[:, 3]).sum())
        score.sections.append(SectionScore(name, correct, len(rows), skipped))
    return score


def evaluate_similarity(
    vectors: WordVectors,
    path: str | os.PathLike | None = None,
    *,
    case_insensitive: bool = True,
) -> SimilarityScore:
    """Spearman correlation of cosine similarity with the human ratings of word pairs.

    Args:
        vectors: the word vectors.
        path: rated pairs; ``None`` reads ``wordsim353.tsv`` from gensim.
        case_insensitive: lowercase the pairs and the vocabulary (see the module docstring).
    """
    path = standard_set_path("wordsim353") if path is None else path
    vectors = vectors.lowercased() if case_insensitive else vectors
    model, human, skipped = [], [], 0
    for a, b, rating in read_word_pairs(path):
        if case_insensitive:
            a, b = a.lower(), b.lower()
        if a in vectors.index and b in vectors.index:
            model.append(vectors.similarity(a, b))
            human.append(rating)
        else:
            skipped += 1
    rho = spearman(np.array(model), np.array(human)) if len(model) >= 2 else float("nan")
    return SimilarityScore(spearman=rho, pairs=len(model), skipped=skipped)


def evaluate_standard(vectors: WordVectors, *, method: str = "3cosadd") -> dict:
    """All three standard sets; a JSON-ready dict (accuracy and rho as fractions)."""
    analogy = evaluate_analogies(vectors, method=method)
    result = {
        "case": vectors.case_rule,  # the sets are lowercased either way (module docstring)
        "analogy": {
            "method": method,
            "accuracy": analogy.accuracy,
            "correct": analogy.correct,
            "answered": analogy.answered,
            "skipped": analogy.skipped,
            "sections": [
                {
                    "name": s.name,
                    "accuracy": s.accuracy,
                    "correct": s.correct,
                    "answered": s.answered,
                    "skipped": s.skipped,
                }
                for s in analogy.sections
            ],
        },
    }
    for name in ("wordsim353", "simlex999"):
        sim = evaluate_similarity(vectors, standard_set_path(name))
        result[name] = {"spearman": sim.spearman, "pairs": sim.pairs, "skipped": sim.skipped}
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties get mean ranks)."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, groups, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(groups, weights=ranks)
    return sums[groups] / counts[groups]


def _lines(path: str | os.PathLike):  # noqa: ANN202 (a generator of (number, line))
    with open(path, encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if line:
                yield number, line
