"""The playground in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright's Python package; no browser download) against a server with five tiny trained
runs (language model, translation, forecast, speech, captioning). Chromium's fake microphone
(a beep) stands in for a real one to test recording.

Set ``RNNKIT_SCREENSHOTS=DIR`` to keep the screenshots (docs/images/ holds the ones in the
docs). Page load and time to the first generated character are printed, not asserted.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",  # a fake microphone
]  # fmt: skip


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}; install it with: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(served) else outside.append(r.url))
        page.outside = outside
        page.on("console", lambda m: print("console:", m.text))
        page.on("pageerror", lambda e: print("page error:", e))
        yield page
        browser.close()


def screenshot(page, tmp_path: Path, name: str, selector: str) -> None:
    folder = Path(os.environ.get("RNNKIT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"playground-{name}.png"
    page.locator(selector).screenshot(path=str(path))
    assert path.stat().st_size > 5000  # an image with something on it


def test_generate_hover_and_attention_in_a_real_browser(page, served, tmp_path):
    page.goto(served + "/", wait_until="load")
    load_ms = page.evaluate(
        "performance.getEntriesByType('navigation')[0].loadEventEnd"
    )  # from navigation start
    page.wait_for_selector(
        "#curves svg path", state="attached"
    )  # the first run opens with its curves
    assert page.locator("nav button").count() == 5
    assert "hidden_size" in page.locator("#config").inner_text()
    assert "train loss (nats/token)" in page.locator("#curves .legend").inner_text()

    page.fill("#lm-form textarea[name=prime]", "to be ")
    page.fill("#lm-form input[name=length]", "120")
    page.fill("#lm-form input[name=seed]", "1")
    page.click("#lm-form button[type=submit]")
    page.wait_for_selector("#lm-output[data-done='1']", timeout=20_000)
    tokens = page.locator("#lm-output .tok")
    assert tokens.count() == 120
    assert page.locator("#lm-output .prime").inner_text() == "to be "
    timing = page.evaluate("window.playground.timing")
    first_char_ms = timing["firstTokenAt"] - timing["requestAt"]

    letter = tokens.filter(has_text=re.compile(r"\w")).nth(2)  # a visible character
    letter.hover()
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible")
    assert page.locator("#tooltip table.alternatives tr").count() == 5
    assert "%" in tooltip.inner_text()
    screenshot(page, tmp_path, "lm", "main")

    page.check("input[name=shade][value=unit]")
    page.fill("#unit", "3")
    shaded = letter.evaluate("e => e.style.background")
    assert "37, 99, 235" in shaded or "220, 38, 38" in shaded  # a unit's sign colour
    screenshot(page, tmp_path, "units", "#lm-panel")

    page.click("nav button[data-run='1']")
    page.wait_for_selector("#translate-panel:not([hidden])")
    page.fill("#translate-form textarea[name=text]", "open red file %d")
    page.click("#translate-form button[type=submit]")
    page.wait_for_selector("table.heat tbody tr")
    assert page.locator("#nbest li").count() == 5
    assert page.locator("table.heat thead th").count() == 1 + 4  # corner + source tokens
    page.click("#nbest li >> nth=1")
    assert page.locator("#nbest li.active").get_attribute("data-i") == "1"
    screenshot(page, tmp_path, "translate", "#translate-panel")

    page.fill("#translate-form textarea[name=text]", "x" * 1001)
    page.click("#translate-form button[type=submit]")
    page.wait_for_selector("#translate-error:not([hidden])")
    assert "limit is 1000" in page.locator("#translate-error").inner_text()

    page.click("nav button[data-run='2']")
    page.wait_for_selector("#forecast-panel:not([hidden])")
    assert "valid loss (nats/value)" in page.locator("#curves .legend").inner_text()
    page.click("#forecast-form button[type=submit]")
    page.wait_for_selector("svg.forecast path.median", state="attached")
    assert page.locator("svg.forecast path.band80").count() == 1
    screenshot(page, tmp_path, "forecast", "#forecast-panel")
    assert page.outside == []  # nothing but the local server was asked for anything
    print(f"\nfirst page load {load_ms:.0f} ms; first generated character {first_char_ms:.0f} ms")


def painted(page, selector: str) -> int:
    """How many pixels of the canvas at ``selector`` are not blank (transparent or white)."""
    return page.locator(selector).evaluate(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 0; i < d.length; i += 4)
                    if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
                  return n; }"""
    )


