"""Module attributes imported on first use: an application package re-exports its API without
importing torch when only its recipe is needed (``rnnkit --help``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: each name of ``where`` is imported from the
    module it maps to, on first use.

    Example (in ``rnnkit/lm/__init__.py``)::

        __getattr__ = lazy_attributes(__name__, dict.fromkeys(["train", "load"], "rnnkit.lm.api"))
    """

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
