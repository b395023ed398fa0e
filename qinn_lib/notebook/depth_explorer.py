"""Notebook 02's depth explorer: how circuit depth changes invertibility and output spread.

:func:`invertibility_fit` trains a fresh QINN of a given depth on the invertibility loss alone
(eq. 20) and :func:`depth_scan` repeats it over depths and seeds (plain functions, tested);
:func:`plot_depth_scan` draws every fit; :class:`DepthExplorer` is the JupyterLab panel: sliders
for depth, ISP depth, steps and seed, fits in a background thread with a progress bar and a stop
button, and every finished fit kept and drawn with the others (a point per fit and seed, the seed
mean and spread per depth where a depth has several seeds), so the panel compares rather than
replaces. Your own fits are drawn apart from the static scan's (stars, thick dashed loss curves).
A fit is identified by its depth, ISP depth, steps and seed: the same four on the same events give
the same numbers, so asking again for a kept fit shows it instead of counting it as another seed.
After every fit the seed slider moves on to the next seed not yet kept for those settings.

``python -m qinn_lib.notebook.depth_explorer`` times one explorer fit (300 steps at 12 layers, 1 thread).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from qinn_lib.experiments.one_model import prepare_data
from qinn_lib.models.qinn.model import QINN
from qinn_lib.notebook.widgets import BackgroundJob, figure_png, image, new_figure, panel_bundle, show_png
from qinn_lib.threads import torch_threads
from qinn_lib.training.losses.invertibility import mse_invertibility

#: Layers of the model circuit drawn in the panel's picture: wide enough to show the repeating
#: Rot + CNOT-ring pattern, narrow enough to stay readable (16 drawn layers were 10,000 px wide).
DRAWN_LAYERS = 2

#: One colour per depth in the loss-curve panel, in order of depth: matplotlib's tab10 and then
#: Paul Tol's dark colours, so that neighbouring depths (10 and 12 layers) differ in hue, which a
#: sequential map (viridis) did not give them.
DEPTH_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#000000", "#332288", "#999933", "#882255", "#44aa99", "#aa4499"]
#: Colours of the (ISP depth, steps) groups in the depth panels.
GROUP_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
#: ``origin`` of a fit made in the panel; a fit without one (the notebook's static scan) is "scan".
YOURS = "yours"


def layers_text(n: int) -> str:
    """``"1 layer"``, ``"12 layers"``."""
    return f"{n} layer{'' if n == 1 else 's'}"


def fit_key(r: dict) -> tuple[int, int, int, int]:
    """What decides a fit on given events: (depth, ISP depth, steps, seed). Two fits with equal
    keys give the same numbers (:func:`invertibility_fit` is deterministic)."""
    return (int(r["n_layers"]), int(r["isp_layers"]), int(r["steps"]), int(r["seed"]))


def invertibility_fit(x: torch.Tensor, n_layers: int, isp_layers: int, *, steps: int, seed: int,
                      lr: float = 1e-2, batch_size: int = 128, dtype: torch.dtype = torch.float32,
                      threads: int | None = 1,
                      on_step: Callable[[int, float], bool] | None = None) -> dict:
    """Train a fresh QINN of the given depth on the invertibility loss alone (eq. 20) for ``steps``
    Adam steps and report how well its learned ISP inverts it.

    This isolates one question of sec. 3.1 — can the ISP learn to undo the measurement for this
    circuit? — from density estimation. ``x`` (scaled events) is cast to ``dtype``: single
    precision is plenty for a loss curve and twice as fast. ``threads`` sets torch's intra-op
    threads during the fit (these ops are far too small to share between cores, see
    :func:`qinn_lib.training.loop.train`). ``on_step(step, loss)`` is called after every step; if it
    returns True the fit stops early (``"stopped"`` in the result).

    Returns the MSE history, the final MSE on ``x``, the output spread (std of the measured
    P(qubit=1) per qubit over ``x``) before and after, the seconds taken and the model.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    with torch_threads(threads):
        x = x.to(dtype)
        model = QINN(x.shape[1], n_layers, isp_layers, seed=seed, dtype=dtype)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        with torch.no_grad():
            spread_before = model.measure(model.output_state(x)).std(dim=0).double().numpy()
        history = []
        stopped = False
        start = time.perf_counter()
        for step in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
            batch = x[idx]
            with model.reuse_circuits():  # U is built once per step for forward and inverse
                loss = mse_invertibility(batch, model.inverse(model(batch)))
                opt.zero_grad()
                loss.backward()
            opt.step()
            model.constrain_()
            history.append(loss.item())
            if on_step is not None and on_step(step + 1, history[-1]):
                stopped = True
                break
        with torch.no_grad():
            final = float(mse_invertibility(x, model.inverse(model(x))))
            spread_after = model.measure(model.output_state(x)).std(dim=0).double().numpy()
        seconds = time.perf_counter() - start
    return {"n_layers": n_layers, "isp_layers": isp_layers, "steps": len(history), "seed": seed,
            "history": np.array(history), "final_mse": final, "spread_before": spread_before,
            "spread_after": spread_after, "seconds": seconds, "stopped": stopped, "model": model}


