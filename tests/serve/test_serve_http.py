"""Every endpoint of the playground over HTTP (starlette's TestClient, and a real server for
concurrent requests): good answers checked against the applications' APIs, bad input -> 4xx."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from starlette.testclient import TestClient

from rnnkit import forecast, lm, translate
from rnnkit.errors import RunDirError
from rnnkit.serve import ServeRecipe, create_app
from rnnkit.serve.app import STATIC, is_loopback


@pytest.fixture(scope="module")
def client(lm_run, translate_run, forecast_run):
    with TestClient(create_app([lm_run, translate_run, forecast_run])) as client:
        yield client


def events(body: str) -> list[tuple[str, dict]]:
    """The (name, data) of each server-sent event in ``body``."""
    found = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_page_and_its_files_are_served_with_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("app.js", "app.css"):
        assert f"/static/{name}" in page.text
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():  # no CDN: the only URL is the SVG namespace
        text = path.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
    assert client.get("/static/../recipe.py").status_code == 404


def test_runs_are_listed_with_config_and_training_records(client, lm_run):
    runs = client.get("/api/runs").json()
    assert [(r["id"], r["task"], r["name"]) for r in runs] == [
        (0, "lm", "words"), (1, "translate", "fr"), (2, "forecast", "load"),
    ]  # fmt: skip
    details = client.get("/api/runs/0").json()
    assert details["config"]["model"]["hidden_size"] == 16
    splits = {r["split"] for r in details["metrics"]}
    assert splits == {"train", "valid"} and max(r["step"] for r in details["metrics"]) == 40
    # the curves' legend says what each task's loss is per (it said nats/token for every task)
    units = [client.get(f"/api/runs/{i}").json()["loss_unit"] for i in range(3)]
    assert units == ["nats/token", "nats/token", "nats/value"]


@pytest.mark.parametrize("path", ["/api/runs/3", "/api/runs/abc", "/api/runs/-1/generate"])
def test_only_the_named_runs_exist(client, path):
    answer = client.get(path, params={"prime": "to"})
    assert answer.status_code == 404 and "served runs are 0 to 2" in answer.json()["error"]


def test_generation_streams_what_the_api_generates(client, lm_run):
    query = {"prime": "to be", "length": 30, "greedy": "true"}
    answer = client.get("/api/runs/0/generate", params=query)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    found = events(answer.text)
    assert found[0] == ("prime", {"text": "to be"}) and found[-1] == ("done", {})
    tokens = [data for name, data in found if name == "token"]
    expected = lm.generate(lm.load(lm_run), "to be", length=30, greedy=True)
    assert "to be" + "".join(t["text"] for t in tokens) == expected
    for token in tokens:  # greedy: the chosen token is the most likely one
        assert token["prob"] == token["alternatives"][0][1] and len(token["hidden"]) == 16


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "prime is missing"),
        ({"prime": "x" * 1001}, "limit is 1000"),
        ({"prime": "to", "length": "0"}, "length must be between 1 and 2000"),
        ({"prime": "to", "length": "9999"}, "length must be between"),
        ({"prime": "to", "length": "ten"}, "length must be a whole number"),
        ({"prime": "to", "temperature": "0"}, "temperature must be in (0.0, 10.0]"),
        ({"prime": "to", "temperature": "nan"}, "temperature must be in"),
        ({"prime": "to", "top_p": "1.5"}, "top_p must be in"),
        ({"prime": "to", "top_k": "0"}, "top_k must be between"),
        ({"prime": "to", "beam": "99"}, "beam must be between 1 and 16"),
        ({"prime": "to", "greedy": "maybe"}, "greedy must be true or false"),
        ({"prime": "to", "seed": "-3"}, "seed must be between"),
        ({"prime": "to ZZ"}, "outside the model's vocabulary: 'Z'"),
    ],
)
def test_bad_generation_settings_are_one_line_400s(client, query, message):
    answer = client.get("/api/runs/0/generate", params=query)
    assert answer.status_code == 400
    assert message in answer.json()["error"] and "Traceback" not in answer.text


def test_translation_gives_the_n_best_list_with_attention(client, translate_run):
    answer = client.post("/api/runs/1/translate", json={"text": "red cat %d", "beam": 3})
    assert answer.status_code == 200
    result = answer.json()
    expected = translate.translate_with_attention(
        translate.load(translate_run), "red cat %d", beam_size=3, n_best=3
    )
    assert result["source"] == ["red", "cat", "%d"]
    assert [h["text"] for h in result["hypotheses"]] == [a.translation.text for a in expected]
    for hypothesis, attended in zip(result["hypotheses"], expected):
        assert hypothesis["target"] == attended.target
        weights = torch.tensor(hypothesis["attention"])
        assert torch.allclose(weights, attended.weights, atol=1e-4)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "text is missing"),
        (json.dumps({"text": "x" * 1001}).encode(), "limit is 1000"),
        (json.dumps({"text": "red", "beam": 17}).encode(), "beam must be between 1 and 16"),
        (json.dumps({"text": "red", "beam": 2, "n_best": 3}).encode(), "n_best must be between"),
        (json.dumps({"text": "zzz qqq"}).encode(), "no token of 'zzz qqq'"),
        (b'{"text": "' + b"a " * 40000 + b'"}', "over the limit of 65536 bytes"),
    ],
)
def test_bad_translation_requests_are_one_line_4xx(client, body, message):
    answer = client.post("/api/runs/1/translate", content=body)
    assert answer.status_code == (413 if "limit of" in message else 400)
    assert message in answer.json()["error"]


def test_forecast_of_the_runs_data_and_of_an_uploaded_csv(client, forecast_run, write_hourly_csv):
    fc = forecast.load(forecast_run)
    answer = client.post("/api/runs/2/forecast", json={})
    assert answer.status_code == 200
    assert answer.json()["series"] == forecast.predict(fc)["series"]
    csv = write_hourly_csv(forecast_run.parent / "other.csv", hours=150)
    answer = client.post("/api/runs/2/forecast", json={"csv": csv.read_text(), "horizon": 4})
    assert answer.status_code == 200 and answer.json()["data"] == "the uploaded CSV"
    expected = forecast.predict(fc, data=str(csv), horizon=4)["series"]
    assert answer.json()["series"] == expected and len(expected[0]["bands"]["0.5"]) == 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"horizon": 0}, "horizon must be between 1 and 2000"),
        ({"horizon": 7}, "horizon 7 is longer than the model was trained for (6)"),
        ({"csv": "time,load\n2024-01-01 00:00,1\n"}, "the uploaded CSV: every series has a single"),
        ({"csv": "time,load\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n"}, "fewer than the context"),
        ({"csv": "x" * (2 * 1024 * 1024 + 1)}, "limit is 2097152"),
    ],
)
def test_bad_forecast_requests_are_one_line_400s(client, body, message):
    answer = client.post("/api/runs/2/forecast", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_a_panel_only_serves_its_own_task(client):
    answer = client.get("/api/runs/1/generate", params={"prime": "red"})
    error = answer.json()["error"]
    assert answer.status_code == 400 and "'translate' run, not an 'lm' run" in error
    answer = client.post("/api/runs/0/translate", json={"text": "red"})
    assert answer.status_code == 400 and "not a 'translate' run" in answer.json()["error"]
    assert client.get("/api/runs/0/translate").status_code == 405


def test_only_run_directories_can_be_served(tmp_path: Path, lm_run):
    with pytest.raises(RunDirError, match="no run directory"):
        create_app([lm_run, tmp_path / "missing"])
    with pytest.raises(RunDirError, match="at least one"):
        create_app([])


def test_limits_come_from_the_recipe(lm_run):
    with TestClient(create_app([lm_run], ServeRecipe(max_length=5))) as client:
        answer = client.get("/api/runs/0/generate", params={"prime": "to", "length": 6})
    assert answer.status_code == 400 and "between 1 and 5" in answer.json()["error"]


def test_loopback_addresses_are_recognised():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_a_slow_generation_does_not_hold_up_other_requests(served, monkeypatch):
    """Generation runs off the event loop: while one stream is stuck, the others answer."""
    release = threading.Event()
    waited: list[bool] = []

    def slow_steps(model, prime, *, on_step, **settings):
        waited.append(release.wait(timeout=10))  # stuck until the other request has answered

    monkeypatch.setattr(lm, "generate_steps", slow_steps)
    monkeypatch.setattr("rnnkit.lm.api.generate_steps", slow_steps)
    slow = threading.Thread(
        target=lambda: urllib.request.urlopen(f"{served}/api/runs/0/generate?prime=to").read()
    )
    slow.start()
    time.sleep(0.3)  # the slow stream is running
    start = time.monotonic()
    with urllib.request.urlopen(f"{served}/api/runs", timeout=5) as answer:
        assert len(json.load(answer)) == 5
    assert time.monotonic() - start < 2
    release.set()
    slow.join(timeout=10)
    assert waited == [True]  # the stuck generation was released by the other request
