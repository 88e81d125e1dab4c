"""The speech and caption endpoints over HTTP: the answers compared with the applications' APIs
(``rnnkit.speech.align``, ``rnnkit.caption.describe``), and bad uploads -> one-line 4xx."""

from __future__ import annotations

import base64
import io
import random

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from starlette.testclient import TestClient

from rnnkit import caption, speech
from rnnkit.serve import ServeRecipe, create_app

RATE = 16000


@pytest.fixture(scope="module")
def client(speech_run, caption_run):
    with TestClient(create_app([speech_run, caption_run])) as client:
        yield client


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory, tones):
    """Tones for "abc" (what the tiny speech run learned to read) as a 16-bit WAV."""
    path = tmp_path_factory.mktemp("audio") / "abc.wav"
    soundfile.write(path, tones.tone_word("abc", random.Random(1)), RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    """A generated scene of coloured shapes at 96 px (the model reads 32 px)."""
    from rnnkit.caption import scenes

    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(scenes.generate("test", 1, seed=3, size=96).images[0]).save(path)
    return path


def transcribe(client, body, **query):
    return client.post("/api/runs/0/transcribe", params=query, content=body)


def describe(client, body, **query):
    return client.post("/api/runs/1/describe", params=query, content=body)


@pytest.mark.parametrize(("beam", "nbest"), [(1, 1), (4, 3)])
def test_transcription_is_the_apis_with_what_the_model_heard(
    client, speech_run, tone_wav, beam, nbest
):
    answer = transcribe(client, tone_wav.read_bytes(), beam=beam, nbest=nbest)
    assert answer.status_code == 200
    result = answer.json()
    expected = speech.align(speech.load(speech_run), tone_wav, beam=beam, nbest=nbest)
    transcript = expected.transcript.to_dict()
    assert result["transcript"] == {**transcript, "path": "the uploaded file"}
    assert len(result["transcript"]["nbest"]) == nbest and result["whole"]
    features, posteriors = torch.tensor(result["features"]), torch.tensor(result["posteriors"])
    assert features.shape == expected.features.shape
    assert torch.allclose(features, expected.features, atol=0.006)
    assert torch.allclose(posteriors, expected.posteriors, atol=6e-5)
    assert result["symbols"] == expected.symbols and result["symbols"][0] == ""
    assert [(c["char"], c["start"], c["end"]) for c in result["characters"]] == [
        (c.text, c.start, c.end) for c in expected.characters
    ]
    assert result["step_seconds"] == expected.step_seconds


def test_any_audio_format_soundfile_reads_can_be_uploaded(client, tone_wav, tmp_path):
    wave, rate = soundfile.read(tone_wav)
    flac = tmp_path / "abc.flac"
    soundfile.write(flac, np.stack([wave, wave], 1), rate, subtype="PCM_24")  # stereo, 24-bit
    from_flac = transcribe(client, flac.read_bytes()).json()
    from_wav = transcribe(client, tone_wav.read_bytes()).json()
    assert from_flac["transcript"]["text"] == from_wav["transcript"]["text"]
    assert torch.allclose(
        torch.tensor(from_flac["posteriors"]), torch.tensor(from_wav["posteriors"]), atol=1e-3
    )


def silence_wav(seconds: float) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(int(seconds * RATE)), RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.mark.parametrize(
    ("body", "query", "status", "message"),
    [
        (b"", {}, 400, "the uploaded file is empty (0 bytes)"),
        (b"not audio at all" * 10, {}, 400, "cannot read the uploaded file as audio"),
        (silence_wav(0)[:44], {}, 400, "the uploaded file holds no audio samples"),
        (silence_wav(21), {}, 400, "the uploaded file lasts 21.0 s; the limit is 20 s"),
        (silence_wav(1), {"beam": "0"}, 400, "beam must be between 1 and 16"),
        (silence_wav(1), {"beam": "2", "nbest": "3"}, 400, "nbest must be between 1 and 2"),
        (b"x" * (16 * 1024 * 1024 + 1), {}, 413, "over the limit of 16777216 bytes"),
    ],
)
def test_bad_audio_is_a_one_line_4xx(client, body, query, status, message):
    answer = transcribe(client, body, **query)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "rnnkit-serve-" not in error


def test_an_upload_is_refused_while_it_streams_past_the_limit(speech_run):
    with TestClient(create_app([speech_run], ServeRecipe(max_audio=1000))) as small:
        declared = small.post("/api/runs/0/transcribe", content=silence_wav(1))
        chunked = small.post("/api/runs/0/transcribe", content=iter([b"x" * 600] * 3))
    assert "content-length" not in chunked.request.headers  # only the running count stops it
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json()["error"] == "the uploaded file is over the limit of 1000 bytes"


def test_a_panel_only_takes_its_own_tasks_uploads(client, tone_wav, scene_png):
    answer = client.post("/api/runs/1/transcribe", content=tone_wav.read_bytes())
    assert answer.status_code == 400 and "'caption' run, not a 'speech' run" in answer.text
    answer = client.post("/api/runs/0/describe", content=scene_png.read_bytes())
    assert answer.status_code == 400 and "'speech' run, not a 'caption' run" in answer.text
    assert client.get("/api/runs/0/transcribe").status_code == 405


def picture(data_url: str) -> np.ndarray:
    head, encoded = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))


