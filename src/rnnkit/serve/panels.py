"""The runs a playground serves, and what it computes with them: every computation is a call
to the run's application API (:mod:`rnnkit.lm.api`, :mod:`rnnkit.translate.api`, ...); this
module only checks the request's settings and turns results into JSON-able dicts."""

from __future__ import annotations

import base64
import importlib
import io
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnkit import runs
from rnnkit.errors import RnnkitError, RunDirError
from rnnkit.serve import params
from rnnkit.serve.recipe import ServeRecipe
from rnnkit.training.config import DEFAULT_LOSS_UNIT

# The application API behind each task's try-it panel (its ``load`` gives the served model).
APIS = {
    "lm": "rnnkit.lm.api",
    "translate": "rnnkit.translate.api",
    "forecast": "rnnkit.forecast.api",
    "speech": "rnnkit.speech.api",
    "caption": "rnnkit.caption.api",
}


def loss_unit(task: str) -> str:
    """What a ``task`` run's training loss is per: its application's ``recipe.LOSS_UNIT`` (the
    task's trainer says the same), else the default (the recipe modules are torch-free)."""
    module = APIS.get(task)
    if module is None:
        return DEFAULT_LOSS_UNIT
    recipe = importlib.import_module(module.rsplit(".", 1)[0] + ".recipe")
    return getattr(recipe, "LOSS_UNIT", DEFAULT_LOSS_UNIT)


UPLOAD = "the uploaded CSV"  # how messages name an uploaded CSV
UPLOAD_FILE = "the uploaded file"  # ... and an uploaded audio file or picture


class ServedRun:
    """One run directory named on the command line; its model is loaded on first use."""

    def __init__(self, index: int, path: str | os.PathLike) -> None:
        run = runs.RunDir.open(path, None, require=[runs.CONFIG])
        self.index, self.path, self.task = index, Path(path), run.task
        self.run = run
        self.config = run.read_config()
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def api(self) -> Any:
        """The application API of this run's task (None: no try-it panel for it)."""
        module = APIS.get(self.task)
        return None if module is None else importlib.import_module(module)

    def summary(self) -> dict[str, Any]:
        return {"id": self.index, "name": self.path.name, "task": self.task,
                "path": str(self.path), "panel": self.task in APIS}  # fmt: skip

    def details(self) -> dict[str, Any]:
        """The summary, the config, the training records (``metrics.jsonl``) and what their
        loss is per (``loss_unit``)."""
        metrics = self.run.read_jsonl(runs.METRICS) if self.run.has(runs.METRICS) else []
        return {**self.summary(), "config": self.config, "metrics": metrics,
                "loss_unit": loss_unit(self.task)}  # fmt: skip

    def model(self) -> Any:
        """The loaded model (the API's ``load``), loaded once."""
        with self._lock:
            if self._model is None:
                if self.api is None:
                    kind = runs.a_task(self.task)
                    raise RunDirError(f"{self.path} is {kind} run; it has no panel")
                self._model = self.api.load(self.path)
            return self._model


def open_runs(paths: Sequence[str | os.PathLike]) -> list[ServedRun]:
    """The runs to serve, in the order given (RunDirError for a path that is not a run)."""
    if not paths:
        raise RunDirError("give at least one run directory to serve")
    return [ServedRun(i, path) for i, path in enumerate(paths)]


def generation_settings(query: Mapping[str, Any], recipe: ServeRecipe) -> dict[str, Any]:
    """The keyword arguments of :func:`rnnkit.lm.api.generate_steps` a request asks for."""
    from rnnkit.lm.recipe import GenerateRecipe

    beam = params.integer(query, "beam", GenerateRecipe.beam, low=1, high=recipe.max_beam)
    return {
        "prime": params.text(query, "prime", limit=recipe.max_prime),
        "length": params.integer(
            query, "length", GenerateRecipe.length, low=1, high=recipe.max_length
        ),
        "temperature": params.real(
            query, "temperature", GenerateRecipe.temperature, low=0.0, high=10.0, open_low=True
        ),
        "top_k": params.integer(query, "top_k", None, low=1, high=1_000_000),
        "top_p": params.real(query, "top_p", None, low=0.0, high=1.0, open_low=True),
        "greedy": params.flag(query, "greedy"),
        "beam": beam,
        "seed": params.integer(query, "seed", None, low=0, high=2**31 - 1),
        "top": recipe.top_alternatives,
    }


def check_prime(served: ServedRun, settings: Mapping[str, Any]) -> None:
    """Raise the API's error now if the prime cannot be read (before a stream starts)."""
    lm = served.model()
    served.api.encode_prime(lm, settings["prime"])
    served.api.search_options(
        settings["length"], settings["temperature"], settings["top_k"], settings["top_p"],
        settings["greedy"], settings["beam"], settings["seed"],
    )  # fmt: skip


def generate(
    served: ServedRun, settings: Mapping[str, Any], on_step: Callable[[dict[str, Any]], None]
) -> None:
    """Generate as ``settings`` say; ``on_step`` receives each token as a dict."""

    def send(step: Any) -> None:
        on_step({
            "text": step.text,
            "prob": round(step.prob, 5),
            "alternatives": [[token, round(p, 5)] for token, p in step.alternatives],
            "hidden": [round(h, 4) for h in step.hidden],
        })  # fmt: skip

    served.api.generate_steps(served.model(), **settings, on_step=send)


