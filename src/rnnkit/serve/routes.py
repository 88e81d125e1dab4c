"""The playground's HTTP endpoints.

=======================================  ============================================
``GET /``                                the page (``static/index.html``)
``GET /api/runs``                        the served runs: id, name, task, panel
``GET /api/runs/{id}``                   one run: config and training records
``GET /api/runs/{id}/generate?prime=..`` language model: tokens as server-sent events
``POST /api/runs/{id}/translate``        translation: n-best list with attention
``POST /api/runs/{id}/forecast``         forecast with bands (the run's data or a CSV)
``POST /api/runs/{id}/transcribe?beam=``  speech: the body (an audio file) transcribed,
                                         with features, posteriors and alignment
``POST /api/runs/{id}/describe?beam=``    caption: the body (a picture) captioned, with
                                         each word's attention
=======================================  ============================================

A bad parameter or request is answered with a 4xx status and ``{"error": "one line"}``. Models
run in worker threads, never on the event loop, so one slow generation does not hold up others.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rnnkit.runs import a_task
from rnnkit.serve import panels
from rnnkit.serve.params import ParamError


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def served_run(request: Request, task: str | None = None) -> panels.ServedRun:
    """The run named by the path's ``{id}`` (only runs from the command line exist)."""
    served = request.app.state.runs
    raw = request.path_params["id"]
    if not raw.isdigit() or int(raw) >= len(served):
        raise LookupError(f"no run {raw[:20]!r}; the served runs are 0 to {len(served) - 1}")
    run = served[int(raw)]
    if task is not None and run.task != task:
        raise ParamError(f"run {run.index} is {a_task(run.task)} run, not {a_task(task)} run")
    return run


async def list_runs(request: Request) -> Response:
    return JSONResponse([run.summary() for run in request.app.state.runs])


async def run_details(request: Request) -> Response:
    run = served_run(request)
    return JSONResponse(await run_in_threadpool(run.details))


def event(name: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def generate(request: Request) -> Response:
    """Stream a language model's continuation: a ``prime`` event, one ``token`` event per token
    (text, probability, alternatives, hidden state), then ``done`` (or ``error``)."""
    run = served_run(request, "lm")
    settings = panels.generation_settings(request.query_params, request.app.state.recipe)
    await run_in_threadpool(panels.check_prime, run, settings)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()

    class Stopped(Exception):
        """The client went away; stop generating."""

    def on_step(step: dict[str, Any]) -> None:
        if stop.is_set():
            raise Stopped
        loop.call_soon_threadsafe(queue.put_nowait, event("token", step))

    def work() -> None:
        try:
            panels.generate(run, settings, on_step)
            loop.call_soon_threadsafe(queue.put_nowait, event("done", {}))
        except Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the page as one line
            message = str(exc) if isinstance(exc, ValueError) else "generation failed"
            loop.call_soon_threadsafe(queue.put_nowait, event("error", {"error": message}))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async def stream() -> AsyncIterator[str]:
        yield event("prime", {"text": settings["prime"]})
        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            stop.set()
            await worker

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def read_body(request: Request, limit: int, what: str = "the request body") -> bytes:
    """The request's body, refused with status 413 once it passes ``limit`` bytes (a declared
    length over it is refused before anything is read)."""
    too_large = HTTPException(413, f"{what} is over the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_json(request: Request, limit: int | None = None) -> dict[str, Any]:
    """The request's JSON object body, at most ``limit`` bytes (default ``max_body``)."""
    body = await read_body(request, limit or request.app.state.recipe.max_body)
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ParamError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ParamError("the request body must be a JSON object")
    return data


async def translate(request: Request) -> Response:
    run = served_run(request, "translate")
    settings = panels.translation_settings(await read_json(request), request.app.state.recipe)
    return JSONResponse(await run_in_threadpool(panels.translate, run, settings))


async def forecast(request: Request) -> Response:
    run = served_run(request, "forecast")
    recipe = request.app.state.recipe
    body = await read_json(request, recipe.max_upload + recipe.max_body)
    settings = panels.forecast_settings(body, recipe)
    return JSONResponse(await run_in_threadpool(panels.forecast, run, settings))


async def transcribe(request: Request) -> Response:
    """Speech: the request's body is the audio file (WAV, FLAC, OGG; a recording from the page)."""
    run = served_run(request, "speech")
    recipe = request.app.state.recipe
    settings = panels.speech_settings(request.query_params, recipe)
    audio = await read_body(request, recipe.max_audio, panels.UPLOAD_FILE)
    return JSONResponse(await run_in_threadpool(panels.transcribe, run, settings, audio, recipe))


async def describe(request: Request) -> Response:
    """Captioning: the request's body is the picture (any format Pillow reads)."""
    run = served_run(request, "caption")
    recipe = request.app.state.recipe
    settings = panels.caption_settings(request.query_params, recipe)
    image = await read_body(request, recipe.max_image, panels.UPLOAD_FILE)
    return JSONResponse(await run_in_threadpool(panels.describe, run, settings, image))