def depth_scan(x: torch.Tensor, depths: Sequence[int], isp_layers: int, *, steps: int,
               seeds: Sequence[int]) -> list[dict]:
    """:func:`invertibility_fit` for every depth and seed (same data and steps)."""
    return [invertibility_fit(x, d, isp_layers, steps=steps, seed=s) for d in depths for s in seeds]


def _groups(results: Sequence[dict]) -> dict[tuple[int, int], list[dict]]:
    """Fits that differ only in depth and seed, keyed by (ISP layers, steps): only those are
    comparable along the depth axis."""
    out: dict[tuple[int, int], list[dict]] = {}
    for r in results:
        out.setdefault((r["isp_layers"], r["steps"]), []).append(r)
    return out


def plot_depth_scan(results: Sequence[dict]):
    """Every fit: its loss curve, its final invertibility MSE and its output spread against depth.

    A point per fit and seed (circles: the static scan; stars: fits made in the panel, ``origin``
    :data:`YOURS`); where a depth has two or more seeds, their mean with a ±1 std bar, and a line
    through those means. A depth with one seed has its point only (no spread to show). Fits with
    other ISP depths or step counts get their own colour; in the loss panel the colour is the
    depth and your fits are thick and dashed. Returns a :class:`matplotlib.figure.Figure` (safe to
    draw in a background thread)."""
    from matplotlib.lines import Line2D

    fig = new_figure(11, 3.4)
    axes = fig.subplots(1, 3)
    depths_all = sorted({r["n_layers"] for r in results})
    depth_color = {d: DEPTH_COLORS[k % len(DEPTH_COLORS)] for k, d in enumerate(depths_all)}
    mine = [r for r in results if r.get("origin") == YOURS]
    for r in results:
        own = r.get("origin") == YOURS
        axes[0].plot(r["history"], lw=1.6 if own else 0.7, ls="--" if own else "-", alpha=1.0 if own else 0.6,
                     color=depth_color[r["n_layers"]], zorder=3 if own else 2)
    handles = [Line2D([], [], color=depth_color[d], label=layers_text(d)) for d in depths_all]
    if mine:
        handles.append(Line2D([], [], color="0.2", lw=1.6, ls="--", label="your fits"))
    axes[0].set_yscale("log")
    axes[0].set_xlabel("Adam step")
    axes[0].set_ylabel("MSE invertibility loss (eq. 20)")
    if handles:
        axes[0].legend(handles=handles, ncol=2, fontsize=7)
    for k, ((isp, steps), group) in enumerate(sorted(_groups(results).items())):
        color = GROUP_COLORS[k % len(GROUP_COLORS)]
        label = f"ISP {isp}, {steps} steps"
        by_depth: dict[int, list[dict]] = {}
        for r in group:
            by_depth.setdefault(r["n_layers"], []).append(r)
        ds = sorted(by_depth)
        spread = [d for d in ds if len(by_depth[d]) > 1]
        for ax, value in ((axes[1], lambda r: r["final_mse"]), (axes[2], lambda r: float(np.mean(r["spread_after"])))):
            for own in (False, True):
                xs = [r["n_layers"] + 0.08 * (j - (len(by_depth[d]) - 1) / 2)
                      for d in ds for j, r in enumerate(by_depth[d]) if (r.get("origin") == YOURS) == own]
                ys = [value(r) for d in ds for r in by_depth[d] if (r.get("origin") == YOURS) == own]
                if not xs:
                    continue
                if own:
                    ax.plot(xs, ys, "*", ms=9, color=color, mec="k", mew=0.6, zorder=4, label=f"{label}: your fits")
                else:
                    ax.plot(xs, ys, "o", ms=3.5, color=color, alpha=0.6, label=f"{label}: each seed")
            if spread:
                means = [np.mean([value(r) for r in by_depth[d]]) for d in spread]
                stds = [np.std([value(r) for r in by_depth[d]]) for d in spread]
                ax.errorbar(spread, means, yerr=stds, color=color, lw=1.0, capsize=3,
                            label=f"{label}: seed mean ± std")
    axes[1].set_yscale("log")
    axes[1].set_ylabel(r"final $\langle (x-\tilde x)^2\rangle$")
    axes[2].set_ylabel("output spread: std of P(q=1)\nover events, mean over qubits")
    for ax in axes[1:]:
        ax.set_xlabel("model-circuit layers")
        if depths_all:
            ax.set_xticks(depths_all)
    if results:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def circuit_png(n_features: int, n_layers: int, seed: int = 0) -> bytes:
    """The forward circuit's first ``min(n_layers, DRAWN_LAYERS)`` layers as PNG (no parameter
    values: the picture shows the structure, which does not depend on the other layers)."""
    from qinn_lib.models.qinn.circuits import draw  # deferred: PennyLane (~1.3 s to import)

    k = min(n_layers, DRAWN_LAYERS)
    model = QINN(n_features, k, 1, seed=seed)
    return figure_png(draw(model, "forward", max_layers=k))