def translation_settings(body: Mapping[str, Any], recipe: ServeRecipe) -> dict[str, Any]:
    """The text and search options of a translation request."""
    beam = params.integer(body, "beam", 5, low=1, high=recipe.max_beam)
    return {
        "text": params.text(body, "text", limit=recipe.max_text),
        "beam_size": beam,
        "n_best": params.integer(body, "n_best", min(beam, 5), low=1, high=beam),
    }


def translate(served: ServedRun, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The n-best translations of ``settings["text"]`` with scores and attention."""
    options = dict(settings)
    text = options.pop("text")
    found = served.api.translate_with_attention(served.model(), text, **options)
    return {
        "source": found[0].source if found else [],
        "hypotheses": [
            {"text": a.translation.text, "score": round(a.translation.score, 4),
             "target": a.target, "attention": [[round(w, 4) for w in row]
                                               for row in a.weights.tolist()]}
            for a in found
        ],
    }  # fmt: skip


def forecast_settings(body: Mapping[str, Any], recipe: ServeRecipe) -> dict[str, Any]:
    """The uploaded CSV (or None: the run's own data) and horizon of a forecast request."""
    csv = body.get("csv")
    return {
        "csv": None if csv in (None, "") else params.text(body, "csv", limit=recipe.max_upload),
        "horizon": params.integer(body, "horizon", None, low=1, high=recipe.max_length),
    }


@contextmanager
def uploaded(data: str | bytes, name: str, suffix: str = "") -> Iterator[Path]:
    """``data`` in a private temporary file for an API to read, removed afterwards; the
    :class:`RnnkitError` of a bad upload names it ``name``, never the server's temporary path."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        try:
            yield path
        except RnnkitError as exc:
            raise type(exc)(str(exc).replace(str(path), name)) from None


def forecast(served: ServedRun, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The forecast with its median and 80%/95% bands (the API's ``predict``) of the run's own
    data, or of the uploaded CSV (written to a private temporary file for the API to read)."""
    fc = served.model()
    if settings["csv"] is None:
        return served.api.predict(fc, horizon=settings["horizon"])
    with uploaded(settings["csv"], UPLOAD, ".csv") as path:
        result = served.api.predict(fc, data=str(path), horizon=settings["horizon"])
    return {**result, "data": UPLOAD}


def speech_settings(query: Mapping[str, Any], recipe: ServeRecipe) -> dict[str, Any]:
    """The search options of a transcription request (beam 1: greedy decoding)."""
    beam = params.integer(query, "beam", 1, low=1, high=recipe.max_beam)
    return {"beam": beam, "nbest": params.integer(query, "nbest", beam, low=1, high=beam)}


def transcribe(
    served: ServedRun, settings: Mapping[str, Any], audio: bytes, recipe: ServeRecipe
) -> dict[str, Any]:
    """The transcript of the uploaded ``audio`` (word timings, n-best list) with what the model
    heard: its log-mel features, the CTC posteriors and the aligned characters
    (:func:`rnnkit.speech.api.align`)."""
    from rnnkit.speech.audio import audio_info

    with uploaded(audio, UPLOAD_FILE) as path:
        seconds = audio_info(path)[2]
        if seconds > recipe.max_audio_seconds:
            raise params.ParamError(
                f"{UPLOAD_FILE} lasts {seconds:.1f} s; the limit is {recipe.max_audio_seconds:g} s"
                " (cut it shorter)"
            )
        found = served.api.align(served.model(), path, **settings)
    return {
        "transcript": {**found.transcript.to_dict(), "path": UPLOAD_FILE},
        "features": found.features.numpy().round(2).tolist(),  # (T, n_mels)
        "frame_seconds": found.frame_seconds,
        "posteriors": found.posteriors.numpy().round(4).tolist(),  # (T', C)
        "step_seconds": found.step_seconds,
        "symbols": found.symbols,
        "characters": [{"char": c.text, "start": c.start, "end": c.end} for c in found.characters],
        "whole": found.whole,
    }


def caption_settings(query: Mapping[str, Any], recipe: ServeRecipe) -> dict[str, Any]:
    """The search options of a caption request (beam 1: greedy search)."""
    beam = params.integer(query, "beam", 3, low=1, high=recipe.max_beam)
    return {"beam_size": beam, "n_best": params.integer(query, "n_best", beam, low=1, high=beam)}


def describe(served: ServedRun, settings: Mapping[str, Any], image: bytes) -> dict[str, Any]:
    """The n-best captions of the uploaded picture with scores, each word's attention over it
    (attention decoders; :func:`rnnkit.caption.api.describe`), and the picture as the model saw
    it (a PNG data URL) to draw the attention on."""
    from PIL import Image

    captioner = served.model()
    attention = captioner.model.config.decoder == "attention"
    with uploaded(image, UPLOAD_FILE) as path:
        captions = served.api.describe(captioner, [path], attention=attention, **settings)[0]
        picture = served.api.read_images(captioner, [path])[0]  # (S, S, 3) uint8
    png = io.BytesIO()
    Image.fromarray(picture).save(png, format="PNG")
    cells = captions[0].attention.shape[1] if attention and captions else 0
    return {
        "image": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii"),
        "grid": math.isqrt(cells),  # the attention cells form a grid x grid square
        "decoder": captioner.model.config.decoder,
        "captions": [
            {"text": c.text, "words": c.words, "log_prob": round(c.log_prob, 4),
             "attention": None if c.attention is None else c.attention.round(4).tolist()}
            for c in captions
        ],
    }  # fmt: skip
