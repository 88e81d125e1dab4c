"""Decoding: greedy search, sampling and beam search over one small decoder contract.

Every sequence model in rnnkit (language models, translation decoders, ...) is decoded by the
functions here. The search code knows nothing about models beyond the :class:`Decoder` contract:

* ``step(tokens, state) -> (log_probs, state)`` advances N hypotheses by one token each:
  ``tokens`` is a LongTensor (N,), ``log_probs`` is (N, V) with normalised log-probabilities
  (every entry <= 0, each row log-sum-exp to 0).
* ``reorder(state, index) -> state`` selects (and repeats) hypotheses along the batch dimension:
  row ``i`` of the new state is row ``index[i]`` of the old one.

The state is opaque: any object (tensor, tuple of tensors, dataclass, ...) the decoder understands.

**The batch.** All functions decode B inputs at once. ``bos`` is the first input token of each
hypothesis: a LongTensor (B,), one per input (for a language model continuing a prompt, the last
prompt token of each input), which fixes B; or a plain ``int``, which means B = 1. The state must
hold the same B rows; if it does not, the first ``step`` returns log-probs of another size and the
search raises ``ValueError``.

**Lengths.** ``max_length`` is the number of decoding steps, counting the step that produced
``eos``; ``min_length`` is the number of tokens that must be generated before ``eos`` may be.
``eos=None`` means there is no end token: every input runs to ``max_length`` (free text).
Returned tokens exclude ``bos`` and ``eos``; returned log-probabilities include the ``eos`` step.

**One entry point.** :func:`decode` takes a :class:`SearchOptions` (greedy, sampling or beam
search and their settings, validated once) and returns, for each input, its best hypotheses;
applications call it rather than choosing among :func:`greedy`, :func:`sample` and
:func:`beam_search` themselves.

**Constraints are processors**: small callables ``(log_probs (N, V), history (N, t), step) ->
log_probs`` applied, in order, to every step's log-probabilities before a token is chosen
(``history`` holds each row's generated tokens, or is None for processors that do not ask for
it). :func:`ban_tokens` removes tokens from the model's distribution (renormalised, as if the
model could not produce them: an LM never writes ``<unk>``); :func:`min_length` and
:func:`no_repeat_ngram` are search constraints (the blocked mass is not redistributed).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Decoder",
    "Hypothesis",
    "Processor",
    "SearchOptions",
    "ban_tokens",
    "beam_search",
    "decode",
    "greedy",
    "min_length",
    "no_repeat_ngram",
    "sample",
]

LENGTH_PENALTIES = ("none", "average", "gnmt")


@runtime_checkable
class Decoder(Protocol):
    """What the search functions need from a model (see the module docstring)."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed ``tokens`` (N,) and return ``(log_probs (N, V), new_state)``."""
        ...

    def reorder(self, state: Any, index: Tensor) -> Any:
        """Return the state whose row ``i`` is row ``index[i]`` of ``state``."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sequence."""

    tokens: list[int]  # generated tokens, without bos and eos
    log_prob: float  # summed log-probability of the tokens (and of eos when it ended with one)
    score: float  # log_prob after the length penalty (equal to log_prob for greedy and sample)


# ----------------------------------------------------------------------------------------------
# Constraints as processors


class Processor(Protocol):
    """Reshapes one step's log-probabilities (see the module docstring)."""

    needs_history: bool  # whether it reads ``history`` (the search keeps it only then)

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor: ...


def _fill(log_probs: Tensor, tokens: Sequence[int]) -> Tensor:
    index = torch.tensor(list(tokens), dtype=torch.long, device=log_probs.device)
    return log_probs.index_fill(1, index, -math.inf)


@dataclass(frozen=True)
class ban_tokens:  # lower case: a processor reads as a call, ban_tokens([unk])
    """Never produce ``tokens``: the model's distribution restricted to the other tokens."""

    tokens: tuple[int, ...]
    needs_history = False

    def __init__(self, tokens: Sequence[int]) -> None:
        object.__setattr__(self, "tokens", tuple(int(t) for t in tokens))

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        if not self.tokens:
            return log_probs
        return torch.log_softmax(_fill(log_probs, self.tokens), dim=-1)


@dataclass(frozen=True)
class min_length:
    """No ``eos`` before ``length`` tokens have been generated."""

    eos: int
    length: int
    needs_history = False

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        return _fill(log_probs, [self.eos]) if step < self.length else log_probs


