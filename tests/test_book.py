"""The web book (``python -m qinn_lib.book``): the staging that puts stills in place of the live
panels, the offline check, and (marked ``browser``) a real build read in headless Chromium: every
page loads without an error, every figure displays, the math is typeset, next/previous and the
sidebar lead where they should, and search finds a known word."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import re
import threading
import time

import nbformat
import pytest

from qinn_lib import paths
from qinn_lib.notebook import book
from qinn_lib.notebook.parameters import discover_notebooks
from qinn_lib.notebook.stills import CHROMIUM_ARGS

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _widget_cell(source: str, text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data={
        book.WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": text})]
    return cell


@pytest.fixture
def stills(tmp_path):
    for panel in book.PANELS:
        (tmp_path / panel.still).write_bytes(PNG)
    return tmp_path


def test_a_panel_output_becomes_its_still_and_a_pointer_to_the_app(stills):
    nb = nbformat.v4.new_notebook(cells=[
        _widget_cell("explorer = depth_explorer.depth_panel(x)\nexplorer.widget", "VBox(children=(HBox(..."),
        _widget_cell("viewer = model_viewer.ModelViewer()\nviewer.widget", "VBox(children=(..."),
    ])
    assert book.replace_panels(nb, "02.ipynb", stills) == 2
    for cell, panel in zip(nb.cells, book.PANELS):
        kinds = [sorted(o["data"]) for o in cell.outputs]
        assert kinds == [["text/markdown"], ["image/png", "text/plain"]]
        assert panel.title in cell.outputs[0]["data"]["text/markdown"]
        assert "python -m qinn_lib.app" in cell.outputs[0]["data"]["text/markdown"]
        assert base64.b64decode(cell.outputs[1]["data"]["image/png"]) == PNG


def test_a_panel_displayed_with_its_fallback_bundle_becomes_its_still(stills):
    """Notebook 02 shows ``explorer`` itself: its bundle (widgets.panel_bundle) has a text and an
    HTML fallback beside the widget view; all three give way to the still."""
    import ipywidgets

    from qinn_lib.notebook.widgets import panel_bundle

    bundle = panel_bundle(ipywidgets.VBox(), "the depth explorer", "fit a QINN of any depth")
    cell = nbformat.v4.new_code_cell("explorer = depth_explorer.depth_panel(x, results=scan)\nexplorer")
    cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data=bundle)]
    assert book.WIDGET_VIEW in bundle and "text/html" in bundle
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert book.replace_panels(nb, "02.ipynb", stills) == 1
    assert [sorted(o["data"]) for o in cell.outputs] == [["text/markdown"], ["image/png", "text/plain"]]
    # the same bundle in a cell that makes no known panel is an unknown panel, not a progress bar
    other = nbformat.v4.new_code_cell("w = make_panel()\nw")
    other.outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data=bundle)]
    with pytest.raises(book.BookError, match=r"09\.ipynb, cell 0: a widget panel that is none of the known panels"):
        book.replace_panels(nbformat.v4.new_notebook(cells=[other]), "09.ipynb", stills)


def test_a_progress_bar_keeps_its_text(stills):
    nb = nbformat.v4.new_notebook(cells=[_widget_cell("trained = train(cfg, progress=True)", "training: 100%|###| 2/2")])
    assert book.replace_panels(nb, "03.ipynb", stills) == 0
    assert nb.cells[0].outputs[0]["data"] == {"text/plain": "training: 100%|###| 2/2"}


def test_an_unknown_panel_stops_the_build_naming_the_cell(stills):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x"),
                                         _widget_cell("w = make_panel()\nw", "VBox(children=(Button(...")])
    with pytest.raises(book.BookError, match=r"09\.ipynb, cell 1: a widget panel that is none of the known panels"):
        book.replace_panels(nb, "09.ipynb", stills)


def test_a_missing_still_names_the_file_and_the_command(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[_widget_cell("v = model_viewer.ModelViewer()\nv.widget", "VBox(children=(")])
    with pytest.raises(book.BookError, match=r"model_viewer\.png is missing.*python -m qinn_lib\.app stills"):
        book.replace_panels(nb, "02.ipynb", tmp_path)


def test_the_committed_stills_exist_for_every_panel_the_notebooks_show():
    for panel in book.PANELS:
        assert (book.stills_dir() / panel.still).is_file(), panel.still
    shown = {p.call for nb in discover_notebooks() for p in book.PANELS if p.call in nb.read_text()}
    assert shown == {p.call for p in book.PANELS}, "a panel of PANELS is shown by no notebook"


def test_the_command_ends_a_missing_still_with_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sphinx")
    monkeypatch.setattr(book, "stills_dir", lambda: tmp_path / "no-stills")
    assert book.main(["--out", str(tmp_path / "html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m qinn_lib.book: error: ") and "depth_explorer.png is missing" in err
    assert "\n" not in err and not (tmp_path / "html").exists()


def test_external_references_finds_loads_from_other_hosts_and_ignores_links(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/x.css"><a href="https://arxiv.org/abs/2302.12906">paper</a>'
        '<img src="_images/x.png"><script src="_static/mathjax/tex-chtml.js"></script>')
    (tmp_path / "b.css").write_text("@font-face { src: url('https://fonts.example.org/f.woff2') } .x { background: url(img.png) }")
    (tmp_path / "c.html").write_text('<a href="https://example.org">a link</a>')
    assert book.external_references(tmp_path) == {
        "a.html": ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js", "//fonts.example.org/x.css"],
        "b.css": ["https://fonts.example.org/f.woff2"],
    }


def test_the_stage_leaves_the_committed_notebooks_alone_and_drops_stale_files(tmp_path):
    before = {p: p.read_bytes() for p in discover_notebooks()}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_gone.ipynb").write_text("{}")
    (tmp_path / book.STAGE_MARK).write_text("")  # an earlier staging
    chapters = book.stage(tmp_path)
    assert chapters == [f"notebooks/{p.stem}" for p in discover_notebooks()]
    assert not (tmp_path / "notebooks" / "00_gone.ipynb").exists()
    assert (tmp_path / "figures" / "01_mll_fit.png").is_file(), "the README's figure is staged beside it"
    staged = nbformat.read(tmp_path / "notebooks" / "02_circuit_and_inverse.ipynb", as_version=4)
    assert not any(book.WIDGET_VIEW in o.get("data", {}) for c in staged.cells for o in c.get("outputs", []))
    assert {p: p.read_bytes() for p in discover_notebooks()} == before


def test_a_folder_that_is_no_staging_is_left_alone(tmp_path):
    """``--out ~/html`` stages into ``~/src``: a folder of the reader's is refused, not cleaned."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "thesis.tex").write_text("mine")
    with pytest.raises(book.BookError, match=r"src exists and is not a staging folder of the book.*another --out"):
        book.build(tmp_path / "html")
    assert (tmp_path / "src" / "thesis.tex").read_text() == "mine" and not (tmp_path / "html").exists()


