"""Notebook 02's depth explorer: how circuit depth changes invertibility and output spread.

:func:`invertibility_fit` trains a fresh QINN of a given depth on the invertibility loss alone
(eq. 20) and :func:`depth_scan` repeats it over depths and seeds (plain functions, tested);
:func:`plot_depth_scan` draws every fit; :class:`DepthExplorer` is the JupyterLab panel: sliders
for depth, ISP depth, steps and seed, fits in a background thread with a progress bar and a stop
button, and every finished fit kept and drawn with the others (a point per fit and seed, the seed
mean and spread per depth), so the panel compares rather than replaces.

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
from qinn_lib.notebook.widgets import BackgroundJob, figure_png, image, new_figure, show_png
from qinn_lib.threads import torch_threads
from qinn_lib.training.losses.invertibility import mse_invertibility

#: Layers of the model circuit drawn in the panel's picture: wide enough to show the repeating
#: Rot + CNOT-ring pattern, narrow enough to stay readable (16 drawn layers were 10,000 px wide).
DRAWN_LAYERS = 2


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
    """Every fit: its loss curve, its final invertibility MSE and its output spread against depth
    (a point per fit and seed; a line through the seed means with ±1 std bars where a depth has
    several seeds). Fits with other ISP depths or step counts get their own colour. Returns a
    :class:`matplotlib.figure.Figure` (safe to draw in a background thread)."""
    import matplotlib

    fig = new_figure(11, 3.2)
    axes = fig.subplots(1, 3)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    depths_all = sorted({r["n_layers"] for r in results})
    cmap = matplotlib.colormaps["viridis"]
    for r in results:
        pos = depths_all.index(r["n_layers"]) / max(1, len(depths_all) - 1)
        axes[0].plot(r["history"], lw=0.7, alpha=0.7, color=cmap(0.9 * pos))
    for d in depths_all:  # one legend entry per depth
        axes[0].plot([], [], color=cmap(0.9 * depths_all.index(d) / max(1, len(depths_all) - 1)), label=f"{d} layers")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("Adam step")
    axes[0].set_ylabel("MSE invertibility loss (eq. 20)")
    if depths_all:
        axes[0].legend(ncol=2, fontsize=7)
    for k, ((isp, steps), group) in enumerate(sorted(_groups(results).items())):
        color = colors[k % len(colors)]
        label = f"ISP {isp}, {steps} steps"
        by_depth: dict[int, list[dict]] = {}
        for r in group:
            by_depth.setdefault(r["n_layers"], []).append(r)
        ds = sorted(by_depth)
        for ax, value in ((axes[1], lambda r: r["final_mse"]), (axes[2], lambda r: float(np.mean(r["spread_after"])))):
            xs = [r["n_layers"] + 0.08 * (j - (len(by_depth[r["n_layers"]]) - 1) / 2)
                  for d in ds for j, r in enumerate(by_depth[d])]
            ys = [value(r) for d in ds for r in by_depth[d]]
            ax.plot(xs, ys, "o", ms=3.5, color=color, alpha=0.6, label=f"{label}: each seed")
            means = [np.mean([value(r) for r in by_depth[d]]) for d in ds]
            stds = [np.std([value(r) for r in by_depth[d]]) for d in ds]
            ax.errorbar(ds, means, yerr=stds, color=color, lw=1.0, capsize=3, label=f"{label}: seed mean ± std")
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
    return f"forward circuit: angle encoding, <b>{k}</b> of {n_layers} layer{'s' if n_layers > 1 else ''}{tail}, measurement"


class DepthExplorer:
    """The panel. ``results`` (e.g. the notebook's static :func:`depth_scan`) start the comparison;
    every finished fit is added to them. The widget tree is :attr:`widget`."""

    def __init__(self, x: torch.Tensor, *, max_depth: int = 16, steps: int = 300, seed: int = 0,
                 isp_layers: int = 8, n_layers: int = 4, results: Sequence[dict] = ()):
        import ipywidgets as w

        self.x = x
        self.results: list[dict] = [{k: v for k, v in r.items() if k != "model"} for r in results]
        self._circuits: dict[int, bytes] = {}
        self.layers = w.IntSlider(value=min(n_layers, max_depth), min=1, max=max_depth, description="layers")
        self.isp = w.IntSlider(value=min(isp_layers, max_depth), min=1, max=max_depth, description="ISP layers")
        self.steps = w.IntSlider(value=steps, min=10, max=max(10, 4 * steps), step=10, description="fit steps")
        self.seed = w.IntSlider(value=seed, min=seed, max=seed + 9, description="seed")
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
        self.job.status.value = "press <b>fit</b> to train this depth on the invertibility loss (eq. 20); every fit is kept"
        self.widget = w.VBox([
            w.HBox([self.layers, self.isp]), w.HBox([self.steps, self.seed]),
            w.HBox([self.fit_button, self.job.stop, self.job.progress, self.clear_button]), self.job.status,
            self.circuit_text, self.circuit, self.count, self.plot,
        ])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

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
        self.count.value = (f"fits kept: <b>{n}</b>" + (f" (depths {', '.join(map(str, depths))})" if n else
                            " — the comparison appears here after the first fit"))
        show_png(self.plot, figure_png(plot_depth_scan(self.results)) if n else b"")

    def fit(self):
        """Start a fit of the sliders' depth, ISP depth, steps and seed in the background."""
        if self.job.running:
            return None
        depth, isp, steps, seed = self.layers.value, self.isp.value, self.steps.value, self.seed.value
        what = f"{depth} layers, {isp} ISP layers, seed {seed}"

        def work(report, stopped):
            def on_step(step, loss):
                report(step, steps, f"fitting {what}: step {step}/{steps}, loss {loss:.3e}")
                return stopped()
            return invertibility_fit(self.x, depth, isp, steps=steps, seed=seed, on_step=on_step)

        def done(res):
            if res["stopped"]:
                self.job.status.value = f"{what}: stopped after {res['steps']} of {steps} steps (not kept)"
                return
            self.results.append({k: v for k, v in res.items() if k != "model"})
            self.job.status.value = (f"{what}: final MSE {res['final_mse']:.3e} after {steps} steps "
                                     f"({res['seconds']:.1f} s)")
            self._redraw_plot()

        return self.job.start(work, done, button=self.fit_button, total=steps, text=f"fitting {what} ...")

    def clear(self):
        """Forget every kept fit."""
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
