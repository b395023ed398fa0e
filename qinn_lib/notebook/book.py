"""The web book of the executed reports: ``python -m qinn_lib.book`` (or ``make -C docs html``).

Sphinx with myst-nb renders the committed notebooks ``notebooks/NN_*.ipynb`` as they are
(``nb_execution_mode = "off"`` in ``docs/conf.py``: their committed outputs, nothing is re-run),
with the README as the landing page, in the Sphinx Book Theme, into ``build/book/html``.

Offline by construction: everything a page loads is in the build. MathJax 3.2.2 comes from the
``sphinx-mathjax-offline`` package (its files are byte for byte the ``es5`` folder of npm's
``mathjax@3.2.2``); the parts the pages load are copied into ``_static/mathjax``; :func:`external_references` lists any
script, stylesheet, image or font a page would fetch from elsewhere, and the build fails on one.

The sources are staged, never edited: :func:`stage` copies ``docs/index.md``, the README (and the
figures it shows) and the notebooks into ``build/book/src``. A live panel (an ipywidgets view:
the depth explorer, the model viewer) cannot live in a static page, so in the staged copy its
output is replaced by a still image of the panel (``figures/app/*.png``, taken from the running
app by ``python -m qinn_lib.app stills``) and a pointer to the app (:data:`PANELS`). A widget
output that is no known panel stops the build, naming the notebook and the cell.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from qinn_lib import paths
from qinn_lib.atomic import atomic_write, atomic_write_text
from qinn_lib.errors import QinnError, add_debug_option, run_cli
from qinn_lib.notebook.parameters import discover_notebooks

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Where the app's command is explained (the README's section, the book's landing page).
APP_ANCHOR = "app"


class BookError(QinnError):
    """The book cannot be built; the message names the file or the missing package."""


@dataclass(frozen=True)
class Panel:
    """A live panel of a notebook: the call that makes it (found in the cell's source), its still
    image under ``figures/app/`` and what the pointer to the app calls it."""

    call: str
    still: str
    title: str


#: The live panels the notebooks display, with their stills (``python -m qinn_lib.app stills``).
PANELS = (
    Panel("depth_explorer.depth_panel(", "depth_explorer.png", "the depth explorer"),
    Panel("model_viewer.ModelViewer(", "model_viewer.png", "the model viewer"),
)


def docs_dir() -> Path:
    return paths.repo_root() / "docs"


def book_dir() -> Path:
    """``build/book``: the pages (``html/``), beside them the staged sources (``src/``) and
    Sphinx's cache (``doctrees/``)."""
    return paths.repo_root() / "build" / "book"


def stills_dir() -> Path:
    return paths.repo_root() / "figures" / "app"


#: What ``tex-chtml.js`` loads (TeX extensions, CHTML fonts, the menu and its accessibility parts);
#: the other combined builds of the package (SVG output, MathML input: 14 of its 24 MB) are not copied.
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "a11y", "ui", "sre", "adaptors")


MATHJAX_NOTICE = ("MathJax 3.2.2 (https://www.mathjax.org/, https://github.com/mathjax/MathJax), "
                  "Copyright (c) 2009-2022 The MathJax Consortium.\nLicensed under the Apache License, Version 2.0: "
                  "https://www.apache.org/licenses/LICENSE-2.0\nCopied unchanged (the parts tex-chtml.js loads) from the "
                  "sphinx-mathjax-offline 0.0.2 package.\n")


def mathjax_source() -> Path:
    """MathJax 3.2.2 as the ``sphinx-mathjax-offline`` package installs it (its ``mathjax/`` folder)."""
    try:
        dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        raise BookError("the book needs sphinx-mathjax-offline (MathJax for offline pages): "
                        "pip install -e '.[book]'") from None
    source = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (source / "tex-chtml.js").is_file():
        raise BookError(f"{source / 'tex-chtml.js'} is missing: reinstall sphinx-mathjax-offline")
    return source