@dataclass(frozen=True)
class no_repeat_ngram:
    """No n-gram of ``size`` tokens occurs twice in a hypothesis.

    A token is banned for a row when the row's last ``size - 1`` tokens followed by it already
    occur in the row.
    """

    size: int
    needs_history = True

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        n = self.size
        length = 0 if history is None else history.size(1)
        if n <= 0 or length < n:
            return log_probs
        windows = history.unfold(1, n, 1)  # (N, t-n+1, n) every n-gram of each row
        suffix = history[:, length - n + 1 :]  # (N, n-1) the row's last n-1 tokens
        match = (windows[:, :, :-1] == suffix[:, None, :]).all(dim=2)  # (N, t-n+1)
        banned = torch.zeros(log_probs.shape, device=log_probs.device)
        banned.scatter_add_(1, windows[:, :, -1], match.to(banned.dtype))
        return log_probs.masked_fill(banned > 0, -math.inf)


def _constraints(
    processors: Sequence[Processor], eos: int | None, min_len: int, ngram: int = 0
) -> list[Processor]:
    """``processors`` followed by the length and n-gram constraints the arguments ask for."""
    chain = list(processors)
    if eos is not None and min_len > 0:
        chain.append(min_length(eos, min_len))
    if ngram > 0:
        chain.append(no_repeat_ngram(ngram))
    return chain


def _process(
    chain: Sequence[Processor], log_probs: Tensor, history: Tensor | None, step: int
) -> Tensor:
    for processor in chain:
        log_probs = processor(log_probs, history, step)
    return log_probs


# ----------------------------------------------------------------------------------------------
# Options and the one entry point


@dataclass(frozen=True)
class SearchOptions:
    """How to decode: greedy search, sampling or beam search, and their settings.

    ``beam_size > 1`` is beam search; otherwise ``sample`` draws tokens, else greedy search.
    Invalid values raise :class:`rnnkit.errors.ConfigError` naming the value.
    """

    beam_size: int = 1  # hypotheses kept per input; 1: one token per step (greedy or sampling)
    sample: bool = False  # draw tokens (with beam_size 1) instead of taking the most likely
    temperature: float = 1.0  # sampling: >= 0, below 1 sharpens; 0 takes the most likely token
    top_k: int | None = None  # sampling: only the k most likely tokens
    top_p: float | None = None  # sampling: nucleus threshold in (0, 1]
    seed: int | None = None  # sampling: seed of the generator (None: nondeterministic)
    length_penalty: str = "none"  # beam ranking: "none", "average" or "gnmt"
    alpha: float = 0.6  # exponent of the "gnmt" penalty
    n_best: int = 1  # hypotheses returned per input (beam search; at most beam_size)
    min_length: int = 0  # tokens generated before eos is allowed
    no_repeat_ngram: int = 0  # if > 0, no n-gram of this size occurs twice (beam search)

    def __post_init__(self) -> None:
        from rnnkit.errors import ConfigError

        problems = [
            (self.beam_size < 1, f"beam size must be >= 1, got {self.beam_size}"),
            (
                not 1 <= self.n_best <= self.beam_size,
                f"n-best must be between 1 and the beam size {self.beam_size}, got {self.n_best}",
            ),
            (
                self.length_penalty not in LENGTH_PENALTIES,
                f"length penalty must be one of {', '.join(LENGTH_PENALTIES)}, "
                f"got {self.length_penalty!r}",
            ),
            (
                not self.temperature >= 0 or math.isinf(self.temperature),
                f"temperature must be a finite number >= 0, got {self.temperature}",
            ),
            (
                self.top_k is not None and self.top_k < 1,
                f"top-k must be a positive integer, got {self.top_k}",
            ),
            (
                self.top_p is not None and not 0 < self.top_p <= 1,
                f"top-p must be in (0, 1], got {self.top_p}",
            ),
            (self.min_length < 0, f"min length must be >= 0, got {self.min_length}"),
            (
                self.no_repeat_ngram < 0,
                f"no-repeat n-gram must be >= 0, got {self.no_repeat_ngram}",
            ),
        ]
        for bad, message in problems:
            if bad:
                raise ConfigError(message)

    @property
    def method(self) -> str:
        """``"beam"``, ``"sample"`` or ``"greedy"``."""
        return "beam" if self.beam_size > 1 else "sample" if self.sample else "greedy"


