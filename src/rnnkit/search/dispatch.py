"""The one entry point of every application's decoding: :func:`decode`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.limits import check_fits
from rnnkit.search.beam import beam_search
from rnnkit.search.contract import Decoder, Hypothesis
from rnnkit.search.processors import Processor
from rnnkit.search.settings import SearchOptions
from rnnkit.search.stepwise import greedy, sample

# Bytes kept per token of each hypothesis: its id, its score and the text made of it.
HISTORY_BYTES = 64


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
    check_fits(
        options.beam_size * max_length * HISTORY_BYTES,
        f"decoding {max_length:,} tokens with {options.beam_size} hypotheses",
        hint="ask for fewer tokens (--length) or a narrower --beam",
    )
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