def mathjax_static() -> Path:
    """A folder holding ``mathjax/``: the parts of MathJax the pages load (:data:`MATHJAX_PARTS`),
    copied from :func:`mathjax_source` into ``build/book/static`` once. ``docs/conf.py`` adds it to
    ``html_static_path``, so Sphinx copies it into ``_static/mathjax``."""
    source = mathjax_source()
    static = book_dir() / "static"
    target = static / "mathjax"
    stamp = book_dir() / "static.source"  # which package copy it was made from
    if not stamp.is_file() or stamp.read_text() != str(source):
        if target.exists():
            shutil.rmtree(target)
        for part in MATHJAX_PARTS:
            if (source / part).is_dir():
                shutil.copytree(source / part, target / part)
            else:
                (target / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / part, target / part)
        atomic_write_text(target / "NOTICE.txt", MATHJAX_NOTICE)  # the package ships MathJax without its licence file
        atomic_write_text(stamp, str(source))  # last: an interrupted copy has no stamp and is redone
    return static


def _panel_for(source: str) -> Panel | None:
    found = [p for p in PANELS if p.call in source]
    return found[0] if len(found) == 1 else None


def _pointer(panel: Panel) -> str:
    return (f"**A live panel.** Run in JupyterLab or in the app, this output is {panel.title}; a static "
            f"page cannot run it, so here is a still of it. To use it, start the app with "
            f"`python -m qinn_lib.app` (see [the app](../index.md#{APP_ANCHOR})), or run this notebook in JupyterLab.")


#: The text fallback of a panel, not a progress bar: a widget container's (``VBox(children=(...``)
#: or the sentence of :func:`qinn_lib.notebook.widgets.panel_bundle` ("...: a live panel to ...").
_CONTAINER = re.compile(r"^\s*\w+\(children=|: a live panel to ")


def replace_panels(nb: nbformat.NotebookNode, name: str, stills: Path | None = None) -> int:
    """In ``nb`` (a copy), replace every live panel's output (an ipywidgets view of a cell that
    makes a panel of :data:`PANELS`) by the panel's still and a pointer to the app; returns how
    many were replaced. Other widget outputs are progress bars (tqdm): they keep their text
    (``qinn training: 100%|####| 200/200``). A widget container in a cell that makes no known
    panel, or a missing still, is a :class:`BookError` naming the notebook and the cell."""
    stills = stills_dir() if stills is None else stills
    n = 0
    for index, cell in enumerate(nb.cells):
        widgets = [o for o in cell.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
        if cell.cell_type != "code" or not widgets:
            continue
        panel = _panel_for(cell.source)
        if panel is None:
            for o in widgets:
                text = o["data"].get("text/plain", "")
                text = "".join(text) if isinstance(text, list) else text
                if _CONTAINER.search(text) or not text:
                    raise BookError(f"{name}, cell {index}: a widget panel that is none of the known panels "
                                    f"({', '.join(p.call for p in PANELS)}); add it to "
                                    "qinn_lib.notebook.book.PANELS with a still image")
                del o["data"][WIDGET_VIEW]  # a progress bar: its text is what a page can show
            continue
        still = stills / panel.still
        if not still.is_file():
            raise BookError(f"{still} is missing (the still of {panel.title}): make it with "
                            "python -m qinn_lib.app stills")
        keep = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
        cell.outputs = keep + [
            nbformat.v4.new_output("display_data", data={"text/markdown": _pointer(panel)}),
            nbformat.v4.new_output("display_data", data={
                "image/png": base64.b64encode(still.read_bytes()).decode("ascii"),
                "text/plain": f"<still of {panel.title}>"}),
        ]
        n += 1
    return n


_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


def _put(path: Path, data: bytes, written: set[Path]) -> None:
    """Write ``data`` to ``path`` unless it already holds it (Sphinx rebuilds only the documents
    whose file changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_bytes() != data:
        atomic_write(path, lambda fh: fh.write(data))
    written.add(path)


#: Marks a folder made by :func:`stage`: only such a folder has its stale files removed.
STAGE_MARK = ".qinn-book-sources"


def stage(src: Path) -> list[str]:
    """Copy the book's sources into ``src``: ``docs/index.md``, the README with the images it
    shows, and the notebooks (live panels replaced by stills); files from an earlier staging that
    are no longer sources are removed. Returns the chapters' document names in order.

    ``src`` is new, empty or an earlier staging (it holds :data:`STAGE_MARK`); any other folder
    is a :class:`BookError`, so that a mistyped ``--out`` never deletes a reader's files."""
    src = Path(src)
    if src.exists() and (not src.is_dir() or (any(src.iterdir()) and not (src / STAGE_MARK).is_file())):
        raise BookError(f"{src} exists and is not a staging folder of the book (no {STAGE_MARK} in it): "
                        "the book stages its sources beside its pages; choose another --out")
    root = paths.repo_root()
    written: set[Path] = set()
    _put(src / STAGE_MARK, b"sources of the web book, staged by python -m qinn_lib.book\n", written)
    _put(src / "index.md", (docs_dir() / "index.md").read_bytes(), written)
    readme = (root / "README.md").read_text()
    _put(src / "README.md", readme.encode(), written)
    for rel in _IMAGE.findall(readme):
        if "://" in rel:
            raise BookError(f"README.md shows a remote image {rel}: the book is offline")
        image = root / rel
        if not image.is_file():
            raise BookError(f"README.md shows {rel}, which does not exist")
        _put(src / rel, image.read_bytes(), written)
    chapters = []
    for path in discover_notebooks():
        nb = nbformat.read(path, as_version=4)
        replace_panels(nb, path.name)
        _put(src / "notebooks" / path.name, nbformat.writes(nb).encode(), written)
        chapters.append(f"notebooks/{path.stem}")
    if not chapters:
        raise BookError(f"no notebook found in {paths.notebooks_dir()}")
    for path in src.rglob("*"):
        if path.is_file() and path not in written:
            path.unlink()
    return chapters


class _Loads(HTMLParser):
    """The URLs a page fetches by itself: scripts, stylesheets and preloads, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch"}:
            self.urls.append(a["href"])


_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""")