def circuit_caption(n_layers: int) -> str:
    k = min(n_layers, DRAWN_LAYERS)
    more = n_layers - k
    tail = (f" — and <b>{more} more</b> identical Rot + CNOT-ring layer{'s' if more > 1 else ''}, not drawn"
            if more else "")
    return f"forward circuit: angle encoding, <b>{k}</b> of {layers_text(n_layers)}{tail}, measurement"


class DepthExplorer:
    """The panel. ``results`` (e.g. the notebook's static :func:`depth_scan`) start the comparison;
    every finished fit is added to them, marked as yours, then passed to ``on_fit`` (the app
    writes it to the visitor's folder, :mod:`qinn_lib.notebook.app`). The widget tree is :attr:`widget`.

    The seed slider spans ``seed`` to ``seed + 19``; it starts at, and after every fit moves on
    to, the first seed in that range that no kept fit of the sliders' settings has."""

    def __init__(self, x: torch.Tensor, *, max_depth: int = 16, steps: int = 300, seed: int = 0,
                 isp_layers: int = 8, n_layers: int = 4, results: Sequence[dict] = (),
                 on_fit: Callable[[dict], None] | None = None):
        import ipywidgets as w

        self.x = x
        self.results: list[dict] = [{k: v for k, v in r.items() if k != "model"} for r in results]
        self.on_fit = on_fit
        self._circuits: dict[int, bytes] = {}
        self.layers = w.IntSlider(value=min(n_layers, max_depth), min=1, max=max_depth, description="layers")
        self.isp = w.IntSlider(value=min(isp_layers, max_depth), min=1, max=max_depth, description="ISP layers")
        self.steps = w.IntSlider(value=steps, min=10, max=max(10, 4 * steps), step=10, description="fit steps")
        self.seed = w.IntSlider(value=seed, min=seed, max=seed + 19, description="seed")
        self.fit_button = w.Button(description="fit", button_style="primary", icon="play")
        self.clear_button = w.Button(description="clear", icon="trash")
        self.job = BackgroundJob("fit")
        self.circuit_text = w.HTML()
        self.circuit = image(max_width="760px")
        self.count = w.HTML()
        self.plot = image()
        self.layers.observe(self._redraw_circuit, names="value")  # the ISP slider does not change this picture
        self.fit_button.on_click(lambda *_: self.fit())
        self.clear_button.on_click(lambda *_: self.clear())
        self._redraw_circuit()
        self._redraw_plot()
        self._next_seed()
        self.job.status.value = "press <b>fit</b> to train this depth on the invertibility loss (eq. 20); every fit is kept"
        self.widget = w.VBox([
            w.HBox([self.layers, self.isp]), w.HBox([self.steps, self.seed]),
            w.HBox([self.fit_button, self.job.stop, self.job.progress, self.clear_button]), self.job.status,
            self.circuit_text, self.circuit, self.count, self.plot,
        ])

    def _repr_mimebundle_(self, **kwargs):
        return panel_bundle(self.widget, "the depth explorer",
                            "fit a QINN of any depth on the invertibility loss and compare it with the static scan above",
                            **kwargs)

    def _settings(self) -> tuple[int, int, int, int]:
        return (self.layers.value, self.isp.value, self.steps.value, self.seed.value)

    def kept(self, key: tuple[int, int, int, int]) -> dict | None:
        """The kept fit with this :func:`fit_key`, or None."""
        return next((r for r in self.results if fit_key(r) == key), None)

    def _next_seed(self) -> int | None:
        """Move the seed slider to the first seed (from its minimum) that no kept fit of the other
        sliders' settings has; None (slider left alone) when every seed in its range is kept."""
        depth, isp, steps, _ = self._settings()
        for s in range(self.seed.min, self.seed.max + 1):
            if self.kept((depth, isp, steps, s)) is None:
                self.seed.value = s
                return s
        return None

    def _redraw_circuit(self, *_):
        k = min(self.layers.value, DRAWN_LAYERS)
        if k not in self._circuits:
            self._circuits[k] = circuit_png(self.x.shape[1], k)
        if bytes(self.circuit.value) != self._circuits[k]:
            show_png(self.circuit, self._circuits[k])
        self.circuit_text.value = circuit_caption(self.layers.value)

    def _redraw_plot(self):
        n = len(self.results)
        depths = sorted({r["n_layers"] for r in self.results})
        own = sum(r.get("origin") == YOURS for r in self.results)
        yours = f"; {own} of them yours" if own else ""
        self.count.value = (f"fits kept: <b>{n}</b>" + (f" (depths {', '.join(map(str, depths))}{yours})"
                                                        if n else " — the comparison appears here after the first fit"))
        show_png(self.plot, figure_png(plot_depth_scan(self.results)) if n else b"")

    def fit(self):
        """Start a fit of the sliders' depth, ISP depth, steps and seed in the background. A fit
        that is already kept (same four settings) is shown, not repeated."""
        if self.job.running:
            return None
        depth, isp, steps, seed = self._settings()
        what = f"{layers_text(depth)}, {isp} ISP layers, seed {seed}"
        same = self.kept((depth, isp, steps, seed))
        if same is not None:
            whose = "your fit" if same.get("origin") == YOURS else "the static scan"
            nxt = self._next_seed()
            self.job.status.value = (
                f"{what}, {steps} steps: already kept ({whose}: final MSE {same['final_mse']:.3e}); the same settings "
                "and seed give the same numbers, so it is not fitted again or counted as another seed"
                + (f" — the seed slider moved to {nxt}, press <b>fit</b> for a new seed" if nxt is not None else ""))
            return None

        def work(report, stopped):
            def on_step(step, loss):
                report(step, steps, f"fitting {what}: step {step}/{steps}, loss {loss:.3e}")
                return stopped()
            return invertibility_fit(self.x, depth, isp, steps=steps, seed=seed, on_step=on_step)

        def done(res):
            if res["stopped"]:
                self.job.status.value = f"{what}: stopped after {res['steps']} of {steps} steps (not kept)"
                return
            self.results.append({**{k: v for k, v in res.items() if k != "model"}, "origin": YOURS})
            nxt = self._next_seed()
            self.job.status.value = (f"{what}: final MSE {res['final_mse']:.3e} after {steps} steps "
                                     f"({res['seconds']:.1f} s)"
                                     + (f"; the seed slider moved on to {nxt}" if nxt is not None else ""))
            self._redraw_plot()
            if self.on_fit is not None:
                self.on_fit(self.results[-1])

        return self.job.start(work, done, button=self.fit_button, total=steps, text=f"fitting {what} ...")

    def clear(self):
        """Forget every kept fit (the static scan's too)."""
        self.results.clear()
        self._redraw_plot()

    def wait(self, timeout: float | None = None):
        self.job.wait(timeout)


def depth_panel(x: torch.Tensor, **kwargs) -> DepthExplorer:
    """:class:`DepthExplorer` of ``x`` (displayable as a notebook cell's last expression)."""
    return DepthExplorer(x, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m qinn_lib.notebook.depth_explorer``: time one explorer fit (the panel's default)."""
    parser = argparse.ArgumentParser(prog="python -m qinn_lib.notebook.depth_explorer",
                                     description="Time the depth explorer's fit: a fresh QINN trained on the "
                                                 "invertibility loss, 1 torch thread (min of the repeats).")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--isp-layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    x = prepare_data(8_000, 1234).train[:4000]
    invertibility_fit(x, args.layers, args.isp_layers, steps=5, seed=0)  # warm-up (first-call costs)
    times = [invertibility_fit(x, args.layers, args.isp_layers, steps=args.steps, seed=s)["seconds"]
             for s in range(args.repeats)]
    print(f"explorer fit, {args.steps} steps at {args.layers} layers ({args.isp_layers} ISP layers), 1 thread: "
          f"min {min(times):.2f} s, all {', '.join(f'{t:.2f}' for t in times)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
