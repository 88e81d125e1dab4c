"""Image captioning: a CNN encoder, an LSTM decoder with visual attention (Show, Attend, Tell).

Rooms: :mod:`~rnnkit.caption.recipe` (the defaults), :mod:`~rnnkit.caption.data` (corpora and
splits; the synthetic scenes in :mod:`~rnnkit.caption.scenes`, reading pictures in
:mod:`~rnnkit.caption.images`), :mod:`~rnnkit.caption.model` (``CaptionModel``),
:mod:`~rnnkit.caption.encoders` (what the decoder reads: images, or frozen EfficientNet-Lite0
features), :mod:`~rnnkit.caption.task` (the ``TrainingTask``), :mod:`~rnnkit.caption.metrics`
(BLEU, CIDEr-D, grounding), :mod:`~rnnkit.caption.plots` (the attention figure),
:mod:`~rnnkit.caption.api` (``train``, ``load``, ``describe``, ``evaluate``),
:mod:`~rnnkit.caption.cli`.

The API is importable from here (``from rnnkit.caption import CaptionRecipe, train``); it is
loaded on first use, so the command line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

from rnnkit.caption.recipe import CaptionRecipe
from rnnkit.lazy import lazy_attributes

_API = ("Caption", "Captioner", "decode", "describe", "draw_attention", "evaluate", "load", "train")

__all__ = ["CaptionRecipe", *_API]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_API, "rnnkit.caption.api"))
