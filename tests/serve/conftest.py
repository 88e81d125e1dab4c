"""Tiny runs trained once for the whole serve suite, and a playground served on a free port."""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from pathlib import Path

import pytest

from rnnkit import forecast, lm, translate
from rnnkit.forecast import ForecastRecipe
from rnnkit.lm import LMRecipe
from rnnkit.translate import TranslateRecipe


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models train and run faster on one thread (the machine is shared)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory, write_text_corpus):
    """A tiny character GRU trained for a few seconds on generated words."""
    tmp = tmp_path_factory.mktemp("serve-lm")
    data = write_text_corpus(tmp / "words.txt", n=3000)
    recipe = LMRecipe(
        data=str(data), cell="gru", embedding_dim=8, hidden_size=16, num_layers=1, bptt=16,
        batch_size=8, lr=1e-2, warmup_steps=0, max_minutes=None, max_steps=40, eval_every=20,
    )  # fmt: skip
    lm.train(tmp / "words", recipe=recipe)
    return tmp / "words"


@pytest.fixture(scope="session")
def translate_run(tmp_path_factory, write_parallel_corpus):
    """A tiny attentional translation run (a few steps: the attention exists, not its quality)."""
    tmp = tmp_path_factory.mktemp("serve-translate")
    data = write_parallel_corpus(tmp / "pairs.tsv", n=200)
    recipe = TranslateRecipe(
        data=str(data), hidden_size=16, embedding_dim=8, min_freq=1, batch_size=16,
        max_steps=6, max_minutes=None, eval_every=3,
    )  # fmt: skip
    translate.train(tmp / "fr", recipe=recipe)
    return tmp / "fr"


def hourly_csv(path, hours: int = 200):
    """A wide CSV of one hourly series with a daily cycle."""
    rows = [f"2024-01-{1 + h // 24:02d} {h % 24:02d}:00,{10 + 3 * math.sin(h * math.pi / 12):.3f}"
            for h in range(hours)]  # fmt: skip
    path.write_text("time,load\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def write_hourly_csv():
    """``write_hourly_csv(path, hours=200)`` -> path (see :func:`hourly_csv`)."""
    return hourly_csv


@pytest.fixture(scope="session")
def forecast_run(tmp_path_factory):
    """A tiny forecasting run (a few steps: the bands exist, not their quality)."""
    tmp = tmp_path_factory.mktemp("serve-forecast")
    recipe = ForecastRecipe(
        data=str(hourly_csv(tmp / "load.csv")), horizon=6, context=24, lags=[1, 24],
        hidden_size=8, num_layers=1, batch_size=8, steps_per_epoch=10, eval_every=3,
        max_steps=3, max_minutes=None, num_samples=20,
    )  # fmt: skip
    forecast.train(tmp / "load", recipe=recipe)
    return tmp / "load"


def speech_tones():
    """tests/speech/speech_tones.py: tone "speech" (one tone per letter) and its TSV corpus."""
    spec = importlib.util.spec_from_file_location(
        "speech_tones", Path(__file__).parents[1] / "speech" / "speech_tones.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tones():
    return speech_tones()


@pytest.fixture(scope="session")
def speech_run(tmp_path_factory, tones):
    """A tiny speech run trained for a few seconds on tone "words" (letters a, b, c)."""
    from rnnkit import speech

    tmp = tmp_path_factory.mktemp("serve-speech")
    tsv = tones.write_tone_corpus(tmp / "tones", n=40)
    recipe = speech.SpeechRecipe(
        corpus=str(tsv), n_mels=16, hidden_size=24, num_layers=1, dropout=0.0, batch_frames=1500,
        warmup_steps=5, lr=0.01, eval_every=20, max_steps=60, max_minutes=None,
    )  # fmt: skip
    speech.train(tmp / "tones-run", recipe=recipe)
    return tmp / "tones-run"


@pytest.fixture(scope="session")
def caption_run(tmp_path_factory):
    """A tiny caption run (attention decoder, 32-px synthetic scenes: a 4x4 attention grid)."""
    from rnnkit import caption

    tmp = tmp_path_factory.mktemp("serve-caption")
    recipe = caption.CaptionRecipe(
        scenes=(48, 12, 12), image_size=32, channels=8, feature_size=16, embedding_dim=16,
        hidden_size=32, attention_size=16, batch_size=16, max_length=12, warmup_steps=0,
        eval_every=0, max_minutes=None, max_steps=6,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:  # the scenes are cached here, not for the user
        patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        caption.train(tmp / "scenes", recipe=recipe)
    return tmp / "scenes"


@pytest.fixture(scope="session")
def served(lm_run, translate_run, forecast_run, speech_run, caption_run):
    """The playground for the five runs, served by uvicorn on a free port: its base URL."""
    import uvicorn

    from rnnkit.serve import create_app

    app = create_app([lm_run, translate_run, forecast_run, speech_run, caption_run])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
