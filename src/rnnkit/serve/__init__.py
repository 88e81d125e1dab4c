"""A local web playground for trained runs (``rnnkit serve RUN_DIR ...``).

Rooms: :mod:`~rnnkit.serve.recipe` (limits and defaults), :mod:`~rnnkit.serve.params` (checking
what the browser sends), :mod:`~rnnkit.serve.panels` (the served runs; every computation goes
through an application's API), :mod:`~rnnkit.serve.routes` (the HTTP endpoints),
:mod:`~rnnkit.serve.app` (the Starlette app and uvicorn), ``static/`` (the page: plain HTML, CSS
and JavaScript, served by rnnkit itself), :mod:`~rnnkit.serve.cli`.
"""

from __future__ import annotations

from rnnkit.lazy import lazy_attributes
from rnnkit.serve.recipe import ServeRecipe

_API = ("create_app", "serve")

__all__ = ["ServeRecipe", *_API]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_API, "rnnkit.serve.app"))
