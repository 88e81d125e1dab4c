"""How to decode: :class:`SearchOptions`, the one options object of every application's decoding.

Torch-free, so the command line can show its defaults without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnkit.errors import ConfigError
from rnnkit.search.consensus import RERANKINGS

LENGTH_PENALTIES = ("none", "average", "gnmt")


# A sanity bound on the beam; the real cap is memory, estimated for the model at hand when
# decoding starts (rnnkit.limits.check_decoding), which names the widest beam that fits.
MAX_BEAM = 100_000


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
    # beam search: order the beam's beam_size finished hypotheses by their agreement with each
    # other: "none" (by score), "consensus" or "mbr" (rnnkit.search.consensus)
    rerank: str = "none"
    min_length: int = 0  # tokens generated before eos is allowed
    no_repeat_ngram: int = 0  # if > 0, no n-gram of this size occurs twice (beam search)

    def __post_init__(self) -> None:
        problems = [
            (
                not 1 <= self.beam_size <= MAX_BEAM,
                f"beam size must be from 1 to {MAX_BEAM:,}, got {self.beam_size} (wider beams "
                "cost time and memory and do not find better text)",
            ),
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
                self.rerank not in RERANKINGS,
                f"rerank must be one of {', '.join(RERANKINGS)}, got {self.rerank!r}",
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
