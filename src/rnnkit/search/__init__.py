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

**Re-ranking.** ``SearchOptions.rerank`` orders a beam's finished hypotheses by how much they
agree with each other (:func:`rerank`, minimum Bayes risk over the beam) instead of by score.
"""

from __future__ import annotations

from rnnkit.lazy import lazy_attributes
from rnnkit.search.settings import LENGTH_PENALTIES, SearchOptions

# The searches need torch: imported on first use, so SearchOptions alone stays torch-free.
_MODULES = {
    "rnnkit.search.contract": ("Decoder", "Hypothesis"),
    "rnnkit.search.dispatch": ("decode",),
    "rnnkit.search.processors": ("Processor", "ban_tokens", "min_length", "no_repeat_ngram"),
    "rnnkit.search.stepwise": ("greedy", "sample"),
    "rnnkit.search.beam": ("beam_search",),
    "rnnkit.search.consensus": ("RERANKINGS", "rerank"),
}

__all__ = [
    "LENGTH_PENALTIES",
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
    "RERANKINGS",
    "rerank",
    "sample",
]

__getattr__ = lazy_attributes(
    __name__, {name: module for module, names in _MODULES.items() for name in names}
)
