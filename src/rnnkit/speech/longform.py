"""Long recordings: segments cut at pauses, overlapping windows where no pause is found, the
windows' transcripts stitched at the overlaps by their CTC alignments, and the segments' n-best
lists merged into the file's n-best.

1. :func:`segments` streams a file (soundfile blocks, :func:`~rnnkit.speech.audio.read_blocks`)
   and cuts it into segments of ``min_seconds``..``max_seconds``. It looks for the quietest
   stretch of ``pause_seconds`` between the two (mean power of 10 ms frames); when that stretch is
   a pause (``pause_db`` below the segment's speech level, or below ``silence_db``), the segment
   ends in its middle and the next begins there. When it is not (speech runs on), the segment
   still ends there, but the next one starts ``overlap_seconds`` earlier: the two windows share
   audio, and both transcribe it.
2. :class:`Stitcher` joins the windows' hypotheses. At an overlap ``[lo, hi)`` it chooses a time
   ``m`` (:func:`stitch_point`): the middle of the widest stretch of the overlap's central half
   where neither window's best alignment has a letter, preferring stretches between words. The
   first window keeps the characters aligned before ``m``, the second those from ``m`` on, so a
   word spoken once is written once, and whole: each window contributes only the part where it
   heard the whole word with context on both sides.
3. :func:`kbest_sums`: the file's n-best are the K best sums of one hypothesis per segment (a
   k-best merge, two lists at a time); texts that come out the same keep their best score.

Only one segment of audio (at most ``max_seconds`` plus one read block) is in memory at a time;
what grows with the file is its text (and the n-best lists, K entries per segment).

Example::

    config = SegmentConfig(max_seconds=30, overlap_seconds=4)
    for seg in segments("talk.flac", sample_rate=16000, config=config):
        ...  # seg.start: first sample in the file; seg.overlap: samples shared with the last
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.speech.audio import read_blocks
from rnnkit.speech.decode import Span, word_spans

SPACE = " "


@dataclass(frozen=True)
class SegmentConfig:
    """How a long recording is cut into segments (the defaults serve 16 kHz speech)."""

    max_seconds: float = 30.0  # longest segment (bounds memory and the model's span)
    min_seconds: float = 15.0  # a cut is searched between min_seconds and max_seconds
    pause_seconds: float = 0.15  # a pause is a quiet stretch at least this long ...
    pause_db: float = 20.0  # ... this far below the speech level (90th percentile of 10 ms power)
    silence_db: float = -50.0  # ... or below this level (dB full scale): silence is a pause
    overlap_seconds: float = 4.0  # no pause found: the next window repeats this much (0: cut)

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds < self.max_seconds:
            raise ConfigError(
                f"need 0 < min_seconds < max_seconds, got {self.min_seconds} and {self.max_seconds}"
            )
        if not 0.01 <= self.pause_seconds <= self.max_seconds - self.min_seconds:
            raise ConfigError(
                f"pause_seconds must be between 0.01 and max_seconds - min_seconds, got "
                f"{self.pause_seconds}"
            )
        if not 0 <= self.overlap_seconds < self.min_seconds:
            raise ConfigError(
                f"overlap_seconds must be >= 0 and below min_seconds ({self.min_seconds}), got "
                f"{self.overlap_seconds}"
            )


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording: ``wave`` starts at sample ``start`` of the file, and its first
    ``overlap`` samples were also in the previous segment (0 when that one ended at a pause)."""

    start: int
    wave: Tensor
    overlap: int = 0


