"""A real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by Playwright, the committed
notebook 02 opened as a user would, Run All (quick profile, chosen through the environment as the
reports runner does), then the depth explorer: move the depth slider, press fit, and the
comparison gains a point; then the model viewer: press load (a model is selected) and its event
table shows labels, not LaTeX. No cell may show an error, and nothing committed may change: the
notebook opens read-only (qinn_lib.notebook.lab) and the run writes its figures to its own output folder.

Marked ``browser`` (about a minute): CI runs it (.ci/run installs chromium and sets
QINN_REQUIRE_BROWSER=1, so a missing browser fails instead of skipping); the quick developer loop
skips it with ``-m "not browser"``. Playwright's own browser download is never used:
``executable_path`` points at the system Chromium (``$QINN_CHROMIUM``, default /usr/bin/chromium).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from qinn_lib import paths

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("QINN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTEBOOK = "02_circuit_and_inverse.ipynb"


def _require_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium, or set QINN_CHROMIUM)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("QINN_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _committed_state() -> dict[str, str]:
    """sha256 of every committed notebook, twin and figure."""
    root = paths.repo_root()
    files = [*sorted(paths.notebooks_dir().glob("*")), *sorted(p for p in (root / "figures").rglob("*") if p.is_file())]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on the repository, as ``jupyter lab`` with the qinn extension enabled."""
    _require_browser()
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, QINN_PROFILE="quick", QINN_OUTPUT_DIR=str(tmp_path / "out"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(paths.repo_root()), os.environ.get("PYTHONPATH")])))
    for name in ("QINN_MODELS", "QINN_RUNNER", "QINN_EDIT_NOTEBOOKS"):
        env.pop(name, None)
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={paths.repo_root()}",
           "--ServerApp.jpserver_extensions={'qinn_lib.notebook.lab': True}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "out": tmp_path / "out", "log": tmp_path / "lab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _errors(page) -> list[str]:
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()


def _fits_kept(page) -> int:
    text = page.locator("text=/fits kept: \\d+/").first.inner_text()
    return int(re.search(r"fits kept: (\d+)", text).group(1))


def test_notebook_02_runs_in_jupyterlab_and_the_explorer_gains_a_point(lab, record_property):
    from playwright.sync_api import sync_playwright

    before = _committed_state()
    contents = json.load(urllib.request.urlopen(
        f"{lab['base']}/api/contents/notebooks/{NOTEBOOK}?content=0&token={lab['token']}"))
    assert contents["writable"] is False, "the committed report must open read-only"
    times = {}
    t0 = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['base']}/lab/tree/notebooks/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_function("() => document.body.innerText.includes('Idle')", timeout=120_000)
            times["open"] = time.monotonic() - t0
            assert page.get_by_text("notebook is read-only").count() == 1

            t = time.monotonic()
            page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
            page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_function("""() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
                return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
            }""", timeout=900_000, polling=500)
            times["run_all"] = time.monotonic() - t
            assert _errors(page) == []
            assert page.get_by_text("[qinn] profile quick (set by $QINN_PROFILE)").count() == 1
            kept = _fits_kept(page)
            assert kept >= 1, "the explorer starts from the static scan"

            slider = page.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^layers$")))
            handle = slider.locator(".noUi-handle").first
            handle.scroll_into_view_if_needed()
            handle.click()
            handle.press("ArrowRight")
            page.wait_for_function("() => document.body.innerText.includes('of 5 layers')", timeout=60_000)

            t = time.monotonic()
            page.locator(".widget-button", has_text=re.compile(r"^\s*fit\s*$")).click()
            page.wait_for_function(f"() => /fits kept: {kept + 1}\\b/.test(document.body.innerText)", timeout=300_000)
            times["fit"] = time.monotonic() - t
            assert page.get_by_text(re.compile(r"5 layers, 8 ISP layers, seed \d+: final MSE")).count() == 1
            assert _errors(page) == []

            # the viewer: a model is selected, so "load" loads it (it did nothing visible before)
            t = time.monotonic()
            load = page.locator(".widget-button", has_text=re.compile(r"^\s*load\s*$"))
            load.scroll_into_view_if_needed()
            load.click()
            page.wait_for_function("() => /loaded (shipped|build)/.test(document.body.innerText)", timeout=300_000)
            times["load"] = time.monotonic() - t
            table = page.locator(".widget-html table").last.inner_text()
            assert "x̃ − x" in table and "$" not in table and "\\ell" not in table, "the table shows labels, not LaTeX"
            if os.environ.get("QINN_BROWSER_SCREENSHOT"):
                page.screenshot(path=os.environ["QINN_BROWSER_SCREENSHOT"], full_page=True)
            assert _errors(page) == []
        finally:
            browser.close()
    times["total"] = time.monotonic() - t0
    for k, v in times.items():
        record_property(f"seconds_{k}", round(v, 1))
    print("browser test: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    assert (lab["out"] / "02_depth_scan.png").is_file(), "the run's figures go to its own output folder"
    assert _committed_state() == before, "running the committed notebook changed committed files"
