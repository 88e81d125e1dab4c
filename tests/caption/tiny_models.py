"""Tiny attention-captioning models and random pictures for the model tests (not a test file)."""

import torch

from rnnkit.caption.data import SPECIALS
from rnnkit.caption.model import CaptionConfig, CaptionModel
from rnnkit.data.tokenize import Vocab

VOCAB = Vocab(["a", "red", "blue", "circle", "square", "left", "of"], specials=SPECIALS)


def tiny_model(seed=0, dtype=torch.float32, **options):
    """A seeded model over ``VOCAB`` for 32-px pictures, in eval mode (no dropout)."""
    torch.manual_seed(seed)
    config = CaptionConfig(**{
        "vocab_size": len(VOCAB), "decoder": "attention", "image_size": 32, "channels": 4,
        "feature_size": 8, "embedding_dim": 8, "hidden_size": 16, "attention_size": 8,
        "dropout": 0.0, **options,
    })  # fmt: skip
    return CaptionModel(config).to(dtype).eval()


def random_images(n, seed=0):
    """``n`` random 32-px RGB pictures, uint8."""
    return torch.randint(0, 256, (n, 32, 32, 3), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)  # fmt: skip
