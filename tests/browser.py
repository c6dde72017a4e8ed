"""Open a page in a real headless Chromium (Debian's, driven by Playwright) and report what a reader sees.

Tests that need a browser skip with a reason where Chromium or Playwright is missing; CI installs both.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """The system Chromium, or skip the test saying how to get it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no system Chromium: `apt-get install chromium` (make test does it when run as root)")
    return path


@dataclass
class Seen:
    """What the page showed: the visible text of its prose, its rendered formulas, and every request."""

    prose_text: str
    formulas: int
    empty_formulas: int
    requests: list[str]


def look_at(page_path: Path, prose_selector: str = ".text_cell_render, .jp-RenderedMarkdown",
            screenshot: Path | None = None) -> Seen:
    """Load a local HTML file and read it as a reader would (layout done, nothing fetched from outside)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is part of the dev install")
    executable = chromium_path()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            prose = page.eval_on_selector_all(prose_selector, "els => els.map(e => e.innerText).join('\\n')")
            area = "e => { const r = e.getBoundingClientRect(); return r.width * r.height; }"
            sizes = page.eval_on_selector_all("math", f"els => els.map({area})")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Seen(prose, len(sizes), sum(1 for s in sizes if s <= 0), requests)
