"""Module attributes imported on first use: an application package re-exports its API without
importing torch when only its recipe is needed (``rnnkit --help``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_attributes(package: str, module: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``names`` come from ``module`` on first use.

    Example (in ``rnnkit/lm/__init__.py``)::

        __getattr__ = lazy_attributes(__name__, "rnnkit.lm.api", ("train", "load"))
    """
    wanted = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in wanted:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
