"""Batched beam search with length penalties, n-best lists and exact early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.limits import check_decoding, state_bytes
from rnnkit.search.checks import check_lengths, check_log_probs, start_tokens
from rnnkit.search.contract import Decoder, Hypothesis
from rnnkit.search.processors import Processor, constraints, process
from rnnkit.search.settings import LENGTH_PENALTIES


def beam_search(
    decoder: Decoder,
    state: Any,
    bos: int | Tensor,
    eos: int | None,
    beam_size: int,
    max_length: int,
    *,
    min_length: int = 0,
    length_penalty: str = "none",
    alpha: float = 0.6,
    n_best: int = 1,
    no_repeat_ngram_size: int = 0,
    processors: Sequence[Processor] = (),
) -> list[list[Hypothesis]]:
    """Find the best sequences of every input with beam search.

    At each step, every live hypothesis of an input is extended by every token; the ``beam_size``
    best extensions by log-probability are kept. Among the ``beam_size`` best, those ending in
    ``eos`` are finished (and never extended again); the beam is refilled with the next best
    extensions that do not end in ``eos``, so it stays ``beam_size`` wide. All live hypotheses of
    all inputs go through one ``decoder.step`` and one ``decoder.reorder`` per step.

    Finished hypotheses are ranked by ``score = log_prob / lp(n)`` with ``n`` the number of
    generated tokens (eos not counted) and ``lp`` the length penalty:

    * ``"none"``: ``lp(n) = 1``;
    * ``"average"``: ``lp(n) = max(n, 1)`` (mean log-probability per token);
    * ``"gnmt"``: ``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al. 2016).

    **Stopping.** An input stops when it has ``n_best`` finished hypotheses and no live hypothesis
    can still beat the ``n_best``-th: a live hypothesis with log-probability ``L`` can only lose
    log-probability (log-probs are <= 0), and will end with between ``max(n, min_length)`` and
    ``max_length`` tokens, so its final score is at most ``max(L / lp(lo), L / lp(hi))`` (``lp`` is
    monotonic and ``L <= 0``). This bound is sound for every penalty; for ``"none"`` it is the
    usual "best live log-prob is below the n-th finished score". At ``max_length`` the live
    hypotheses are finished without ``eos``. An input with no live hypothesis left (all blocked)
    also stops, possibly with fewer than ``n_best`` hypotheses.

    Args:
        decoder: the model, see :class:`Decoder`.
        state: decoder state holding B rows, one per input.
        bos: first token of each input, LongTensor (B,) or an int (B = 1).
        eos: end token, or None (every hypothesis runs to ``max_length``).
        beam_size: hypotheses kept per input (>= 1).
        max_length: the most decoding steps (tokens generated, eos included).
        min_length: tokens that must be generated before eos is allowed.
        length_penalty: ``"none"``, ``"average"`` or ``"gnmt"``.
        alpha: exponent of the ``"gnmt"`` penalty.
        n_best: hypotheses returned per input (1 <= n_best <= beam_size).
        no_repeat_ngram_size: if > 0, no n-gram of this size occurs twice in a hypothesis.
        processors: constraints applied to every step (see the module docstring).

    Returns:
        For each of the B inputs, up to ``n_best`` hypotheses, best score first.
    """
    check_lengths(max_length, min_length)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size={beam_size}, got {n_best}")
    if length_penalty not in LENGTH_PENALTIES:
        raise ValueError(
            f"length_penalty must be one of {LENGTH_PENALTIES}, got {length_penalty!r}"
        )
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size}")

    chain = constraints(processors, eos, min_length, no_repeat_ngram_size)

    def penalty(n: int) -> float:
        if length_penalty == "average":
            return float(max(n, 1))
        if length_penalty == "gnmt":
            return ((5 + n) / 6) ** alpha
        return 1.0

    tokens = start_tokens(bos)  # (A*W,) last token of every live hypothesis
    batch = tokens.numel()
    inputs = list(range(batch))  # the A inputs still running, as positions among the B
    scores: Tensor | None = None  # (A, W) log-probabilities of the live hypotheses
    history = torch.zeros(batch, 1, 0, dtype=torch.long)  # (A, W, t) their tokens
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for t in range(max_length):
        log_probs, state = decoder.step(tokens, state)
        check_log_probs(log_probs, tokens.numel())
        if t == 0:  # the vocabulary and the state are known now; nothing is beam_size wide yet
            check_decoding(
                beam_size, max_length, inputs=batch, state_size=state_bytes(state) // batch,
                vocab_size=log_probs.size(1),
            )  # fmt: skip
        device = log_probs.device
        if scores is None:
            scores = log_probs.new_zeros(batch, 1)
            history = history.to(device)
        n_inputs, width = scores.shape
        vocab = log_probs.size(1)
        log_probs = process(chain, log_probs, history.flatten(0, 1), t)
        candidates = (scores[:, :, None] + log_probs.view(n_inputs, width, vocab)).flatten(1)
        k = min(beam_size if eos is None else 2 * beam_size, width * vocab)
        top_scores, top_index = candidates.topk(k, dim=1)  # (A, k), best first
        top_beam, top_token = top_index // vocab, top_index % vocab

        # Finish the hypotheses that end in eos among the beam_size best extensions.
        is_eos = top_token == (-1 if eos is None else eos)  # (A, k)
        rank = torch.arange(k, device=device)
        ends = is_eos & (rank < beam_size) & (top_scores > -math.inf)
        i, j = ends.nonzero().unbind(1)  # (E,) input and rank of each ended hypothesis
        ended = zip(i.tolist(), history[i, top_beam[i, j]].tolist(), top_scores[i, j].tolist())
        for row, words, lp in ended:
            finished[inputs[row]].append(Hypothesis(words, lp, lp / penalty(len(words))))

        keep, scores = _refill(top_scores, is_eos, beam_size)  # (A, W')
        source = top_beam.gather(1, keep)  # (A, W') slot each new hypothesis extends
        last = top_token.gather(1, keep)  # (A, W')
        history = torch.cat(
            [history.gather(1, source[:, :, None].expand(-1, -1, t)), last[:, :, None]], dim=2
        )

        if t == max_length - 1:
            _finish_live(finished, inputs, scores, history, penalty(t + 1))
            break
        # With no eos, nothing finishes before max_length: only inputs with no live hypothesis stop.
        lengths = (max(t + 1, min_length), max_length) if eos is not None else None
        done = _input_done(finished, inputs, scores, n_best, penalty, lengths)
        if done.all():
            break
        alive = (~done).nonzero().squeeze(1)  # (A',)
        rows = (alive[:, None] * width + source[alive]).flatten()  # rows of the old state
        state = decoder.reorder(state, rows)
        tokens = last[alive].flatten()
        scores, history = scores[alive], history[alive]
        inputs = [inputs[a] for a in alive.tolist()]
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def _refill(top_scores: Tensor, is_eos: Tensor, beam_size: int) -> tuple[Tensor, Tensor]:
    """Choose the next beam of each input: its beam_size best extensions that do not end in eos.

    Takes the (A, k) best extensions, best first, and returns the chosen ones' ranks (A, W) and
    scores (A, W). W <= beam_size is just wide enough for the input with the most valid
    extensions; other inputs' spare slots score -inf and repeat their slot 0 (a valid hypothesis
    when the input has any), so that no row the decoder sees extends eos.
    """
    k = top_scores.size(1)
    rank = torch.arange(k, device=top_scores.device)
    order = (is_eos.long() * k + rank).argsort(dim=1)[:, :beam_size]  # non-eos first, best first
    scores = top_scores.gather(1, order).masked_fill(is_eos.gather(1, order), -math.inf)
    valid = scores > -math.inf  # (A, W); valid slots come first in each row
    width = max(int(valid.sum(dim=1).max()), 1)
    order, scores, valid = order[:, :width], scores[:, :width], valid[:, :width]
    return torch.where(valid, order, order[:, :1]), scores


def _finish_live(
    finished: list[list[Hypothesis]],
    inputs: list[int],
    scores: Tensor,
    history: Tensor,
    penalty: float,
) -> None:
    """Finish every valid live hypothesis without eos (the search reached max_length)."""
    for a, (row_scores, row_tokens) in enumerate(zip(scores.tolist(), history.tolist())):
        for lp, words in zip(row_scores, row_tokens):
            if lp > -math.inf:
                finished[inputs[a]].append(Hypothesis(words, lp, lp / penalty))


def _input_done(
    finished: list[list[Hypothesis]],
    inputs: list[int],
    scores: Tensor,
    n_best: int,
    penalty: Callable[[int], float],
    lengths: tuple[int, int] | None,
) -> Tensor:
    """Which inputs cannot improve their n_best finished hypotheses any more, as a bool (A,).

    ``lengths`` is the least and the most number of tokens a live hypothesis can end with, or
    None when no live hypothesis can finish before max_length.
    """
    nth = []
    for b in inputs:
        hyps = finished[b]
        hyps.sort(key=lambda h: -h.score)
        del hyps[n_best:]  # only the n_best best can ever be returned
        nth.append(hyps[-1].score if len(hyps) == n_best else -math.inf)
    # Compare in float64, like the finished scores, so rounding cannot stop an input early.
    nth_score = torch.tensor(nth, dtype=torch.float64, device=scores.device)  # (A,)
    best = scores.max(dim=1).values.double()  # (A,) log-prob of the best live hypothesis (<= 0)
    if lengths is None:
        return best == -math.inf
    # L <= 0 can only decrease and lp is monotonic: the best final score is L / lp at an end.
    bound = torch.maximum(best / penalty(lengths[0]), best / penalty(lengths[1]))
    return bound <= nth_score