def test_transcribe_an_upload_and_a_recording_in_a_real_browser(page, served, tones, tmp_path):
    import random

    import soundfile

    page.goto(served + "/", wait_until="load")
    page.click("nav button[data-run='3']")
    page.wait_for_selector("#speech-panel:not([hidden])")
    wav = tmp_path / "abc.wav"
    soundfile.write(wav, tones.tone_word("abc", random.Random(1)), 16000, subtype="PCM_16")
    page.set_input_files("#speech-form input[name=audio]", str(wav))
    page.fill("#speech-form input[name=beam]", "4")
    page.fill("#speech-form input[name=nbest]", "3")
    page.click("#speech-form button[type=submit]")
    page.wait_for_selector("#speech[data-done='1']", timeout=60_000)
    assert page.locator("#speech .transcript").inner_text() == "abc"  # the tones it learned
    assert page.locator("#speech-nbest li").count() == 3
    assert page.locator("#speech table.words tbody tr").count() == 1  # one word: "abc"
    view = page.locator("canvas.posteriors")
    assert painted(page, "canvas.posteriors") > 10_000  # spectrogram, posteriors, characters
    # The heat map, read back: row k is class k, column t frame t, opacity its probability.
    cells = view.evaluate(
        """c => {
            const { posteriors, step_seconds } = state.speech;
            const d = c.dataset, g = c.getContext("2d");
            return posteriors.flatMap((p, t) => p.map((_, k) => {
                const x = +d.left + ((t + 0.5) * step_seconds / +d.seconds) * +d.plotWidth;
                const y = +d.rowsTop + (k + 0.5) * +d.rowHeight;
                return [p[k], g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data[3]];
            }));
        }"""
    )
    assert len(cells) > 40 and all(abs(alpha - 255 * p) <= 3 for p, alpha in cells)
    box = view.bounding_box()
    view.hover(position={"x": box["width"] * 0.4, "y": box["height"] * 0.6})
    page.locator("#tooltip").wait_for(state="visible")
    assert "frame" in page.locator("#tooltip").inner_text()
    assert page.locator("#tooltip table.alternatives tr").count() == 4  # blank, a, b, c
    page.mouse.move(0, 0)
    screenshot(page, tmp_path, "speech", "#speech-panel")

    page.set_input_files("#speech-form input[name=audio]", str(Path(__file__)))
    page.click("#speech-form button[type=submit]")
    page.wait_for_selector("#speech-error:not([hidden])", timeout=60_000)
    assert "cannot read the uploaded file as audio" in page.locator("#speech-error").inner_text()

    # The record button with Chromium's fake microphone: recorded, encoded as WAV, transcribed.
    page.click("#record")
    page.wait_for_selector("#record-state:has-text('recording')")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_selector("#speech[data-done='1']", timeout=60_000)
    assert page.locator("#speech-error").is_hidden()
    heard = float(page.locator("#speech p.hint").first.inner_text().split()[0])
    assert 1.0 < heard < 5.0  # seconds of audio the server read from the recording
    assert page.locator("#record").inner_text() == "Record"
    assert painted(page, "canvas.posteriors") > 10_000
    assert page.outside == []


def test_caption_a_picture_and_see_each_words_attention_in_a_real_browser(page, served, tmp_path):
    from PIL import Image

    from rnnkit.caption import scenes

    page.goto(served + "/", wait_until="load")
    page.click("nav button[data-run='4']")
    page.wait_for_selector("#caption-panel:not([hidden])")
    picture = tmp_path / "scene.png"
    Image.fromarray(scenes.generate("test", 1, seed=3, size=96).images[0]).save(picture)
    page.set_input_files("#caption-form input[name=image]", str(picture))
    page.click("#caption-form button[type=submit]")
    page.wait_for_selector("#caption-large canvas.attention", timeout=60_000)
    assert page.locator("#caption-nbest li").count() == 3  # beam 3, n-best 3
    words = page.locator("#caption-nbest li.active").inner_text().split("log p")[0].split()
    thumbs = page.locator(".thumb")
    assert thumbs.count() == len(words) + 1  # each word and the end
    thumbs.nth(1).click()
    large = page.locator("#caption-large canvas.attention")
    assert large.get_attribute("data-word") == words[1]
    assert page.locator(".thumb.active").get_attribute("data-t") == "1"
    assert painted(page, "#caption-large canvas") > 0.9 * 360 * 360
    page.click("#caption-nbest li >> nth=2")
    assert page.locator("#caption-nbest li.active").get_attribute("data-i") == "2"
    screenshot(page, tmp_path, "caption", "#caption-panel")

    page.set_input_files("#caption-form input[name=image]", str(Path(__file__)))
    page.click("#caption-form button[type=submit]")
    page.wait_for_selector("#caption-error:not([hidden])", timeout=60_000)
    assert "not an image Pillow can read" in page.locator("#caption-error").inner_text()
    assert page.outside == []
