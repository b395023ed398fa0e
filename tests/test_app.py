"""The app (``python -m qinn_lib.app``): notebook 02's live panels served by Voila from
notebooks/explore.ipynb. Each session has its own folder and writes its fits there; the notebook
and its twin agree and commit no outputs; and (marked ``browser``) the served app in headless
Chromium: move the depth slider, fit, the fit appears and is written to this visitor's folder,
the model viewer loads the report's QINN, and a second visitor starts with a folder and fits of
their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import jupytext
import nbformat
import pytest

from qinn_lib import paths
from qinn_lib.notebook import app, model_viewer, serving, stills
from qinn_lib.training.config import QINNRunConfig

#: Voila's own lab template links FontAwesome's stylesheets from a CDN; its bundle carries the same
#: icons, so offline these two requests fail and nothing is missing (the fit/stop/load icons show).
#: Any other request to another host fails the test.
VOILA_FONTAWESOME = "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@"


def test_each_session_gets_its_own_folder_and_is_the_kernels_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_APP_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("QINN_PROFILE", "quick")
    first = app.start_session()
    assert os.environ["QINN_OUTPUT_DIR"] == str(first.folder) and paths.output_dir() == first.folder
    second = app.start_session()
    assert first.id != second.id and first.folder != second.folder
    assert first.folder.parent == second.folder.parent == tmp_path / "sessions"
    assert json.loads((first.folder / "session.json").read_text())["profile"] == "quick"
    assert first.id in first.describe() and "profile quick" in first.describe()


def test_an_unwritable_app_folder_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("QINN_APP_DIR", str(blocker))
    with pytest.raises(OSError, match=r"app folder .*file is a file.*QINN_APP_DIR"):
        app.start_session()


def test_the_explorer_writes_each_kept_fit_to_the_session_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_APP_DIR", str(tmp_path))
    monkeypatch.setenv("QINN_PROFILE", "quick")
    session = app.start_session()
    explorer, viewer = app.panels(session)
    assert explorer.steps.value == 30, "the quick profile caps the explorer's steps"
    default = QINNRunConfig(profile="paper")
    if viewer.candidates:
        assert viewer.candidates[viewer.choice.index].cfg == default, "the viewer opens on notebook 03's QINN"
    explorer.layers.value = 2
    explorer.fit()
    explorer.wait(120)
    assert len(explorer.results) == 1
    fits = json.loads((session.folder / "fits.json").read_text())
    assert len(fits) == 1 and fits[0]["n_layers"] == 2 and fits[0]["steps"] == 30
    assert fits[0]["final_mse"] == pytest.approx(explorer.results[0]["final_mse"])
    assert len(fits[0]["history"]) == 30
    assert (session.folder / "depth_fits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "saved to fits.json (1 in this session)" in explorer.job.status.value
    # a folder that cannot be written: the fit is kept in the panel, the status says it was not saved
    shutil.rmtree(session.folder)
    session.folder.write_text("")
    explorer.fit()
    explorer.wait(120)
    assert len(explorer.results) == 2
    assert "not saved: cannot write" in explorer.job.status.value and str(session.folder) in explorer.job.status.value


def test_explore_notebook_is_paired_and_commits_no_outputs():
    nb_path = serving.notebook_path()
    nb = nbformat.read(nb_path, as_version=4)
    py = jupytext.read(nb_path.with_suffix(".py"))
    code = lambda n: [c.source.strip() for c in n.cells if c.cell_type == "code"]  # noqa: E731
    assert code(nb) == code(py), "run `jupytext --sync notebooks/explore.py`"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "app.start_session()" in "\n".join(code(nb))


def test_the_voila_command_serves_the_notebook_with_a_preheated_kernel():
    pytest.importorskip("voila")
    cmd = serving.voila_command(8866)
    assert cmd[1] == str(paths.notebooks_dir() / "explore.ipynb")
    assert "--preheat_kernel=True" in cmd and "--pool_size=1" in cmd and "--no-browser" in cmd
    config = json.loads((paths.repo_root() / "voila.json").read_text())
    assert config["VoilaConfiguration"]["preheat_kernel"] is True, "plain `voila notebooks/explore.ipynb` preheats too"


@pytest.mark.browser
def test_the_app_serves_both_panels_and_a_fit_lands_in_the_visitors_folder(tmp_path, browser_needs, record_property):
    browser_needs("voila")  # stills.open_app drives the same Chromium ($QINN_CHROMIUM)
    from playwright.sync_api import sync_playwright

    sessions = tmp_path / "sessions"
    env = dict(os.environ, QINN_PROFILE="quick", QINN_APP_DIR=str(sessions),
               PYTHONPATH=os.pathsep.join(filter(None, [str(paths.repo_root()), os.environ.get("PYTHONPATH")])))
    for name in ("QINN_OUTPUT_DIR", "QINN_MODELS", "QINN_RUNNER"):
        env.pop(name, None)
    times = {}
    problems: list[str] = []
    t0 = time.monotonic()
    with serving.serve(env=env, log=tmp_path / "voila.log") as server, sync_playwright() as p:
        times["listening"] = server["seconds"]
        browser = p.chromium.launch(executable_path=stills.CHROMIUM, args=stills.CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 1400})
        context.on("request", lambda r: r.url.startswith(server["url"]) or r.url.startswith(("data:", "blob:"))
                   or r.url.startswith(VOILA_FONTAWESOME) or problems.append(f"request to another host: {r.url}"))
        context.on("weberror", lambda e: problems.append(f"page error: {e.error}"))
        try:
            page = context.new_page()
            page.goto(server["url"], timeout=240_000)
            for css in stills.SHOTS:
                page.wait_for_selector(f".{css}", timeout=240_000)
            times["cold_start"] = time.monotonic() - t0
            text = page.locator("body").inner_text()
            session = re.search(r"app session (\S+):", text).group(1)
            assert "profile quick" in text and "fits kept: 0" in text
            assert (sessions / session / "session.json").is_file()

            slider = page.locator(".qinn-depth-explorer .widget-slider",
                                  has=page.locator("label", has_text=re.compile(r"^layers$")))
            handle = slider.locator(".noUi-handle").first
            handle.scroll_into_view_if_needed()
            handle.click()
            handle.press("ArrowRight")
            page.wait_for_function("() => document.body.innerText.includes('of 5 layers')", timeout=60_000)
            t = time.monotonic()
            status = stills.run_fit(page, timeout_ms=120_000)
            times["fit"] = time.monotonic() - t
            assert re.search(r"5 layers, 8 ISP layers, seed 1234: final MSE \d\.\d+e[-+]\d+ after 30 steps", status)
            page.wait_for_function("() => document.body.innerText.includes('saved to fits.json (1 in this session)')",
                                   timeout=30_000)  # written just after the fit is drawn
            fits = json.loads((sessions / session / "fits.json").read_text())
            assert [(f["n_layers"], f["steps"]) for f in fits] == [(5, 30)]
            assert page.locator(".qinn-depth-explorer img").evaluate_all(
                "imgs => imgs.filter(i => i.naturalWidth > 0).length") == 2, "the circuit and the comparison"

            t = time.monotonic()
            loaded = stills.load_model(page, timeout_ms=180_000)
            times["load_model"] = time.monotonic() - t
            table1 = next(c for c in model_viewer.available_qinns() if c.cfg == QINNRunConfig(profile="paper"))
            assert f"loaded {table1.label} (shipped model)" in loaded.replace("\xa0", " "), "notebook 03's QINN"

            # a second visitor: a kernel, a session and fits of their own
            t = time.monotonic()
            other = context.new_page()
            other.goto(server["url"], timeout=240_000)
            other.wait_for_selector(".qinn-depth-explorer", timeout=240_000)
            times["second_visitor"] = time.monotonic() - t
            text2 = other.locator("body").inner_text()
            session2 = re.search(r"app session (\S+):", text2).group(1)
            assert session2 != session and "fits kept: 0" in text2
            assert not (sessions / session2 / "fits.json").exists()
            assert len(json.loads((sessions / session / "fits.json").read_text())) == 1
            # Voila renders outputs as nbconvert's lab template: stdout as text/plain, stderr marked
            assert page.locator(".jp-OutputArea-output[data-mime-type='text/plain']", has_text="app session").count() == 1
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts() == []
            assert "error when executing cell" not in page.locator("body").inner_text()
        finally:
            browser.close()
    assert problems == []
    times["total"] = time.monotonic() - t0
    for k, v in times.items():
        record_property(f"seconds_{k}", round(v, 1))
    print("app test: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