def segments(
    path: str | os.PathLike, *, sample_rate: int, config: SegmentConfig | None = None
) -> Iterator[Segment]:
    """The recording at ``path`` (mono, ``sample_rate``) as consecutive segments, streamed."""
    c = config or SegmentConfig()
    frame = max(1, sample_rate // 100)  # 10 ms
    longest = max(2 * frame, int(c.max_seconds * sample_rate))
    shortest = int(c.min_seconds * sample_rate)
    overlap = int(c.overlap_seconds * sample_rate)
    buffer, start, shared = torch.zeros(0), 0, 0
    for _, block in read_blocks(path, sample_rate=sample_rate, seconds=c.max_seconds / 2):
        buffer = torch.cat([buffer, block])
        while buffer.shape[0] >= longest:
            cut, pause = quietest(buffer[:longest], shortest, frame, c)
            yield Segment(start, buffer[:cut], shared)
            step = cut if pause or not overlap else cut - overlap
            buffer, start, shared = buffer[step:], start + step, cut - step
    if buffer.shape[0] > shared:
        yield Segment(start, buffer, shared)


def quietest(wave: Tensor, shortest: int, frame: int, config: SegmentConfig) -> tuple[int, bool]:
    """``(cut, pause)``: the middle sample of the quietest stretch of ``pause_seconds`` of
    ``wave`` that starts at or after sample ``shortest``, and whether that stretch is a pause."""
    n = wave.shape[0] // frame
    power = wave[: n * frame].double().view(n, frame).square().mean(1)  # (n,) per 10 ms frame
    k = max(1, round(config.pause_seconds * 100))  # frames in a stretch
    stretch = power.unfold(0, k, 1).mean(1)  # (n - k + 1,): stretch i covers frames i..i+k-1
    first = min(-(-shortest // frame), n - k)
    i = first + int(stretch[first:].argmin())
    speech = float(torch.quantile(_db(power), 0.9))
    pause = float(_db(stretch[i])) <= max(speech - config.pause_db, config.silence_db)
    return (2 * i + k) * frame // 2, pause


def _db(power: Tensor) -> Tensor:
    return 10.0 * torch.log10(power + 1e-12)


# ----------------------------------------------------------------------------------------------
# Stitching the windows' transcripts


def stitch_point(
    a: Sequence[Span], b: Sequence[Span], lo: float, hi: float, space: str = SPACE
) -> tuple[float, bool]:
    """Where two overlapping windows' transcripts are joined: ``(m, between_words)``.

    Args:
        a: characters of the earlier window with their times (seconds in the file).
        b: the same for the later window.
        lo, hi: the shared audio, from the later window's start to the earlier one's end.

    ``m`` is the middle of the widest stretch of ``[lo + q, hi - q]`` (``q`` a quarter of the
    overlap: the windows' edges, where a word may be cut off, stay out) that no letter of either
    window occupies; stretches at a word boundary come first (:func:`_boundary`). Without any
    free stretch, ``m`` is the overlap's middle and ``between_words`` is False.
    """
    q = (hi - lo) / 4
    left, right = lo + q, hi - q
    letters = sorted((s.start, s.end) for s in [*a, *b] if s.text != space)
    gaps, edge = [], left
    for start, end in letters:
        if start > edge:
            gaps.append((edge, min(start, right)))
        edge = max(edge, end)
        if edge >= right:
            break
    if edge < right:
        gaps.append((edge, right))
    gaps = [(s, e) for s, e in gaps if e > s]
    if not gaps:
        return (lo + hi) / 2, False

    def rank(gap: tuple[float, float]) -> tuple[bool, float]:
        between = _boundary(a, gap[1], space) or _boundary(b, gap[1], space)
        return between, gap[1] - gap[0]

    best = max(gaps, key=rank)
    return (best[0] + best[1]) / 2, rank(best)[0]


def _boundary(chars: Sequence[Span], after: float, space: str) -> bool:
    """Whether a window's characters put a word boundary in a stretch free of letters that
    ends at ``after``: a space between the letters on either side of it, or no letter on one
    side (the window's text begins or ends there, as in a silence)."""
    later = next((i for i, s in enumerate(chars) if s.text != space and s.start >= after),
                 len(chars))  # fmt: skip
    earlier = max((i for i in range(later) if chars[i].text != space), default=-1)
    return earlier < 0 or later == len(chars) or space in [s.text for s in chars[earlier:later]]


def keep_between(chars: Sequence[Span], left: float, right: float) -> list[Span]:
    """The characters whose middle lies in ``[left, right)``, with no spaces at the ends."""
    kept = [s for s in chars if left <= (s.start + s.end) / 2 < right]
    while kept and kept[0].text == SPACE:
        kept.pop(0)
    while kept and kept[-1].text == SPACE:
        kept.pop()
    return kept


@dataclass
class Window:
    """One decoded window of a recording.

    ``hyps`` are its hypotheses, best first, as (characters, score); ``align`` gives the
    (start, end) seconds in the file of each character of a hypothesis (its CTC alignment)."""

    start: float  # seconds: the window's first sample in the file
    end: float  # seconds: just after its last sample
    overlap: float  # seconds shared with the previous window (0: that one ended at a pause)
    hyps: list[tuple[str, float]]
    align: Callable[[str], list[tuple[float, float]]]
    _timed: dict[int, list[Span]] = field(default_factory=dict, repr=False)

    def timed(self, rank: int) -> list[Span]:
        """The characters of hypothesis ``rank`` with their times (aligned once); none when
        the window has no hypothesis (a lexicon can forbid them all)."""
        if rank >= len(self.hyps):
            return []
        if rank not in self._timed:
            text = self.hyps[rank][0]
            self._timed[rank] = [Span(c, s, e) for c, (s, e) in zip(text, self.align(text))]
        return self._timed[rank]


@dataclass
class Stitched:
    """A recording's transcript: text, word timings (seconds) and n-best (text, score)."""

    text: str
    words: list[Span]
    nbest: list[tuple[str, float]]


@dataclass
class Stitcher:
    """Joins the windows of one recording, fed in order with :meth:`add`, then :meth:`finish`.

    Args:
        nbest: alternatives kept for the file.
        timestamps: give word timings (aligns every window's best hypothesis).
    """

    nbest: int = 1
    timestamps: bool = False
    _pending: Window | None = field(default=None, init=False)
    _left: float = field(default=-math.inf, init=False)  # the pending window keeps from here
    _pieces: list[list[tuple[str, float]]] = field(default_factory=list, init=False)
    _junctions: list[str] = field(default_factory=list, init=False)  # before each later piece
    _chars: list[Span] = field(default_factory=list, init=False)  # the best text, timed

    def add(self, window: Window) -> None:
        previous = self._pending
        self._pending = window
        if previous is None:
            return
        if window.overlap <= 0:
            self._close(previous, math.inf)
            self._left, junction = -math.inf, SPACE
        else:
            lo, hi = window.start, previous.end
            m, between_words = stitch_point(previous.timed(0), window.timed(0), lo, hi)
            self._close(previous, m)
            self._left, junction = m, SPACE if between_words else ""
        self._junctions.append(junction)

    def finish(self) -> Stitched:
        if self._pending is not None:
            self._close(self._pending, math.inf)
            self._pending = None
        best = [piece[0] if piece else ("", 0.0) for piece in self._pieces]
        text = _join([t for t, _ in best], self._junctions)
        merged = kbest_sums(self._pieces, self.nbest, self._junctions)
        chars = self._chars
        words = word_spans("".join(s.text for s in chars), [(s.start, s.end) for s in chars])
        rounded = [Span(w.text, round(w.start, 3), round(w.end, 3)) for w in words]
        return Stitched(text, rounded if self.timestamps else [], merged)

    def _close(self, window: Window, right: float) -> None:
        """Keep ``window``'s part between the last stitch and ``right``."""
        whole = self._left == -math.inf and right == math.inf
        piece: dict[str, float] = {}
        for rank, (text, score) in enumerate(window.hyps):
            if whole:
                kept = text
                if rank == 0 and self.timestamps:
                    self._keep_best(keep_between(window.timed(0), -math.inf, math.inf))
            else:
                chars = keep_between(window.timed(rank), self._left, right)
                kept = "".join(s.text for s in chars)
                if rank == 0 and self.timestamps:
                    self._keep_best(chars)
            piece.setdefault(" ".join(kept.split()), score)  # the same text: its best score
        self._pieces.append(list(piece.items()))

    def _keep_best(self, chars: list[Span]) -> None:
        """Add the best hypothesis' kept characters, after a space at a word boundary."""
        if self._chars and self._junctions and self._junctions[-1] == SPACE:
            at = self._chars[-1].end
            self._chars.append(Span(SPACE, at, at))
        self._chars.extend(chars)


def _join(texts: Sequence[str], junctions: Sequence[str]) -> str:
    """``texts`` joined by ``junctions`` (one fewer), an empty text adding nothing."""
    out = texts[0] if texts else ""
    for junction, text in zip(junctions, texts[1:]):
        out = out + junction + text if out and text else out or text
    return out


def kbest_sums(
    lists: Sequence[Sequence[tuple[str, float]]], k: int, junctions: Sequence[str] | None = None
) -> list[tuple[str, float]]:
    """The ``k`` best (text, score) over all choices of one entry per list, best first.

    A choice's text joins its entries' texts (with ``junctions[i]`` between list i and i + 1;
    a space by default) and its score is the sum of theirs; choices with the same text count
    once, with the best score. Each list must be sorted best first.

    Lists are merged two at a time, each merge keeping the k best distinct texts: a text whose
    best choice is in the final k best has its prefix among the k best of the first lists
    (otherwise k better prefixes with the same rest would give k better distinct texts).
    """
    if k < 1:
        raise ConfigError(f"nbest must be >= 1, got {k}")
    if not lists:
        return []
    junctions = list(junctions) if junctions is not None else [SPACE] * (len(lists) - 1)
    if len(junctions) != len(lists) - 1:
        raise ValueError(f"need {len(lists) - 1} junctions for {len(lists)} lists")
    merged = _distinct(lists[0], k)
    for junction, nxt in zip(junctions, lists[1:]):
        merged = _merge_two(merged, _distinct(nxt, k), k, junction)
    return merged


def _distinct(entries: Sequence[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    best: dict[str, float] = {}
    for text, score in entries:
        if text not in best or score > best[text]:
            best[text] = score
    return sorted(best.items(), key=lambda e: -e[1])[:k]


def _merge_two(
    a: list[tuple[str, float]], b: list[tuple[str, float]], k: int, junction: str
) -> list[tuple[str, float]]:
    """The k best distinct joins of one entry of ``a`` and one of ``b`` (both best first):
    a heap over index pairs, each popped pair pushing its two successors."""
    if not a or not b:
        return a or b
    heap = [(-(a[0][1] + b[0][1]), 0, 0)]
    seen, out = {(0, 0)}, {}
    while heap and len(out) < k:
        negative, i, j = heapq.heappop(heap)
        out.setdefault(_join([a[i][0], b[j][0]], [junction]), -negative)
        for ni, nj in ((i + 1, j), (i, j + 1)):
            if ni < len(a) and nj < len(b) and (ni, nj) not in seen:
                seen.add((ni, nj))
                heapq.heappush(heap, (-(a[ni][1] + b[nj][1]), ni, nj))
    return list(out.items())
