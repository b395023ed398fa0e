"""The web book's stills of the live panels (``python -m qinn_lib.app stills``): the app is
served (:func:`qinn_lib.notebook.serving.serve`), headless Chromium opens it, the depth explorer runs
one fit at its defaults and the model viewer loads its first model, and each panel is
photographed as the visitor sees it, into ``figures/app/`` (:func:`qinn_lib.notebook.book.stills_dir`).

A maintenance step, run after a panel changes; it needs Playwright (the dev extra) and Chromium
(``$QINN_CHROMIUM``, default ``/usr/bin/chromium``; Playwright's own browser download is never used).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from qinn_lib import paths
from qinn_lib.errors import QinnError
from qinn_lib.notebook import book, serving

CHROMIUM = os.environ.get("QINN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: CSS classes of the panels (qinn_lib.notebook.app), and the still each becomes.
SHOTS = {"qinn-depth-explorer": "depth_explorer.png", "qinn-model-viewer": "model_viewer.png"}


def open_app(playwright, url: str, *, width: int = 1100, height: int = 2400, scale: float = 1,
             timeout_ms: int = 300_000):
    """Chromium on the app at ``url``, once both panels are drawn: (browser, page). The window is
    tall enough for a whole panel: Voila scrolls its own container, so a panel taller than the
    window is photographed cut. ``scale`` is the device pixel ratio (2: a still stays sharp when
    the book shows it narrower than the app)."""
    if not Path(CHROMIUM).is_file():
        raise QinnError(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set QINN_CHROMIUM)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
    page.goto(url, timeout=timeout_ms)
    for css in SHOTS:
        page.wait_for_selector(f".{css}", timeout=timeout_ms)
    return browser, page


def run_fit(page, *, timeout_ms: int = 600_000) -> str:
    """Press the explorer's **fit** and wait for the fit to be kept; returns the status line."""
    panel = page.locator(".qinn-depth-explorer")
    before = int(re.search(r"fits kept: (\d+)", panel.inner_text()).group(1))
    panel.locator(".widget-button", has_text=re.compile(r"^\s*fit\s*$")).click()
    page.wait_for_function(
        f"() => /fits kept: {before + 1}\\b/.test(document.querySelector('.qinn-depth-explorer').innerText)",
        timeout=timeout_ms, polling=500)
    return panel.inner_text()


def load_model(page, *, timeout_ms: int = 600_000) -> str:
    """Press the viewer's **load** and wait until the model is drawn; returns the status line."""
    panel = page.locator(".qinn-model-viewer")
    panel.locator(".widget-button", has_text=re.compile(r"^\s*load\s*$")).click()
    page.wait_for_function(
        "() => /loaded .* generated events against/.test(document.querySelector('.qinn-model-viewer').innerText)",
        timeout=timeout_ms, polling=500)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.qinn-model-viewer img')].filter(i => i.naturalWidth > 0).length >= 2",
        timeout=timeout_ms, polling=500)
    return panel.inner_text()


def make_stills(out: Path | None = None) -> list[Path]:
    """Photograph both panels in a freshly served app; returns the written PNGs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise QinnError("the stills need Playwright: pip install -e '.[dev]'") from None
    out = book.stills_dir() if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, QINN_APP_DIR=str(Path(tmp) / "sessions"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(paths.repo_root()), os.environ.get("PYTHONPATH")])))
        with serving.serve(env=env, log=Path(tmp) / "voila.log") as server, sync_playwright() as p:
            browser, page = open_app(p, server["url"], width=900, scale=2)
            try:
                run_fit(page)
                load_model(page)
                page.wait_for_timeout(500)
                for css, name in SHOTS.items():
                    page.locator(f".{css}").screenshot(path=str(out / name))
                    written.append(out / name)
            finally:
                browser.close()
    return written
