"""Attention over a sequence of encoder states, with padding masked out.

A decoder state (the *query*) scores every encoder state (the *keys*, which are also the values);
the softmax of the scores over the valid positions weights the keys into a context vector:

    a = softmax over the valid positions s of score(q, k_s),     c = sum_s a_s k_s

Scores (``score=``):

* ``"additive"`` (Bahdanau et al. 2014, appendix A.1.2): ``v^T tanh(W q + U k)``
* ``"dot"`` (Luong et al. 2015, eq. 8): ``q^T k``; needs ``query_size == key_size``
* ``"general"`` (Luong et al. 2015, eq. 8): ``q^T W k``
* ``"concat"`` (Luong et al. 2015, eq. 8): ``v^T tanh(W [q; k])``, the additive score written
  with one matrix over the concatenation (the same function class, parameterised as in the paper)

Positions where ``mask`` is False get weight exactly zero, so padding never changes a result.
The key-only part of a score (``U k``, ``W k``, or the key half of concat's ``W``) does not depend
on the query: ``precompute`` computes it once per source sentence, and a decoder passes it to
every step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SCORES = ("additive", "dot", "general", "concat")


class Attention(nn.Module):
    """Attention of one query vector per batch row over that row's keys.

    Args:
        query_size: size of a query vector ``H_q``.
        key_size: size of a key vector ``H_k`` (also the size of the context).
        score: ``"additive"``, ``"dot"``, ``"general"`` or ``"concat"`` (see the module docstring).
        attention_size: hidden size ``A`` of the additive and concat scores (0: ``query_size``).

    Inputs: query, keys, mask, projected
        * **query**: ``(N, H_q)``, or ``(N, T, H_q)`` for T queries per row at once
        * **keys**: ``(N, S, H_k)``
        * **mask**: ``(N, S)`` bool, True at real (non-padding) positions; None means all real.
          Every row needs at least one real position.
        * **projected**: optional ``precompute(keys)``, to avoid recomputing it at every step.

    Outputs: context, weights
        * **context**: ``(N, H_k)`` (or ``(N, T, H_k)``), the weighted sums of the keys.
        * **weights**: ``(N, S)`` (or ``(N, T, S)``), non-negative, summing to 1 over the source,
          zero where masked.
    """

    def __init__(
        self, query_size: int, key_size: int, *, score: str = "general", attention_size: int = 0
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score={score!r} is not one of {', '.join(SCORES)}")
        for name, value in (("query_size", query_size), ("key_size", key_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if score == "dot" and query_size != key_size:
            raise ValueError(
                f"dot attention needs query_size == key_size, got {query_size} and {key_size}; "
                "use score='general'"
            )
        self.query_size, self.key_size, self.score = query_size, key_size, score
        self.attention_size = attention_size or query_size
        if score == "additive":
            self.query_proj = nn.Linear(query_size, self.attention_size, bias=False)  # W
            self.key_proj = nn.Linear(key_size, self.attention_size, bias=False)  # U
            self.v = nn.Linear(self.attention_size, 1, bias=False)
        elif score == "general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)  # W, applied to keys
        elif score == "concat":
            self.concat_proj = nn.Linear(query_size + key_size, self.attention_size, bias=False)
            self.v = nn.Linear(self.attention_size, 1, bias=False)

    def precompute(self, keys: Tensor) -> Tensor | None:
        """The query-independent part of the scores for ``keys`` ``(N, S, H_k)``, or None."""
        if self.score in ("additive", "general"):
            return self.key_proj(keys)  # (N, S, A) or (N, S, H_q)
        if self.score == "concat":
            # W [q; k] = W_q q + W_k k: the key half of the concatenation, once per sentence
            key_weight = self.concat_proj.weight[:, self.query_size :]  # (A, H_k)
            return keys @ key_weight.T  # (N, S, A)
        return None

    def scores(self, query: Tensor, keys: Tensor, projected: Tensor | None = None) -> Tensor:
        """Unnormalised scores ``(N, T, S)`` of queries ``(N, T, H_q)`` against ``(N, S, H_k)``."""
        if projected is None:
            projected = self.precompute(keys)
        if self.score == "dot":
            return torch.bmm(query, keys.transpose(1, 2))
        if self.score == "general":
            return torch.bmm(query, projected.transpose(1, 2))
        if self.score == "additive":
            query_part = self.query_proj(query)  # (N, T, A)
        else:
            query_part = query @ self.concat_proj.weight[:, : self.query_size].T  # (N, T, A)
        hidden = torch.tanh(projected.unsqueeze(1) + query_part.unsqueeze(2))  # (N, T, S, A)
        return self.v(hidden).squeeze(3)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor | None = None,
        projected: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        single = query.dim() == 2
        if query.dim() not in (2, 3) or keys.dim() != 3 or keys.size(0) != query.size(0):
            raise ValueError(
                f"expected query (N, H_q) or (N, T, H_q) and keys (N, S, H_k), got "
                f"{tuple(query.shape)} and {tuple(keys.shape)}"
            )
        if single:
            query = query.unsqueeze(1)
        scores = self.scores(query, keys, projected)  # (N, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=2)  # (N, T, S); exactly 0 where masked
        context = torch.bmm(weights, keys)  # (N, T, H_k)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}, score={self.score!r}"