def external_references(html_dir: Path) -> dict[str, list[str]]:
    """Per file of the built book, the resources it would fetch from another host: ``src`` and
    stylesheet ``href`` in the pages, ``url()`` and ``@import`` in the CSS. Links a reader may
    follow (``<a href>``) are not loads and are not listed. Empty for an offline book."""
    out: dict[str, list[str]] = {}
    for path in sorted(html_dir.rglob("*")):
        if path.suffix == ".html":
            parser = _Loads()
            parser.feed(path.read_text(errors="replace"))
            remote = [u for u in parser.urls if re.match(r"^(?:[a-z]+:)?//", u, re.I) and not u.startswith("file:")]
        elif path.suffix == ".css":
            remote = _CSS_URL.findall(path.read_text(errors="replace"))
        else:
            continue
        if remote:
            out[str(path.relative_to(html_dir))] = remote
    return out


def build(out: Path | None = None, *, fresh: bool = False, strict: bool = True, log=print) -> Path:
    """Stage the sources and build the book into ``out`` (default ``build/book/html``); returns
    ``out``. ``fresh`` rebuilds every page (else Sphinx reuses what has not changed); ``strict``
    turns Sphinx warnings into errors. Raises :class:`BookError` if Sphinx fails or a page would
    load anything from another host."""
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as exc:
        raise BookError(f"the book needs {exc.name}: pip install -e '.[book]'") from None
    mathjax_static()
    out = book_dir() / "html" if out is None else Path(out)
    start = time.perf_counter()
    src = out.parent / "src"  # beside the pages: build/book/src, build/book/doctrees
    chapters = stage(src)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(docs_dir()), "-q", "-j", "1",
           "-d", str(out.parent / "doctrees"), str(src), str(out)]
    if fresh:
        cmd.insert(3, "-E")
    if strict:
        cmd[3:3] = ["-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=paths.repo_root(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BookError(f"sphinx-build failed (exit {proc.returncode}): "
                        + " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-12:]))
    remote = external_references(out)
    if remote:
        raise BookError(f"the book would load from other hosts: {remote}")
    seconds = time.perf_counter() - start
    log(f"book: {len(chapters)} chapters and the README in {seconds:.1f} s -> {out / 'index.html'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.book",
        description="Build the web book of the committed reports (Sphinx + myst-nb, nothing re-run, offline) "
                    "into build/book/html.")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/book/html)")
    parser.add_argument("--fresh", action="store_true", help="rebuild every page")
    parser.add_argument("--no-strict", dest="strict", action="store_false", help="let Sphinx warnings pass")
    add_debug_option(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        build(args.out, fresh=args.fresh, strict=args.strict)
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug)