def decode(
    decoder: Decoder,
    state: Any,
    bos: int | Tensor,
    eos: int | None,
    max_length: int,
    options: SearchOptions | None = None,
    *,
    processors: Sequence[Processor] = (),
    on_token: Callable[[Tensor], None] | None = None,
) -> list[list[Hypothesis]]:
    """Decode B inputs as ``options`` say; for each input, its best hypotheses (best first).

    Greedy search and sampling give one hypothesis per input; beam search up to ``n_best``.
    ``processors`` constrain every step (see the module docstring); ``on_token`` streams the
    tokens of greedy search and sampling (beam search knows its result only at the end).
    """
    options = options or SearchOptions()
    common = {"min_length": options.min_length, "processors": processors}
    if options.method == "beam":
        return beam_search(
            decoder, state, bos, eos, options.beam_size, max_length,
            length_penalty=options.length_penalty, alpha=options.alpha, n_best=options.n_best,
            no_repeat_ngram_size=options.no_repeat_ngram, **common,
        )  # fmt: skip
    if options.method == "sample":
        generator = None if options.seed is None else torch.Generator().manual_seed(options.seed)
        found = sample(
            decoder, state, bos, eos, max_length, temperature=options.temperature,
            top_k=options.top_k, top_p=options.top_p, generator=generator, on_token=on_token,
            **common,
        )  # fmt: skip
    else:
        found = greedy(decoder, state, bos, eos, max_length, on_token=on_token, **common)
    return [[h] for h in found]


# ----------------------------------------------------------------------------------------------
# Greedy search and sampling: one token per input and step


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
    _check_lengths(max_length, min_length)
    chain = _constraints(processors, eos, min_length)
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
    _check_lengths(max_length, min_length)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    chain = _constraints(processors, eos, min_length)
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
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

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
    tokens = _start_tokens(bos)  # (A,) tokens of the A inputs still running
    batch = tokens.numel()
    running = torch.arange(batch, device=tokens.device)  # (A,) their positions among the B
    log_prob: Tensor | None = None  # (B,) summed log-probabilities
    steps: list[Tensor] = []  # one (B,) tensor of chosen tokens per step
    keep_history = any(p.needs_history for p in chain)
    for t in range(max_length):
        log_probs, state = decoder.step(tokens, state)
        _check_log_probs(log_probs, tokens.numel())
        if t == 0:
            running = running.to(log_probs.device)
            log_prob = log_probs.new_zeros(batch)
        history = None
        if keep_history:
            history = torch.stack(steps, dim=1)[running] if steps else tokens[:, None][:, :0]
        log_probs = _process(chain, log_probs, history, t)
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


# ----------------------------------------------------------------------------------------------
# Beam search


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
    _check_lengths(max_length, min_length)
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

    chain = _constraints(processors, eos, min_length, no_repeat_ngram_size)

    def penalty(n: int) -> float:
        if length_penalty == "average":
            return float(max(n, 1))
        if length_penalty == "gnmt":
            return ((5 + n) / 6) ** alpha
        return 1.0

    tokens = _start_tokens(bos)  # (A*W,) last token of every live hypothesis
    batch = tokens.numel()
    inputs = list(range(batch))  # the A inputs still running, as positions among the B
    scores: Tensor | None = None  # (A, W) log-probabilities of the live hypotheses
    history = torch.zeros(batch, 1, 0, dtype=torch.long)  # (A, W, t) their tokens
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for t in range(max_length):
        log_probs, state = decoder.step(tokens, state)
        _check_log_probs(log_probs, tokens.numel())
        device = log_probs.device
        if scores is None:
            scores = log_probs.new_zeros(batch, 1)
            history = history.to(device)
        n_inputs, width = scores.shape
        vocab = log_probs.size(1)
        log_probs = _process(chain, log_probs, history.flatten(0, 1), t)
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


# ----------------------------------------------------------------------------------------------
# Argument checks


def _check_lengths(max_length: int, min_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if min_length < 0:
        raise ValueError(f"min_length must be >= 0, got {min_length}")
    if max_length < min_length:
        raise ValueError(f"max_length={max_length} is below min_length={min_length}")


def _start_tokens(bos: int | Tensor) -> Tensor:
    if isinstance(bos, Tensor):
        if bos.dim() != 1 or bos.numel() == 0 or bos.dtype != torch.long:
            raise ValueError(
                f"bos must be an int or a non-empty LongTensor (B,), got a {bos.dtype} tensor "
                f"of shape {tuple(bos.shape)}"
            )
        return bos
    if isinstance(bos, numbers.Integral):
        return torch.tensor([int(bos)])
    raise TypeError(f"bos must be an int or a LongTensor (B,), got {type(bos).__name__}")


def _check_log_probs(log_probs: Tensor, n: int) -> None:
    if log_probs.dim() != 2 or log_probs.size(0) != n:
        raise ValueError(
            f"decoder.step returned log_probs of shape {tuple(log_probs.shape)} for {n} tokens; "
            f"expected ({n}, V); pass bos as a LongTensor (B,), one token per input of the state"
        )
