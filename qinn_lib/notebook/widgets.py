"""Pieces shared by the notebooks' interactive panels (:mod:`qinn_lib.notebook.depth_explorer`,
:mod:`qinn_lib.notebook.model_viewer`): figures as PNG bytes for ``ipywidgets.Image``, an image that stays
hidden until it has content, and a background job with a progress bar and a stop button.

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

import io
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
                self.status.value = (f"<span style='color:#b00'>{self.label} failed: "
                                     f"{_escape(f'{type(exc).__name__}: {exc}')}</span>")
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


def _escape(text: str) -> str:
    import html

    return html.escape(text)
