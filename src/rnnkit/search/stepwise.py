"""Greedy search and sampling: one token per input and step."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.search.checks import check_lengths, check_log_probs, start_tokens
from rnnkit.search.contract import Decoder, Hypothesis
from rnnkit.search.processors import Processor, constraints, process


def greedy(
    decoder: Decoder,
    state: Any,
    bos: int | Tensor,
    eos: int | None,
    max_length: int,
    *,
    min_length: int = 0,
    processors: Sequence[Processor] = (),
    on_token: Callable[[Tensor], None] | None = None,
) -> list[Hypothesis]:
    """Decode by taking the most likely token at every step.

    Args:
        decoder: the model, see :class:`Decoder`.
        state: decoder state holding B rows.
        bos: first token of each input, LongTensor (B,) or an int (B = 1).
        eos: end token, or None to always generate ``max_length`` tokens.
        max_length: the most decoding steps (tokens generated, eos included).
        min_length: tokens that must be generated before eos is allowed.
        processors: constraints applied to every step (see the module docstring).
        on_token: called after every step with the chosen tokens (B,), so a caller can stream
            text; inputs that have already ended receive ``eos``.

    Returns:
        One :class:`Hypothesis` per input, with ``score == log_prob``.
    """
    check_lengths(max_length, min_length)
    chain = constraints(processors, eos, min_length)
    return _generate(decoder, state, bos, eos, max_length, chain, on_token, _argmax)


def sample(
    decoder: Decoder,
    state: Any,
    bos: int | Tensor,
    eos: int | None,
    max_length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    min_length: int = 0,
    processors: Sequence[Processor] = (),
    on_token: Callable[[Tensor], None] | None = None,
) -> list[Hypothesis]:
    """Decode by drawing every token from the model's (reshaped) distribution.

    The distribution at each step is ``softmax(log_probs / temperature)``, restricted to the
    ``top_k`` most likely tokens and then to the smallest set of tokens whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020), renormalised. ``temperature=0`` takes the
    most likely token (greedy search).

    Args:
        temperature: >= 0; below 1 sharpens, above 1 flattens the distribution.
        top_k: keep only the k most likely tokens (None: all).
        top_p: in (0, 1]; keep the smallest most-likely set whose probability reaches it.
        generator: torch random generator, for reproducible samples.
        Other arguments as in :func:`greedy`.

    Returns:
        One :class:`Hypothesis` per input; ``log_prob`` is under the model itself (before
        temperature, top-k and top-p), and ``score == log_prob``.
    """
    check_lengths(max_length, min_length)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    chain = constraints(processors, eos, min_length)
    if temperature == 0:
        return _generate(decoder, state, bos, eos, max_length, chain, on_token, _argmax)

    def draw(log_probs: Tensor) -> Tensor:
        logits = log_probs / temperature  # (N, V)
        if top_k is not None and top_k < logits.size(1):
            kth = logits.topk(top_k, dim=1).values[:, -1:]  # (N, 1)
            logits = logits.masked_fill(logits < kth, -math.inf)
        if top_p is not None and top_p < 1:
            logits = _nucleus(logits, top_p)
        probs = torch.softmax(logits.float(), dim=1)
        # A seeded generator (a CPU one) draws the same samples whatever the model's device.
        where = probs.device if generator is None else generator.device
        drawn = torch.multinomial(probs.to(where), 1, generator=generator)  # (N, 1)
        return drawn.squeeze(1).to(probs.device)

    return _generate(decoder, state, bos, eos, max_length, chain, on_token, draw)


def _argmax(log_probs: Tensor) -> Tensor:
    return log_probs.argmax(dim=1)


def _nucleus(logits: Tensor, top_p: float) -> Tensor:
    """Keep, per row, the smallest set of most likely tokens whose probability reaches ``top_p``."""
    sorted_logits, order = logits.sort(dim=1, descending=True)  # (N, V)
    probs = torch.softmax(sorted_logits.double(), dim=1)
    before = probs.cumsum(dim=1) - probs  # probability of the tokens ranked above each token
    drop_sorted = before >= top_p  # the set already reached top_p without this token
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def _generate(
    decoder: Decoder,
    state: Any,
    bos: int | Tensor,
    eos: int | None,
    max_length: int,
    chain: Sequence[Processor],
    on_token: Callable[[Tensor], None] | None,
    choose: Callable[[Tensor], Tensor],
) -> list[Hypothesis]:
    """The loop shared by greedy search and sampling; ``choose`` picks a token per row.

    Inputs that produced ``eos`` are dropped from the decoder's batch (one ``reorder`` per step
    in which some input ended), so each step only computes the inputs still running.
    """
    tokens = start_tokens(bos)  # (A,) tokens of the A inputs still running
    batch = tokens.numel()
    running = torch.arange(batch, device=tokens.device)  # (A,) their positions among the B
    log_prob: Tensor | None = None  # (B,) summed log-probabilities
    steps: list[Tensor] = []  # one (B,) tensor of chosen tokens per step
    keep_history = any(p.needs_history for p in chain)
    for t in range(max_length):
        log_probs, state = decoder.step(tokens, state)
        check_log_probs(log_probs, tokens.numel())
        if t == 0:
            running = running.to(log_probs.device)
            log_prob = log_probs.new_zeros(batch)
        history = None
        if keep_history:
            history = torch.stack(steps, dim=1)[running] if steps else tokens[:, None][:, :0]
        log_probs = process(chain, log_probs, history, t)
        chosen = choose(log_probs)  # (A,)
        log_prob[running] += log_probs.gather(1, chosen[:, None]).squeeze(1)
        column = torch.full((batch,), -1 if eos is None else eos, dtype=torch.long)
        column = column.to(chosen.device)
        column[running] = chosen  # inputs that already ended get eos
        steps.append(column)
        if on_token is not None:
            on_token(column)
        if eos is not None:
            ended = chosen == eos
            if ended.all():
                break
            if ended.any():
                keep = (~ended).nonzero().squeeze(1)
                running, chosen = running[keep], chosen[keep]
                state = decoder.reorder(state, keep)
        tokens = chosen
    table = torch.stack(steps, dim=1).tolist()  # (B, T)
    results = []
    for row, lp in zip(table, log_prob.tolist()):
        if eos is not None and eos in row:
            row = row[: row.index(eos)]
        results.append(Hypothesis(tokens=row, log_prob=lp, score=lp))
    return results
