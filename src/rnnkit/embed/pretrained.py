"""Start a model's embedding layer from pretrained word vectors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rnnkit.embed.vectors import WordVectors

logger = logging.getLogger(__name__)


@dataclass
class Coverage:
    """How many vocabulary rows of an embedding were initialised from word vectors."""

    exact: int  # rows whose token is in the vectors as is
    lowercase: int  # further rows matched through the lowercased token (lowercased vectors)
    total: int  # rows in the vocabulary
    missing: list[str] = field(default_factory=list)  # tokens without a vector (kept as they were)
    case_rule: str = ""  # the vectors' case folding and where it came from (WordVectors.case_rule)

    @property
    def matched(self) -> int:
        return self.exact + self.lowercase

    @property
    def fraction(self) -> float:
        """Share of the vocabulary initialised from the vectors."""
        return self.matched / self.total if self.total else 0.0

    def __str__(self) -> str:
        text = f"{self.matched} of {self.total} vocabulary words ({self.fraction:.1%}) have vectors"
        if self.lowercase:
            text += f" ({self.lowercase} through their lowercase form)"
        if self.case_rule and (self.lowercase or any(t != t.lower() for t in self.missing)):
            text += f" [{self.case_rule.replace('queries are', 'tokens are')}]"
        if self.missing:
            shown = ", ".join(repr(t) for t in self.missing[:5])
            more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
            text += f"; no vector for {shown}{more}"
        return text


def load_into_embedding(
    embedding: torch.nn.Embedding,
    vocab_words: Sequence[str],
    vectors: WordVectors,
    *,
    freeze: bool = False,
) -> Coverage:
    """Copy pretrained vectors into the rows of ``embedding`` whose token has one.

    Each token is looked up as it is, then, if the vectors were trained on lowercased text
    (recorded with them, else detected: :attr:`WordVectors.lowercase`), lowercased. Rows without a
    vector (special tokens such as ``<unk>``, rare words) keep their current values, as does the
    ``padding_idx`` row.

    Args:
        embedding: the layer, with ``num_embeddings == len(vocab_words)`` and
            ``embedding_dim == vectors.dim``.
        vocab_words: the token of each row, in id order.
        vectors: the pretrained word vectors.
        freeze: stop gradients to the whole embedding matrix (``requires_grad = False``).

    Returns:
        the :class:`Coverage` of the vocabulary (also logged).
    """
    if embedding.embedding_dim != vectors.dim:
        raise ValueError(
            f"mismatched dimensions: the embedding has {embedding.embedding_dim} columns but the "
            f"word vectors have {vectors.dim}; build the model with embedding size {vectors.dim}"
        )
    if embedding.num_embeddings != len(vocab_words):
        raise ValueError(
            f"the embedding has {embedding.num_embeddings} rows but the vocabulary has "
            f"{len(vocab_words)} words"
        )
    rows, sources = [], []
    exact = lowercase = 0
    missing = []
    for row, token in enumerate(vocab_words):
        if row == embedding.padding_idx:
            continue
        key = vectors.key(token)
        if key is None:
            missing.append(token)
            continue
        exact += key == token
        lowercase += key != token
        rows.append(row)
        sources.append(vectors.index[key])
    with torch.no_grad():
        weight = embedding.weight
        values = torch.from_numpy(vectors.vectors[sources]).to(weight.dtype, copy=True)
        weight[torch.tensor(rows, dtype=torch.long)] = values.to(weight.device)
    embedding.weight.requires_grad_(not freeze)
    coverage = Coverage(
        exact=exact, lowercase=lowercase, total=len(vocab_words), missing=missing,
        case_rule=vectors.case_rule,
    )  # fmt: skip
    logger.info("pretrained embeddings: %s", coverage)
    return coverage


def start_embedding(
    name: str,
    embedding: torch.nn.Embedding,
    vocab_words: Sequence[str],
    vectors: WordVectors,
    *,
    freeze: bool,
    report: Callable[[str], None],
) -> Coverage:
    """:func:`load_into_embedding`, then one line to ``report`` saying how much it covered."""
    coverage = load_into_embedding(embedding, vocab_words, vectors, freeze=freeze)
    frozen = " (frozen)" if freeze else ""
    report(f"{name} embeddings from word vectors{frozen}: {coverage}")
    return coverage
