"""CTC decoding: frame posteriors in, hypotheses out.

- :func:`greedy_decode`: the best class of every frame, repeats merged, blanks dropped (the best
  *path*, not the best label sequence, but close to it for a peaky CTC model).
- :func:`prefix_beam_search`: CTC prefix beam search (Graves 2012, 7.5; Hannun, Maas, Jurafsky and
  Ng 2014, "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional
  Recurrent DNNs"). A hypothesis is a label *prefix*; its acoustic probability is split into the
  paths that end in a blank (``p_b``) and those that end in its last label (``p_nb``), so all the
  alignments of one prefix are summed, not just the best one. Its score is::

      log(p_b + p_nb) + alpha * log P_lm(prefix) + beta * len(prefix) + hotword bonus

  with an optional character language model (:class:`LMFusion`, any model with the decoder
  contract ``step(tokens, state) -> (log_probs, state)``, ``reorder(state, index)`` of
  :mod:`rnnkit.search`; shallow fusion), an insertion bonus ``beta`` per character, and
  :class:`Words` to boost (hotwords) or constrain (a lexicon) the words.
- :func:`forced_align`: the most probable alignment (Viterbi) of a given text to the frames; word
  timings come from it (:func:`word_spans`).

Classes are integers; class 0 is usually the blank. ``log_probs`` is (T, C), one utterance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.limits import check_decoding, state_bytes

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Hypothesis:
    """One transcription of an utterance."""

    tokens: tuple[int, ...]  # the classes, blanks and repeats removed
    score: float  # what the search ranked by (acoustic + weighted LM + bonuses)
    acoustic: float  # log p(tokens | audio), summed over the alignments the beam kept
    lm: float = 0.0  # log P_lm(tokens) (0 without a language model)


def greedy_decode(log_probs: Tensor, blank: int = 0) -> Hypothesis:
    """The best path, collapsed: ``argmax`` per frame, repeats merged, blanks dropped.

    The score is the best path's log-probability (a lower bound of the sequence's)."""
    best, path = log_probs.max(dim=-1)  # (T,), (T,)
    tokens, previous = [], None
    for k in path.tolist():
        if k != previous and k != blank:
            tokens.append(k)
        previous = k
    total = float(best.sum())
    return Hypothesis(tuple(tokens), total, total)


@dataclass
class Words:
    """Words to boost or to require, over an alphabet whose ``space`` class separates words.

    Args:
        alphabet: the text of each class (the blank's entry is ignored).
        hotwords: words that earn ``weight`` per character, also while partly spoken.
        lexicon: if given, every finished word must be one of these (and a partial word a
            prefix of one); other hypotheses are dropped.
        weight: the bonus per character of a hotword (log-probability units).
    """

    alphabet: Sequence[str]
    hotwords: Sequence[str] = ()
    lexicon: Sequence[str] | None = None
    weight: float = 2.0
    space: str = " "
    _hot_prefixes: set[str] = field(init=False, repr=False)
    _lexicon_prefixes: set[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hot_prefixes = {w[:i] for w in self.hotwords for i in range(1, len(w) + 1)}
        self._lexicon_prefixes = (
            None
            if self.lexicon is None
            else {w[:i] for w in self.lexicon for i in range(len(w) + 1)}
        )

    def score(self, tokens: tuple[int, ...], *, final: bool) -> float:
        """The bonus of ``tokens`` (-inf when the lexicon forbids it)."""
        text = "".join(self.alphabet[k] for k in tokens)
        words = text.split(self.space)
        finished, partial = (words, "") if final else (words[:-1], words[-1])
        bonus = sum(self.weight * len(w) for w in finished if w in self.hotwords)
        if partial in self._hot_prefixes:
            bonus += self.weight * len(partial)
        if self._lexicon_prefixes is not None:
            lexicon = set(self.lexicon or ())
            if any(w and w not in lexicon for w in finished) or (
                partial not in self._lexicon_prefixes
            ):
                return NEG_INF
        return bonus


class LMFusion:
    """A language model over (some of) the acoustic classes, for shallow fusion.

    Args:
        model: a decoder (``step``/``reorder`` as in :mod:`rnnkit.search`), in eval mode.
        token_of: for each acoustic class, the LM's token id (None: the LM does not score it).
        start: the LM token fed first (the context before the utterance, e.g. a newline).
        end: the LM token that ends an utterance (scored once at the end: it penalises
            hypotheses that stop in the middle of a word); None for no end score.
    """

    def __init__(
        self, model: Any, token_of: Sequence[int | None], start: int, end: int | None = None
    ) -> None:
        self.model = model
        self.token_of = list(token_of)
        self.start = start
        self.end = end

    @torch.no_grad()
    def begin(self) -> tuple[list[float], Any]:
        """``(log-probabilities of the next token (V,), state)`` after the start token."""
        log_probs, state = self.model.step(torch.tensor([self.start]), None)
        return log_probs[0].tolist(), state

    @torch.no_grad()
    def advance(self, parents: list[Any], classes: list[int]) -> list[tuple[list[float], Any]]:
        """Step each parent state (single-row) by the LM token of its class, all in one batch."""
        state = _cat_states(parents)
        tokens = torch.tensor([self.token_of[k] for k in classes])
        log_probs, state = self.model.step(tokens, state)
        rows = log_probs.tolist()  # Python floats: the search reads them one at a time
        return [(rows[i], self.model.reorder(state, torch.tensor([i]))) for i in range(len(rows))]


def _cat_states(states: list[Any]) -> Any:
    """Single-row states (tensors or tuples of tensors, batch in dim 1) joined into one batch."""
    first = states[0]
    if isinstance(first, tuple):
        return tuple(torch.cat([s[i] for s in states], dim=1) for i in range(len(first)))
    return torch.cat(states, dim=1)


@dataclass
class _Beam:
    """A prefix in the beam: its acoustic log-probabilities and its LM context."""

    p_blank: float = NEG_INF  # log p of the paths ending in blank
    p_label: float = NEG_INF  # log p of the paths ending in the prefix's last label
    lm: float = 0.0  # log P_lm(prefix)
    lm_next: list[float] | None = None  # the LM's log-probabilities of the next token
    lm_state: Any = None
    pending: tuple[_Beam, int] | None = None  # (parent, class) whose LM step is still to run

    @property
    def acoustic(self) -> float:
        return _logadd(self.p_blank, self.p_label)


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


PY_FLOAT_BYTES = 32  # a Python float in a list (24-byte object + 8-byte pointer)


def prefix_beam_search(
    log_probs: Tensor,
    *,
    beam: int = 8,
    nbest: int = 1,
    blank: int = 0,
    lm: LMFusion | None = None,
    alpha: float = 0.5,
    beta: float = 0.0,
    words: Words | None = None,
    prune: float = -12.0,
) -> list[Hypothesis]:
    """CTC prefix beam search; returns the ``nbest`` best hypotheses, best first.

    Args:
        log_probs: (T, C) per-frame log-probabilities of one utterance.
        beam: prefixes kept after every frame.
        nbest: hypotheses returned (at most ``beam``).
        blank: the blank class.
        lm: a language model for shallow fusion, weighted by ``alpha``.
        alpha: weight of the LM's log-probability.
        beta: bonus per emitted character (balances the LM's preference for short outputs).
        words: hotwords to boost and/or a lexicon to obey.
        prune: classes whose log-probability at a frame is below this are not tried there
            (the best class always is).

    With ``beam=1`` and no LM or words this is greedy decoding except where two paths of the
    same prefix outweigh the best path; with a beam wide enough to keep every prefix and
    ``prune=-inf``, each prefix's ``acoustic`` is exactly ``log p(prefix | audio)``.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (T, C), got shape {tuple(log_probs.shape)}")
    if beam < 1 or nbest < 1:
        raise ConfigError(f"beam and nbest must be >= 1, got {beam} and {nbest}")
    root = _Beam(p_blank=0.0)
    state_size = 0
    if lm is not None:
        root.lm_next, root.lm_state = lm.begin()
        # Each prefix keeps the LM's state and its next-token scores as Python floats.
        state_size = state_bytes(root.lm_state) + PY_FLOAT_BYTES * len(root.lm_next)
    check_decoding(beam, len(log_probs), state_size=state_size, vocab_size=log_probs.size(1))
    frames = log_probs.detach().double().tolist()
    beams: dict[tuple[int, ...], _Beam] = {(): root}

    def score(prefix: tuple[int, ...], b: _Beam, final: bool = False) -> float:
        total = b.acoustic + alpha * (b.lm + (end_term(b) if final else 0.0)) + beta * len(prefix)
        if words is not None:
            total += words.score(prefix, final=final)
        return total

    def end_term(b: _Beam) -> float:
        if lm is None or lm.end is None or b.lm_next is None:
            return 0.0
        return b.lm_next[lm.end]

    for row in frames:
        best = max(row)
        classes = [k for k, p in enumerate(row) if p >= prune or p == best]
        new: dict[tuple[int, ...], _Beam] = {}
        for prefix, b in beams.items():
            for k in classes:
                p = row[k]
                if k == blank:
                    target = new.setdefault(prefix, _Beam(lm=b.lm))
                    target.p_blank = _logadd(target.p_blank, b.acoustic + p)
                    continue
                extended = prefix + (k,)
                if prefix and k == prefix[-1]:
                    # Staying on the same label keeps the prefix; a new copy needs a blank first.
                    same = new.setdefault(prefix, _Beam(lm=b.lm))
                    same.p_label = _logadd(same.p_label, b.p_label + p)
                    from_paths = b.p_blank + p
                else:
                    from_paths = b.acoustic + p
                if extended not in new:
                    new[extended] = _Beam(
                        lm=b.lm + _lm_term(lm, b, k), pending=(b, k) if lm else None
                    )
                target = new[extended]
                target.p_label = _logadd(target.p_label, from_paths)
        # Prefixes that were in the beam keep their LM context; new ones are stepped below.
        for prefix, b in new.items():
            if prefix in beams:
                old = beams[prefix]
                b.lm, b.lm_next, b.lm_state, b.pending = old.lm, old.lm_next, old.lm_state, None
        ranked = sorted(new.items(), key=lambda item: score(*item), reverse=True)
        beams = dict(ranked[:beam])
        if lm is not None:
            _step_lm(lm, beams)
    final = sorted(beams.items(), key=lambda item: score(*item, final=True), reverse=True)
    return [
        Hypothesis(prefix, score(prefix, b, True), b.acoustic, b.lm + end_term(b))
        for prefix, b in final[:nbest]
        if score(prefix, b, True) > NEG_INF
    ]


def _lm_term(lm: LMFusion | None, parent: _Beam, k: int) -> float:
    if lm is None or parent.lm_next is None or lm.token_of[k] is None:
        return 0.0
    return parent.lm_next[lm.token_of[k]]


def _step_lm(lm: LMFusion, beams: dict[tuple[int, ...], _Beam]) -> None:
    """Give every new prefix of the beam its LM context, stepping all of them in one batch."""
    waiting = [b for b in beams.values() if b.pending is not None]
    scored = []
    for b in waiting:
        parent, k = b.pending
        b.pending = None
        if lm.token_of[k] is None:  # the LM does not see this class: the context stays
            b.lm_next, b.lm_state = parent.lm_next, parent.lm_state
        else:
            scored.append((b, parent.lm_state, k))
    if scored:
        stepped = lm.advance([state for _, state, _ in scored], [k for _, _, k in scored])
        for (b, _, _), (log_probs, state) in zip(scored, stepped):
            b.lm_next, b.lm_state = log_probs, state


# ----------------------------------------------------------------------------------------------
# Alignment and timings


@dataclass(frozen=True)
class Span:
    """A token or word and the frames it occupies in the best alignment: [start, end)."""

    text: str
    start: int
    end: int


def forced_align(log_probs: Tensor, tokens: Sequence[int], blank: int = 0) -> list[tuple[int, int]]:
    """The frames ``[start, end)`` of each token in the most probable CTC alignment (Viterbi:
    the recursion of docs/ctc.md with max instead of sum).

    Raises:
        ValueError: no alignment fits (more tokens, with repeats, than frames).
    """
    import numpy as np

    lp = log_probs.detach().double().numpy()
    T = lp.shape[0]
    S = 2 * len(tokens) + 1
    ext = np.full(S, blank)
    ext[1::2] = tokens
    skip = np.zeros(S, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    delta = np.full((T, S), -np.inf)
    back = np.zeros((T, S), dtype=np.int8)  # how far back (0, 1, 2) the best predecessor is
    delta[0, : min(2, S)] = lp[0, ext[: min(2, S)]]
    for t in range(1, T):
        stay = delta[t - 1]
        one = np.concatenate([[-np.inf], delta[t - 1, :-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], delta[t - 1, :-2]]), -np.inf)
        options = np.stack([stay, one, two[:S]])  # (3, S)
        back[t] = options.argmax(0)
        delta[t] = options.max(0) + lp[t, ext]
    s = S - 1 if S == 1 or delta[-1, S - 1] >= delta[-1, S - 2] else S - 2
    if not np.isfinite(delta[-1, s]):
        raise ValueError(f"{len(tokens)} tokens cannot be aligned to {T} frames")
    states = [0] * T
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    spans = []
    for u in range(len(tokens)):
        frames = [t for t, state in enumerate(states) if state == 2 * u + 1]
        spans.append((frames[0], frames[-1] + 1))
    return spans


def word_spans(text: str, char_spans: Sequence[tuple[int, int]], space: str = " ") -> list[Span]:
    """Words of ``text`` with the frames from their first character's start to their last's end.

    ``char_spans`` holds one ``(start, end)`` per character of ``text`` (from :func:`forced_align`).
    """
    words: list[Span] = []
    current, start, end = "", 0, 0
    for ch, (s, e) in zip(text, char_spans):
        if ch == space:
            if current:
                words.append(Span(current, start, end))
            current = ""
            continue
        if not current:
            start = s
        current += ch
        end = e
    if current:
        words.append(Span(current, start, end))
    return words
