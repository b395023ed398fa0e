"""Notebook 02's depth explorer: how circuit depth changes invertibility and output spread.

:func:`depth_scan` is the computation (plain, tested); :func:`depth_panel` wraps it in ipywidgets
sliders for JupyterLab. The notebook also calls :func:`depth_scan` once statically, so the
executed report shows the result without a live kernel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from .losses import mse_invertibility


def invertibility_fit(x: torch.Tensor, n_layers: int, isp_layers: int, *, steps: int, seed: int,
                      lr: float = 1e-2, batch_size: int = 128) -> dict:
    """Train a fresh QINN of the given depth on the invertibility loss alone (eq. 20) for ``steps``
    Adam steps and report how well its learned ISP inverts it.

    This isolates one question of sec. 3.1 — can the ISP learn to undo the measurement for this
    circuit? — from density estimation. Returns the MSE history, the final MSE on ``x``, the
    output spread (std of the measured P(qubit=1) per qubit over ``x``) before and after, and the
    seconds taken.
    """
    from .qinn import QINN

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    model = QINN(x.shape[1], n_layers, isp_layers, seed=seed, dtype=x.dtype)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.no_grad():
        spread_before = model.measure(model.output_state(x)).std(dim=0).numpy()
    history = []
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        batch = x[idx]
        loss = mse_invertibility(batch, model.inverse(model(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.constrain_()
        history.append(loss.item())
    with torch.no_grad():
        final = float(mse_invertibility(x, model.inverse(model(x))))
        spread_after = model.measure(model.output_state(x)).std(dim=0).numpy()
    return {"n_layers": n_layers, "isp_layers": isp_layers, "history": np.array(history),
            "final_mse": final, "spread_before": spread_before, "spread_after": spread_after,
            "seconds": time.perf_counter() - start, "model": model}


def depth_scan(x: torch.Tensor, depths: Sequence[int], isp_layers: int, *, steps: int,
               seed: int) -> list[dict]:
    """:func:`invertibility_fit` for every depth in ``depths`` (same data, steps and seed)."""
    return [invertibility_fit(x, d, isp_layers, steps=steps, seed=seed) for d in depths]


def plot_depth_scan(results: list[dict]):
    """Final invertibility MSE and output spread against depth, plus the fit curves."""
    import matplotlib.pyplot as plt

    depths = [r["n_layers"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    for r in results:
        axes[0].plot(r["history"], lw=0.9, label=f"{r['n_layers']} layers")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("Adam step")
    axes[0].set_ylabel("MSE invertibility loss (eq. 20)")
    axes[0].legend(ncol=2)
    axes[1].plot(depths, [r["final_mse"] for r in results], "o-")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("model-circuit layers")
    axes[1].set_ylabel(r"final $\langle (x-\tilde x)^2\rangle$")
    spread = np.array([r["spread_after"] for r in results])
    for q in range(spread.shape[1]):
        axes[2].plot(depths, spread[:, q], "o-", lw=0.9, label=f"qubit {q}")
    axes[2].set_xlabel("model-circuit layers")
    axes[2].set_ylabel(r"std of $P(q=1)$ over events")
    axes[2].legend(ncol=2)
    fig.tight_layout()
    return fig


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """``fig`` rendered to PNG bytes (and closed), for an ``ipywidgets.Image``."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def depth_panel(x: torch.Tensor, *, max_depth: int = 16, steps: int = 150, seed: int = 0):
    """Interactive panel: sliders for the model-circuit and ISP depth; on change it redraws the
    circuit, and the "fit" button runs a quick invertibility fit. Returns the ipywidgets container.

    The figures go into ``ipywidgets.Image`` widgets as PNG bytes rather than through
    ``display()`` inside an ``Output`` widget: headless execution (papermill/nbclient) of a cell
    that displays a figure into an ``Output`` widget with the inline backend hung intermittently
    on a loaded machine, and the PNG route also keeps the drawn circuit in the saved widget state.
    """
    import ipywidgets as w

    from .circuits import draw
    from .qinn import QINN

    layers = w.IntSlider(value=min(4, max_depth), min=1, max=max_depth, description="layers")
    isp = w.IntSlider(value=4, min=1, max=max_depth, description="ISP layers")
    n_steps = w.IntSlider(value=steps, min=10, max=max(10, 4 * steps), step=10, description="fit steps")
    run = w.Button(description="fit", button_style="primary")
    circuit = w.Image(format="png")
    fit_text = w.HTML("press <b>fit</b> to train this depth on the invertibility loss")
    fit_plot = w.Image(format="png")

    def redraw(*_):
        model = QINN(x.shape[1], layers.value, isp.value, seed=seed)
        circuit.value = figure_png(draw(model, "forward", max_layers=layers.value))

    def fit(*_):
        fit_text.value = f"fitting {layers.value} layers, {isp.value} ISP layers ..."
        res = invertibility_fit(x, layers.value, isp.value, steps=n_steps.value, seed=seed)
        fit_text.value = (f"{layers.value} layers, {isp.value} ISP layers: final MSE {res['final_mse']:.3e} "
                          f"after {n_steps.value} steps ({res['seconds']:.1f} s)")
        fit_plot.value = figure_png(plot_depth_scan([res]))

    layers.observe(redraw, names="value")
    isp.observe(redraw, names="value")
    run.on_click(fit)
    redraw()
    return w.VBox([w.HBox([layers, isp, n_steps, run]), circuit, fit_text, fit_plot])
