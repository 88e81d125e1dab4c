"""rnnkit: recurrent neural networks on PyTorch, written from scratch.

Subpackages are imported on demand (``import rnnkit.nn``); importing ``rnnkit`` itself is cheap and
does not import torch, so ``rnnkit.reference`` stays a pure-NumPy module.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