# -- the built book in a browser -----------------------------------------------------------------
@contextlib.contextmanager
def _served(folder):
    """``folder`` served over HTTP on 127.0.0.1 for the block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


#: The prose of the page with code, typeset math and scripts taken out: what a reader sees as text.
_PROSE = """() => {
    const a = (document.querySelector('article') || document.body).cloneNode(true);
    a.querySelectorAll('pre, code, .highlight, mjx-container, script, style, .cell_input').forEach(e => e.remove());
    return a.textContent;
}"""


def _load(page, url: str) -> None:
    page.goto(url, wait_until="load")
    if page.locator(".math").count():
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
    page.evaluate("""() => Promise.all([...document.images].map(i => i.complete ? null :
                       new Promise(r => { i.onload = i.onerror = r; })))""")


@pytest.mark.browser
def test_the_book_reads_in_a_browser(tmp_path, browser_needs, record_property):
    """Built strict (a Sphinx warning fails) into a temporary folder, served on 127.0.0.1."""
    chromium = browser_needs("sphinx", "myst_nb", "sphinx_book_theme")

    out = tmp_path / "html"
    t0 = time.monotonic()
    book.build(out, fresh=True, strict=True)
    build_seconds = time.monotonic() - t0
    with _served(out) as base:
        _read_the_book(out, base, chromium, build_seconds, record_property)


def _read_the_book(out, base, chromium, build_seconds, record_property):
    from playwright.sync_api import sync_playwright

    pages = sorted(str(p.relative_to(out)) for p in out.rglob("*.html") if "_static" not in p.parts)  # theme templates
    chapters = [f"notebooks/{p.stem}.html" for p in discover_notebooks()]
    assert set(chapters) | {"index.html", "search.html", "genindex.html"} == set(pages)
    assert book.external_references(out) == {}
    assert "Apache License" in (out / "_static" / "mathjax" / "NOTICE.txt").read_text(), "MathJax's licence travels with it"
    t0 = time.monotonic()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text} ({page.url})"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e} ({page.url})"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
            page.on("request", lambda r: r.url.startswith(base) or r.url.startswith("data:")
                    or problems.append(f"request to another host: {r.url}"))
            typeset = 0
            for name in pages:
                _load(page, f"{base}/{name}")
                broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
                assert broken == [], f"{name}: images not displayed: {broken}"
                untypeset = page.evaluate("() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))")
                assert untypeset == [], f"{name}: math left as TeX: {untypeset}"
                raw = re.findall(r"\$[^$\n]{1,80}\$|\\\(|\\\[", page.evaluate(_PROSE))
                assert raw == [], f"{name}: raw TeX in the text: {raw[:5]}"
                typeset += page.locator("mjx-container").count()
                if name in chapters:
                    stem = name.removeprefix("notebooks/").removesuffix(".html")
                    staged = nbformat.read(out.parent / "src" / "notebooks" / f"{stem}.ipynb", as_version=4)
                    figures = sum("image/png" in o.get("data", {}) for c in staged.cells for o in c.get("outputs", []))
                    assert page.locator("article img").count() == figures, f"{name}: not every figure is on the page"
            assert typeset > 50, f"only {typeset} typeset formulas in the whole book"

            # navigation: next and previous through the chapters, the sidebar to any of them
            _load(page, f"{base}/index.html")
            page.locator("a.right-next").click()
            page.wait_for_url(f"**/{chapters[0]}")
            page.locator("a.right-next").click()
            page.wait_for_url(f"**/{chapters[1]}")
            page.locator("a.left-prev").click()
            page.wait_for_url(f"**/{chapters[0]}")
            page.locator(".bd-docs-nav a", has_text=re.compile(r"^\s*05 ")).click()
            page.wait_for_url("**/notebooks/05_qinn_vs_inn.html")
            assert page.locator("article h1").first.inner_text().startswith("05")
            assert page.locator(".bd-docs-nav a").count() >= len(chapters) + 1

            # search: a word of notebook 02 finds notebook 02
            page.goto(f"{base}/search.html?q=Jacobian")
            page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
            hits = page.locator("#search-results ul.search li a").evaluate_all("els => els.map(e => e.href)")
            assert any("02_circuit_and_inverse.html" in h for h in hits), hits
            # the stills and their pointer to the app are in notebook 02
            _load(page, f"{base}/{chapters[1]}")
            assert page.get_by_text("A live panel.").count() == len(book.PANELS)
            page.locator("a", has_text="the app").first.click()
            page.wait_for_url("**/index.html#app")
        finally:
            browser.close()
    assert problems == []
    seconds = time.monotonic() - t0
    record_property("seconds_build", round(build_seconds, 1))
    record_property("seconds_browser", round(seconds, 1))
    print(f"book test: build {build_seconds:.1f} s, {len(pages)} pages read in {seconds:.1f} s, {typeset} formulas")


def test_docs_build_files_are_in_place():
    assert (paths.repo_root() / "docs" / "conf.py").is_file()
    assert "qinn_lib.book" in (paths.repo_root() / "docs" / "Makefile").read_text()
