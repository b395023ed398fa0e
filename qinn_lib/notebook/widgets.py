"""Pieces shared by the notebooks' interactive panels (:mod:`qinn_lib.notebook.depth_explorer`,
:mod:`qinn_lib.notebook.model_viewer`): figures as PNG bytes for ``ipywidgets.Image``, an image that stays
hidden until it has content, a background job with a progress bar and a stop button, and what
a panel shows where no kernel runs (:func:`panel_bundle`), labels as HTML (:func:`label_html`), a
readable text colour on a coloured cell (:func:`text_color_for`) and errors in a status line
(:func:`error_html`).

Why PNG bytes in ``Image`` widgets rather than ``display()`` inside ``Output`` widgets: headless
execution (papermill/nbclient) of a cell displaying a figure into an ``Output`` widget hung
intermittently on a loaded machine; PNG bytes also keep the drawing in the saved widget state and
let the widget trees be tested without a kernel.

Why threads: a fit or a model load takes seconds; in the kernel's main thread it would block every
other cell and the widgets' own events (no progress, no stop). The work runs in a daemon thread
and only touches widgets through trait assignments, which ipykernel sends from any thread.
Figures drawn in a thread use :class:`matplotlib.figure.Figure` directly, never pyplot (whose
global state is not thread-safe).
"""

from __future__ import annotations

import html
import io
import re
import threading
import time
import traceback
from typing import Any, Callable

#: Seconds between progress-bar updates from a running job (every update is a message to the
#: browser; a 300-step fit would otherwise send 300).
PROGRESS_INTERVAL = 0.2


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """``fig`` rendered to PNG bytes, for an ``ipywidgets.Image``; a pyplot figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if plt.fignum_exists(getattr(fig, "number", -1)):
        plt.close(fig)
    return buf.getvalue()


def new_figure(width: float, height: float):
    """A matplotlib figure outside pyplot (safe to draw in a background thread)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def image(value: bytes = b"", **layout: Any):
    """An ``ipywidgets.Image`` that is hidden while it holds no picture (an empty Image shows a
    broken-image icon in the browser); :func:`show_png` fills and reveals it."""
    import ipywidgets as w

    img = w.Image(format="png", layout=w.Layout(**layout))
    show_png(img, value)
    return img


def show_png(img, value: bytes) -> None:
    img.value = value
    img.layout.display = None if value else "none"


class BackgroundJob:
    """Run ``work(report, stopped)`` in a daemon thread, one job at a time.

    ``report(done, total, text)`` moves the progress bar (rate-limited); ``stopped()`` is true
    once the stop button was pressed, and the work should then return early. ``on_done(result)``
    runs in the job's thread at the end; an exception is shown in the status line instead. The widgets are ``progress``
    (an ``IntProgress``), ``stop`` (a ``Button``) and ``status`` (an ``HTML``).
    """

    def __init__(self, label: str = "job"):
        import ipywidgets as w

        self.label = label
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="260px"))
        self.stop = w.Button(description="stop", icon="stop", disabled=True, layout=w.Layout(width="80px"))
        self.status = w.HTML("")
        self.progress.layout.visibility = "hidden"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stop.on_click(lambda *_: self._stop.set())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable, on_done: Callable[[Any], None], *, button=None, total: int = 1,
              text: str = "") -> threading.Thread:
        """Run ``work`` in the background; ``button`` (the one that started it) is disabled until
        the job ends. An exception is shown in the status line, naming the job."""
        if self.running:
            raise RuntimeError(f"{self.label}: a job is already running")
        self._stop.clear()
        if button is not None:
            button.disabled = True
        self.progress.max, self.progress.value = max(1, int(total)), 0
        self.progress.layout.visibility = "visible"
        self.stop.disabled = False
        self.status.value = text
        last = [0.0]

        def report(done: int, total_: int | None = None, text_: str | None = None) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_INTERVAL and done < self.progress.max:
                return
            last[0] = now
            if total_ is not None:
                self.progress.max = max(1, int(total_))
            self.progress.value = min(int(done), self.progress.max)
            if text_ is not None:
                self.status.value = text_

        def run() -> None:
            try:
                result = work(report, self._stop.is_set)
            except Exception as exc:  # shown in the panel: a thread's traceback would go nowhere
                self.status.value = error_html(f"{self.label} failed", exc)
                traceback.print_exc()
            else:
                self.progress.layout.visibility = "hidden"
                on_done(result)
            finally:
                self.stop.disabled = True
                self.progress.layout.visibility = "hidden"
                if button is not None:
                    button.disabled = False

        self._thread = threading.Thread(target=run, name=f"qinn-{self.label}", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) has finished (for tests and scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)


