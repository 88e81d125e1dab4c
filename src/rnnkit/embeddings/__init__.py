"""The former name of :mod:`rnnkit.embed`, kept importable for code written against it
(``from rnnkit.embeddings import native``); new code imports :mod:`rnnkit.embed`."""

from __future__ import annotations

import importlib
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    package = importlib.import_module("rnnkit.embed")
    try:
        return getattr(package, name)
    except AttributeError:
        pass
    try:
        module = importlib.import_module(f"rnnkit.embed.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'rnnkit.embeddings' has no attribute {name!r}") from None
    sys.modules[f"{__name__}.{name}"] = module
    return module
