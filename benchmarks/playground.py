"""The playground's speed in a real browser, and the screenshots of docs/playground.md.

Trains five small runs for ``--minutes`` in all (a character LM on the default Shakespeare
corpus, an attentional translator on a generated corpus: a few words -> the same reversed and
upper-cased, a forecaster on the default Seattle temperatures, an acoustic model on the
synthesized spoken digits (a third of the time) and a captioner on the synthetic scenes), serves
them with ``rnnkit.serve`` on a free local port, and drives headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright) ``--repeats`` times:

- first page load: navigation start to the page's ``load`` event, fresh page each time;
- first byte: the page request sent to its first byte back; page weight: the bytes of the page
  and everything it loads (all from the local server);
- first character: from the click on Generate to the first streamed token on the page;
- characters per second of the stream (200 characters);
- transcribe: from the click on Transcribe (a 2-4 s test utterance) to the posterior view drawn;
- caption: from the click on Describe (a 192-px test scene, beam 3) to the attention overlay.

Screenshots of the five panels go to ``--screenshots`` (default docs/images).

    python benchmarks/playground.py --minutes 3               # the measurement
    python benchmarks/playground.py --minutes 1 --threads 1   # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from rnnkit import caption, forecast, lm, speech, translate
from rnnkit.caption import CaptionRecipe
from rnnkit.forecast import ForecastRecipe
from rnnkit.lm import LMRecipe
from rnnkit.speech import SpeechRecipe
from rnnkit.translate import TranslateRecipe
from rnnkit.translate.data import toy_pairs

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def parallel_corpus(path: Path, n: int = 2000) -> Path:
    lines = [f"{source}\t{target}" for source, target in toy_pairs(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_runs(root: Path, minutes: float) -> list[Path]:
    part = minutes / 6  # speech gets two parts
    lm.train(root / "shakespeare", recipe=LMRecipe(hidden_size=128, max_minutes=part))
    recipe = TranslateRecipe(
        data=str(parallel_corpus(root / "pairs.tsv")), hidden_size=32, embedding_dim=16,
        min_freq=1, dropout=0.0, label_smoothing=0.0, lr=1e-2, max_minutes=part,
        eval_every=50,
    )  # fmt: skip
    translate.train(root / "reverse", recipe=recipe)
    forecast.train(root / "seattle", recipe=ForecastRecipe(max_minutes=part))
    speech.train(root / "digits", recipe=SpeechRecipe(max_minutes=2 * part, eval_every=100))
    caption.train(root / "scenes", recipe=CaptionRecipe(max_minutes=part, eval_every=200))
    return [root / name for name in ("shakespeare", "reverse", "seattle", "digits", "scenes")]


def test_inputs(root: Path) -> tuple[str, Path]:
    """A test utterance of the spoken digits and a test scene at 192 px."""
    from PIL import Image

    from rnnkit.caption import scenes

    audio = speech.corpus(SpeechRecipe(), with_flite=False)["test"][0].path
    picture = root / "scene.png"
    Image.fromarray(scenes.generate("test", 1, seed=5, size=192).images[0]).save(picture)
    return audio, picture


def start_server(run_dirs: list[Path]) -> str:
    import uvicorn

    from rnnkit.serve import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(run_dirs), host="127.0.0.1", port=0, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


PAGE = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const files = [nav, ...performance.getEntriesByType("resource")];
    return [nav.loadEventEnd, nav.responseStart - nav.requestStart,
            files.reduce((n, e) => n + e.encodedBodySize, 0)];
}"""


def timed(page, click: str, done: str) -> float:
    """Milliseconds from clicking ``click`` to ``done`` appearing on the page."""
    start = time.perf_counter()
    page.click(click)
    page.wait_for_selector(done, state="attached", timeout=120_000)
    return (time.perf_counter() - start) * 1000


