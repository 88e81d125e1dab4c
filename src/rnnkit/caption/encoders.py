"""What the decoder reads: images for the CNN trained here, or a frozen encoder's features.

``model_inputs(images, config)`` is the one place that turns ``(N, S, S, 3)`` uint8 images into the
model's inputs: the images themselves for ``encoder="cnn"`` (the CNN is part of the model and
trains with it), or the feature grids of a frozen pretrained network (``ENCODERS``), computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PretrainedEncoder:
    """A frozen image encoder whose weights come from a pinned package release."""

    name: str  # the --encoder value
    feature_size: int  # size F of its feature vectors


# Pretrained encoders known by name (none yet; `encoder="cnn"` needs no entry).
ENCODERS: dict[str, PretrainedEncoder] = {}


def check_encoder(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is ``"cnn"`` or a known pretrained encoder."""
    if name != "cnn" and name not in ENCODERS:
        known = ", ".join(["cnn", *ENCODERS])
        raise ValueError(f"encoder={name!r} is not available; choose one of: {known}")


def model_inputs(images: np.ndarray, encoder: str) -> Tensor:
    """The model's inputs for ``(N, S, S, 3)`` uint8 ``images`` (see the module docstring)."""
    check_encoder(encoder)
    return torch.from_numpy(np.ascontiguousarray(images))
