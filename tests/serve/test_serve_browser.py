"""The playground in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright's Python package; no browser download) against a server with two tiny trained runs.

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
    assert page.locator("nav button").count() == 3
    assert "hidden_size" in page.locator("#config").inner_text()

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
    page.click("#forecast-form button[type=submit]")
    page.wait_for_selector("svg.forecast path.median", state="attached")
    assert page.locator("svg.forecast path.band80").count() == 1
    screenshot(page, tmp_path, "forecast", "#forecast-panel")
    assert page.outside == []  # nothing but the local server was asked for anything
    print(f"\nfirst page load {load_ms:.0f} ms; first generated character {first_char_ms:.0f} ms")