def measure(url: str, repeats: int, shots: Path, audio: str, picture: Path) -> dict:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[float]] = {
        name: [] for name in ("load_ms", "first_byte_ms", "page_kib", "first_char_ms",
                              "chars_per_s", "transcribe_ms", "caption_ms")
    }  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        for repeat in range(repeats):
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(url + "/", wait_until="load")
            load_ms, first_byte_ms, weight = page.evaluate(PAGE)
            found["load_ms"].append(load_ms)
            found["first_byte_ms"].append(first_byte_ms)
            found["page_kib"].append(weight / 1024)
            page.wait_for_selector("#lm-panel:not([hidden])")
            page.fill("#lm-form textarea[name=prime]", "ROMEO:\n")
            page.fill("#lm-form input[name=length]", "200")
            page.fill("#lm-form input[name=seed]", str(repeat))
            page.click("#lm-form button[type=submit]")
            page.wait_for_selector("#lm-output[data-done='1']", timeout=60_000)
            t = page.evaluate("window.playground.timing")
            end = page.evaluate("performance.now()")
            found["first_char_ms"].append(t["firstTokenAt"] - t["requestAt"])
            found["chars_per_s"].append(200 / max(end - t["firstTokenAt"], 1e-3) * 1000)
            if repeat == 0:
                take_screenshots(page, shots)
            page.click("nav button[data-run='3']")
            page.set_input_files("#speech-form input[name=audio]", audio)
            page.fill("#speech-form input[name=beam]", "8")
            page.fill("#speech-form input[name=nbest]", "3")
            found["transcribe_ms"].append(
                timed(page, "#speech-form button[type=submit]", "#speech[data-done='1']")
            )
            page.click("nav button[data-run='4']")
            page.set_input_files("#caption-form input[name=image]", str(picture))
            found["caption_ms"].append(
                timed(page, "#caption-form button[type=submit]", "#caption-large canvas")
            )
            if repeat == 0:
                media_screenshots(page, shots)
            page.close()
        browser.close()
    return found


def take_screenshots(page, shots: Path) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    page.locator("#lm-output .tok").filter(has_text=re.compile(r"\w")).nth(3).hover()
    page.wait_for_selector("#tooltip:not([hidden])")
    page.locator("#lm-panel").screenshot(path=str(shots / "playground-lm.png"))
    page.check("input[name=shade][value=unit]")
    page.fill("#unit", "5")
    page.locator("#lm-panel").screenshot(path=str(shots / "playground-units.png"))
    page.click("nav button[data-run='1']")
    page.fill("#translate-form textarea[name=text]", "open the big red file %d")
    page.click("#translate-form button[type=submit]")
    page.wait_for_selector("table.heat tbody tr")
    page.locator("#translate-panel").screenshot(path=str(shots / "playground-translate.png"))
    page.click("nav button[data-run='2']")
    page.click("#forecast-form button[type=submit]")
    page.wait_for_selector("svg.forecast path.median", state="attached")
    page.locator("#forecast-panel").screenshot(path=str(shots / "playground-forecast.png"))


def media_screenshots(page, shots: Path) -> None:
    """The speech and caption panels (their inputs are those measure() chose)."""
    page.click("nav button[data-run='3']")
    page.click("#speech-form button[type=submit]")
    page.wait_for_selector("#speech[data-done='1']", timeout=120_000)
    view = page.locator("canvas.posteriors")
    box = view.bounding_box()
    view.hover(position={"x": box["width"] * 0.45, "y": box["height"] * 0.6})
    page.locator("#speech-panel").screenshot(path=str(shots / "playground-speech.png"))
    page.click("nav button[data-run='4']")
    page.click("#caption-form button[type=submit]")
    page.wait_for_selector("#caption-large canvas", timeout=120_000)
    page.locator(".thumb").nth(3).click()
    page.locator("#caption-panel").screenshot(path=str(shots / "playground-caption.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of all runs")
    parser.add_argument("--repeats", type=int, default=5, help="page loads and generations")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--screenshots", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {args.threads}, load before {os.getloadavg()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run_dirs = train_runs(Path(tmp), args.minutes)
        audio, picture = test_inputs(Path(tmp))
        found = measure(start_server(run_dirs), args.repeats, args.screenshots, audio, picture)
    print(f"\n{'measure':<22}{'median':>10}{'min':>10}{'max':>10}   ({args.repeats} repeats)")
    for name, values in found.items():
        print(f"{name:<22}{statistics.median(values):>10.1f}{min(values):>10.1f}"
              f"{max(values):>10.1f}")  # fmt: skip
    print(f"load after {os.getloadavg()}; screenshots in {args.screenshots}")


if __name__ == "__main__":
    main()