@pytest.mark.parametrize(("beam", "n_best"), [(1, 1), (3, 3)])
def test_captions_are_the_apis_with_each_words_attention(
    client, caption_run, scene_png, beam, n_best
):
    answer = describe(client, scene_png.read_bytes(), beam=beam, n_best=n_best)
    assert answer.status_code == 200
    result = answer.json()
    captioner = caption.load(caption_run)
    expected = caption.describe(
        captioner, [scene_png], attention=True, beam_size=beam, n_best=n_best
    )[0]
    assert [(c["text"], c["words"]) for c in result["captions"]] == [
        (c.text, c.words) for c in expected
    ]
    for got, want in zip(result["captions"], expected):
        assert got["log_prob"] == pytest.approx(want.log_prob, abs=1e-4)
        assert np.allclose(got["attention"], want.attention, atol=1e-4)
        assert len(got["attention"]) == len(want.words) + 1  # each word and the end
    assert result["grid"] == 4 and result["decoder"] == "attention"  # 32 px -> a 4x4 grid
    seen = caption.api.read_images(captioner, [scene_png])[0]
    assert np.array_equal(picture(result["image"]), seen)  # the picture the model read


def test_any_picture_pillow_reads_can_be_uploaded(client, scene_png):
    png = describe(client, scene_png.read_bytes(), beam=1).json()
    rgba = io.BytesIO()
    Image.open(scene_png).convert("RGBA").save(rgba, format="TIFF")  # opaque: the same picture
    tiff = describe(client, rgba.getvalue(), beam=1).json()
    assert tiff["captions"] == png["captions"]


def test_a_model_without_attention_gives_captions_only(tmp_path, caption_run, scene_png):
    from dataclasses import replace

    recipe = replace(caption.load(caption_run).recipe, decoder="mean", max_steps=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        caption.train(tmp_path / "mean", recipe=recipe)
    with TestClient(create_app([tmp_path / "mean"])) as plain:
        result = plain.post("/api/runs/0/describe", content=scene_png.read_bytes()).json()
    assert result["decoder"] == "mean" and result["grid"] == 0
    assert result["captions"] and all(c["attention"] is None for c in result["captions"])


@pytest.mark.parametrize(
    ("body", "query", "status", "message"),
    [
        (b"", {}, 400, "the uploaded file is empty (0 bytes)"),
        (b"GIF89a but not really", {}, 400, "the uploaded file is not an image Pillow can read"),
        ("truncated", {}, 400, "the uploaded file is damaged or truncated"),
        ("png", {"beam": "17"}, 400, "beam must be between 1 and 16"),
        ("png", {"beam": "2", "n_best": "5"}, 400, "n_best must be between 1 and 2"),
        ("png", {"beam": "two"}, 400, "beam must be a whole number"),
        (b"x" * (16 * 1024 * 1024 + 1), {}, 413, "over the limit of 16777216 bytes"),
    ],
)
def test_bad_pictures_are_a_one_line_4xx(client, scene_png, body, query, status, message):
    data = scene_png.read_bytes()
    body = {"png": data, "truncated": data[: len(data) // 2]}.get(body, body)
    answer = describe(client, body, **query)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "rnnkit-serve-" not in error