def error_html(what: str, error: BaseException | str) -> str:
    """A status line in red: ``what: ExceptionType: message`` (escaped)."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return f"<span style='color:#b00'>{html.escape(f'{what}: ' if what else '')}{html.escape(text)}</span>"


def panel_bundle(widget, name: str, what: str, **kwargs) -> dict:
    """The display bundle of a live panel: the widget view, plus a text and an HTML fallback that
    say what the panel is and that it needs a running kernel. A saved notebook keeps no widget
    state, so wherever the widget cannot be rebuilt (an untrusted notebook in JupyterLab, GitHub's
    viewer, a static page) the reader sees this sentence instead of ``VBox(children=(HBox(...``."""
    bundle = dict(widget._repr_mimebundle_(**kwargs) or {})
    sentence = (f"{name[:1].upper()}{name[1:]}: a live panel to {what}. It runs in a Python kernel: open this notebook "
                "in JupyterLab and run the cell (or Run All) to use it.")
    bundle["text/plain"] = f"[{sentence}]"
    bundle["text/html"] = (f"<div style='border:1px dashed #999; padding:0.5em 0.8em; color:#444'><b>{html.escape(name)}</b>"
                           f" — a live panel to {html.escape(what)}. It runs in a Python kernel: open this notebook in "
                           "JupyterLab and run the cell (or <i>Run All</i>) to use it.</div>")
    return bundle


#: LaTeX commands in the axis labels (qinn_lib.events.observables) and their Unicode letters.
_LATEX_SYMBOLS = {r"\ell": "ℓ", r"\Delta": "Δ", r"\phi": "φ", r"\eta": "η", r"\pi": "π", r"\theta": "θ",
                  r"\gamma": "γ", r"\mu": "μ", r"\sigma": "σ", r"\,": "\u2009"}


def _math_html(tex: str) -> str:
    """One ``$...$`` segment as HTML: commands as Unicode letters, ``_x`` / ``_{...}`` as
    subscripts and ``^x`` / ``^{...}`` as superscripts (nested); spaces dropped, as in TeX's math
    mode, and ``-`` as a minus sign."""
    for cmd, letter in _LATEX_SYMBOLS.items():
        tex = re.sub(re.escape(cmd) + r"(?![A-Za-z])", letter, tex)
    tex = tex.replace(" ", "").replace("-", "−")
    out, i = [], 0
    while i < len(tex):
        ch = tex[i]
        if ch in "_^" and i + 1 < len(tex):
            if tex[i + 1] == "{":
                depth, j = 1, i + 2
                while j < len(tex) and depth:
                    depth += {"{": 1, "}": -1}.get(tex[j], 0)
                    j += 1
                inner, i = tex[i + 2:j - 1], j
            else:
                inner, i = tex[i + 1], i + 2
            tag = "sub" if ch == "_" else "sup"
            out.append(f"<{tag}>{_math_html(inner)}</{tag}>")
        elif ch in "{}":
            i += 1
        else:
            out.append(html.escape(ch))
            i += 1
    return "".join(out)


def label_html(label: str) -> str:
    r"""An axis label written for matplotlib's mathtext (``$p_{T,\ell^+}$ [GeV]``) as HTML for a
    widget (``p<sub>T,ℓ<sup>+</sup></sub> [GeV]``): an ``HTML`` widget typesets no LaTeX."""
    parts = label.split("$")
    return "".join(_math_html(p) if k % 2 else html.escape(p) for k, p in enumerate(parts))


def text_color_for(rgba) -> str:
    """``"white"`` on a dark background colour, ``"black"`` on a light one: the text colour with
    the larger contrast, from the background's relative luminance (WCAG 2; the two contrasts are
    equal at luminance 0.179)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in tuple(rgba)[:3])
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.179 else "black"
