"""Decoding a caption model through the shared search module (:mod:`rnnkit.search`).

One place for what every caption decoding shares: the constraints (never a special token but
the end, which comes within the length limit) and the loop over batches of images. The API's
``describe``/``evaluate`` and the training task's checkpoint selection both decode through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit import search
from rnnkit.data.tokenize import Vocab
from rnnkit.search import SearchOptions, ban_tokens

DECODE_BATCH = 64  # images decoded at once


@dataclass(frozen=True)
class end_by:  # a search processor (rnnkit.search): lower case, it reads as a call
    """Only ``eos`` at step ``max_length - 1``: every caption ends within the length limit."""

    eos: int
    max_length: int
    needs_history = False

    def __call__(self, log_probs: Tensor, history: Tensor | None, step: int) -> Tensor:
        if step < self.max_length - 1:
            return log_probs
        forced = torch.full_like(log_probs, -math.inf)
        forced[:, self.eos] = 0.0
        return forced


def processors(vocab: Vocab, max_length: int) -> list[Any]:
    """The constraints of caption decoding: never a special token but the end, which comes
    within ``max_length`` steps."""
    never = [i for i in (vocab.pad_index, vocab.bos_index, vocab.unk_index) if i is not None]
    return [ban_tokens(never), end_by(vocab.eos_index, max_length)]


def decode_inputs(
    model: nn.Module,
    inputs: Tensor,
    vocab: Vocab,
    max_length: int,
    settings: SearchOptions,
    *,
    device: torch.device,
) -> list[list[search.Hypothesis]]:
    """Captions of model inputs ``(N, ...)`` in batches of ``DECODE_BATCH`` on ``device``; the
    caller holds ``torch.no_grad()`` (and its autocast) and has put the model in eval mode."""
    constraints = processors(vocab, max_length)
    out: list[list[search.Hypothesis]] = []
    for start in range(0, len(inputs), DECODE_BATCH):
        part = inputs[start : start + DECODE_BATCH].to(device)
        bos = torch.full((len(part),), vocab.bos_index, dtype=torch.long, device=device)
        out += search.decode(
            model, model.start(part), bos, vocab.eos_index, max_length, settings,
            processors=constraints,
        )  # fmt: skip
    return out
