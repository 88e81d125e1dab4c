"""The one entry point of every application's decoding: :func:`decode`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.limits import check_decoding, state_bytes
from rnnkit.search.beam import beam_search
from rnnkit.search.checks import start_tokens
from rnnkit.search.consensus import rerank
from rnnkit.search.contract import Decoder, Hypothesis
from rnnkit.search.processors import Processor
from rnnkit.search.settings import SearchOptions
from rnnkit.search.stepwise import greedy, sample


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

    Greedy search and sampling give one hypothesis per input; beam search up to ``n_best``,
    re-ranked by ``options.rerank`` (:mod:`rnnkit.search.consensus`) from the whole beam.
    ``processors`` constrain every step (see the module docstring); ``on_token`` streams the
    tokens of greedy search and sampling (beam search knows its result only at the end).

    A decoding that cannot fit in memory is refused (:func:`rnnkit.limits.check_decoding`:
    ``ConfigError`` with the estimate, and the widest beam that fits): greedy search and sampling
    here, by their length; beam search after its first step, once the decoder's state and
    vocabulary are known and before anything is beam-wide.
    """
    options = options or SearchOptions()
    if options.method != "beam":
        inputs = start_tokens(bos).numel()
        check_decoding(1, max_length, inputs=inputs, state_size=state_bytes(state) // inputs)
    common = {"min_length": options.min_length, "processors": processors}
    if options.method == "beam":
        # Re-ranking looks at the whole beam: all beam_size finished hypotheses are kept for it.
        n_best = options.n_best if options.rerank == "none" else options.beam_size
        found = beam_search(
            decoder, state, bos, eos, options.beam_size, max_length,
            length_penalty=options.length_penalty, alpha=options.alpha, n_best=n_best,
            no_repeat_ngram_size=options.no_repeat_ngram, **common,
        )  # fmt: skip
        return [rerank(hyps, options.rerank)[: options.n_best] for hyps in found]
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
