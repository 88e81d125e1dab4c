"""The playground's Starlette app and the uvicorn server that runs it.

Example::

    from rnnkit.serve import create_app
    app = create_app(["runs/shakespeare", "runs/fr"])   # any ASGI server can run it
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.serve import panels, routes
from rnnkit.serve.recipe import ServeRecipe

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def user_error(request: Request, exc: Exception) -> Response:
    """A bad request (setting, prime, text): 400 with the error's one line."""
    return routes.error(400, str(exc))


async def not_found(request: Request, exc: Exception) -> Response:
    return routes.error(404, str(exc).strip("'\""))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return routes.error(exc.status_code, exc.detail)


def create_app(
    run_dirs: Sequence[str | os.PathLike], recipe: ServeRecipe | None = None
) -> Starlette:
    """The playground for ``run_dirs`` (checked now: ``RunDirError`` for one that is not a run)."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/runs", routes.list_runs),
            Route("/api/runs/{id}", routes.run_details),
            Route("/api/runs/{id}/generate", routes.generate),
            Route("/api/runs/{id}/translate", routes.translate, methods=["POST"]),
            Route("/api/runs/{id}/forecast", routes.forecast, methods=["POST"]),
            Route("/api/runs/{id}/transcribe", routes.transcribe, methods=["POST"]),
            Route("/api/runs/{id}/describe", routes.describe, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            RnnkitError: user_error,
            ValueError: user_error,  # the APIs' own checks (an empty prime, ...)
            LookupError: not_found,
            HTTPException: http_error,
        },
    )
    app.state.runs = panels.open_runs(run_dirs)
    app.state.recipe = recipe or ServeRecipe()
    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    run_dirs: Sequence[str | os.PathLike],
    recipe: ServeRecipe | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> None:
    """Serve the playground for ``run_dirs`` until interrupted."""
    import uvicorn

    recipe = recipe or ServeRecipe()
    if not 0 < recipe.port < 65536:
        raise ConfigError(f"port must be between 1 and 65535, got {recipe.port}")
    app = create_app(run_dirs, recipe)
    check_listen(recipe.host, recipe.port)
    report = report or logger.info
    if not is_loopback(recipe.host):
        report(
            f"warning: listening on {recipe.host}, not the loopback address: anyone who can "
            "reach this machine can use the models; use --host 127.0.0.1 to keep it local"
        )
    shown = f"[{recipe.host}]" if ":" in recipe.host else recipe.host
    report(f"playground for {len(app.state.runs)} run(s) at http://{shown}:{recipe.port}/")
    uvicorn.run(app, host=recipe.host, port=recipe.port, log_level="warning")


def check_listen(host: str, port: int) -> None:
    """Raise :class:`ConfigError` if this process cannot listen on ``host:port`` (the port in use,
    or an address this machine does not have), before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
            probe.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is in use (another server?); pass another --port"
                ) from None
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host"
            ) from None
