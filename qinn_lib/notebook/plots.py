"""Figures. Every figure is saved through :func:`save`, which writes PDF and PNG into the run's
output folder, :func:`qinn_lib.paths.output_dir` (``build/interactive/`` in JupyterLab; the
reports runner points it at ``figures/``), whatever the kernel's working directory.

Seed ensembles are shown with their seeds (issue 21): every seed is a point beside the ensemble's
mean (:func:`seed_strip`, :func:`seed_scatter`), and intervals respect the quantity's bounds — the
percentile bootstrap interval of the mean over seeds, or the min–max band of the seeds' histograms
(:func:`hist_with_ratio`) — never mean ± std, which crosses zero for a fraction or a density."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from qinn_lib import paths
from qinn_lib.evaluation.statistics.hypothesis_tests import bootstrap_mean
from qinn_lib.experiments.search import OBJECTIVES, front_trials

#: One colour per role, used consistently across notebooks.
COLORS = {
    "data": "black",
    "train": "#1f77b4",
    "val": "#ff7f0e",
    "test": "#2ca02c",
    "QINN": "#d62728",
    "QINN (MSE)": "#d62728",
    "QINN (fidelity)": "#9467bd",
    "INN 2k": "#8c564b",
    "INN 6k": "#e377c2",
    "INN 16k": "#17becf",
}


def style() -> None:
    """A compact, print-friendly matplotlib style for all notebooks."""
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "font.size": 10,
        "axes.titlesize": 10,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def save(fig: plt.Figure, name: str, folder: Path | None = None) -> list[Path]:
    """Save ``fig`` as ``<name>.pdf`` and ``.png`` in ``folder`` (default: the run's output
    folder, :func:`qinn_lib.paths.output_dir`); return the paths."""
    out = []
    for suffix in (".pdf", ".png"):
        path = paths.figure_path(name, suffix, folder)
        fig.savefig(path)
        out.append(path)
    return out


def _density(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Histogram normalised to the *total* number of values, so that events outside the plotted
    range lower the curve instead of being silently renormalised away (and an empty histogram is
    zero, not NaN)."""
    counts = np.histogram(values, bins=bins)[0].astype(float)
    return counts / (max(len(values), 1) * np.diff(bins))


def _band(values: Sequence[np.ndarray] | np.ndarray, bins: np.ndarray):
    """Histogram(s) -> (mean, min, max) per bin over the seeds; a single array gives min = max =
    mean (one seed, no band). The min–max band stays within the seeds' values, so it never drops
    below zero as mean ± std does."""
    arrays = [values] if isinstance(values, np.ndarray) else list(values)
    hists = np.stack([_density(np.asarray(a), bins) for a in arrays])
    return hists.mean(axis=0), hists.min(axis=0), hists.max(axis=0)


def hist_with_ratio(reference: np.ndarray, others: Mapping[str, np.ndarray | Sequence[np.ndarray]],
                    bins: int | np.ndarray = 50, *, range: tuple[float, float] | None = None,
                    xlabel: str = "", reference_label: str = "True", axes=None, logy: bool = False,
                    ratio_range: tuple[float, float] = (0.5, 1.5), legend: bool = True):
    """Normalised histograms of ``others`` against ``reference`` with a ratio panel below.

    Each histogram is normalised to all of its events (not only those inside the range), so a
    model that puts events outside the range shows up as a deficit.

    A value of ``others`` may be a list of arrays (one per training seed): the line is the
    bin-wise mean over seeds and the band the bin-wise min–max over seeds. The legend
    (``legend=True``) goes where it covers no curve (:func:`place_legend`).
    Returns ``(fig, (ax_main, ax_ratio))``.
    """
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(4.2, 4.0), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    else:
        fig = axes[0].figure
    ax, rax = axes
    reference = np.asarray(reference)
    if np.ndim(bins) == 0:
        lo, hi = range if range is not None else np.percentile(reference, [0.1, 99.9])
        bins = np.linspace(lo, hi, int(bins) + 1)
    centres = 0.5 * (bins[1:] + bins[:-1])
    ref = _density(reference, bins)
    ref_err = np.sqrt(np.histogram(reference, bins=bins)[0]) / (len(reference) * np.diff(bins))
    ax.stairs(ref, bins, color=COLORS["data"], label=reference_label, lw=1.2)
    tops = [ref]  # the highest drawn value per bin, for placing the legend
    safe_ref = np.where(ref > 0, ref, np.nan)
    rax.fill_between(centres, 1 - ref_err / safe_ref, 1 + ref_err / safe_ref, color="0.85", step="mid")
    for i, (label, values) in enumerate(others.items()):
        # a label without a role colour takes the i-th colour of the cycle (stairs would draw black)
        color = COLORS.get(label, f"C{i % 10}")
        mean, lo, hi = _band(values, bins)
        tops.append(hi)
        line = ax.stairs(mean, bins, label=label, color=color, lw=1.2)
        color = line.get_edgecolor()
        if np.any(hi > lo):
            ax.stairs(hi, bins, baseline=lo, fill=True, color=color, alpha=0.25, lw=0)
        rax.stairs(mean / safe_ref, bins, color=color, lw=1.0)
        if np.any(hi > lo):
            rax.stairs(hi / safe_ref, bins, baseline=lo / safe_ref, fill=True, color=color, alpha=0.25, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel("normalised")
    if legend:
        place_legend(ax, bins, np.max(tops, axis=0))
    rax.axhline(1.0, color="0.4", lw=0.8, ls="--")
    rax.set_ylim(*ratio_range)
    rax.set_ylabel("ratio")
    rax.set_xlabel(xlabel)
    return fig, (ax, rax)


def _renderer(fig):
    canvas = fig.canvas
    return canvas.get_renderer() if hasattr(canvas, "get_renderer") else fig._get_renderer()


def place_legend(ax, edges: np.ndarray, heights: np.ndarray, *, margin: float = 0.04):
    """The legend of ``ax`` in the upper corner above the lower histogram side, and never over a
    curve: ``heights`` (the highest drawn value per bin between ``edges``) under the legend must
    end below it, else the y axis is raised until they do (linear axes from 0; a log axis gets
    the emptier corner only). Returns the legend."""
    edges, heights = np.asarray(edges, float), np.nan_to_num(np.asarray(heights, float))
    third = max(1, len(heights) // 3)
    corner = "upper left" if heights[:third].max(initial=0) <= heights[-third:].max(initial=0) else "upper right"
    legend = ax.legend(loc=corner)
    if ax.get_yscale() != "linear" or not len(heights):
        return legend
    fig = ax.figure
    box = legend.get_window_extent(_renderer(fig)).transformed(ax.transAxes.inverted())
    lo, hi = ax.get_xlim()
    x0, x1 = lo + box.x0 * (hi - lo), lo + box.x1 * (hi - lo)
    under = (edges[1:] > x0) & (edges[:-1] < x1)
    if not under.any():
        return legend
    y_lo, y_hi = ax.get_ylim()
    need = heights[under].max()
    room = box.y0 - margin  # axes fraction below the legend
    if room > 0 and need > y_lo + room * (y_hi - y_lo):
        ax.set_ylim(y_lo, y_lo + (need - y_lo) / room)
    return legend


def loss_curves(history: Sequence[Mapping[str, float]], *, ncols: int = 3):
    """Every loss term of a training history (``train_<term>`` and ``val_<term>`` per epoch) in a
    grid of panels: the training batches solid, the validation split dashed on top of it, so
    that both stay visible where they coincide. Log scale for every term but the total loss and
    the NLL (which may be negative). Returns the figure."""
    epochs = [h["epoch"] for h in history]
    terms = [k[len("train_"):] for k in history[0] if k.startswith("train_")]
    ncols = max(1, min(ncols, len(terms)))
    nrows = math.ceil(len(terms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        ax.plot(epochs, [h[f"train_{term}"] for h in history], "-", lw=2.2, color=COLORS["train"], label="train",
                zorder=2)
        ax.plot(epochs, [h[f"val_{term}"] for h in history], "--", lw=1.2, color=COLORS["val"], label="validation",
                zorder=3)
        if len(epochs) < 20:  # a few epochs (quick profile): mark them
            for line in ax.lines[-2:]:
                line.set_marker("o")
                line.set_markersize(3)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        if term not in ("loss", "nll"):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    axes.flat[0].legend()
    fig.tight_layout()
    return fig


def hist_grid(samples: Mapping[str, np.ndarray], columns: Sequence[str], labels: Mapping[str, str],
              *, bins: int = 60, ncols: int = 3, cuts: Mapping[str, Sequence[float]] | None = None,
              ranges: Mapping[str, tuple[float, float]] | None = None, logy: Sequence[str] = ()):
    """One panel per column, every sample overlaid (normalised). ``samples`` map a label to a
    dict-like or structured object indexable by column name. Dashed lines mark ``cuts``."""
    n = len(columns)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, columns):
        first = next(iter(samples.values()))[col]
        lo, hi = (ranges or {}).get(col, tuple(np.percentile(first, [0.05, 99.95])))
        edges = np.linspace(lo, hi, bins + 1)
        for label, sample in samples.items():
            ax.hist(sample[col], bins=edges, density=True, histtype="step", lw=1.1,
                    label=label, color=COLORS.get(label))
        for c in (cuts or {}).get(col, ()):
            ax.axvline(c, color="0.3", ls="--", lw=0.8)
        if col in logy:
            ax.set_yscale("log")
        ax.set_xlabel(labels.get(col, col))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend()
    fig.tight_layout()
    return fig


def ratio_grid(truth: Mapping[str, np.ndarray], models: Mapping[str, Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]]],
               keys: Sequence[str], labels: Mapping[str, str], *, bins: int = 40, ncols: int = 4,
               ranges: Mapping[str, tuple[float, float]] | None = None, reference_label: str = "True"):
    """A grid of :func:`hist_with_ratio` panels, one per observable in ``keys``.

    ``truth`` and each model map observable names to arrays (e.g. ``observables.reconstruct``
    output); a model may instead be a list of such maps, one per seed, drawn as a band."""
    import matplotlib.gridspec as gridspec

    n = len(keys)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(3.3 * ncols, 3.4 * nrows))
    outer = gridspec.GridSpec(nrows, ncols, figure=fig, wspace=0.32, hspace=0.35)
    for i, key in enumerate(keys):
        inner = outer[i // ncols, i % ncols].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        lo, hi = (ranges or {}).get(key, tuple(np.percentile(truth[key], [0.1, 99.9])))
        others = {label: ([s[key] for s in m] if isinstance(m, (list, tuple)) else m[key])
                  for label, m in models.items()}
        hist_with_ratio(truth[key], others, bins=bins, range=(lo, hi), xlabel=labels.get(key, key),
                        axes=(ax, rax), reference_label=reference_label, legend=i == 0)
        ax.tick_params(labelbottom=False)
        if i % ncols:
            ax.set_ylabel("")
            rax.set_ylabel("")
    return fig


def seed_interval(entry: Mapping[str, Any]) -> tuple[float, float, float]:
    """``(mean, low, high)`` of a summarise entry: its seed mean and the percentile bootstrap
    interval of that mean over the seeds (inside [min, max] of the seeds; one seed: no interval)."""
    values = np.asarray(entry.get("values", [entry["mean"]]), dtype=np.float64)
    lo, hi = bootstrap_mean(values)
    return float(values.mean()), lo, hi


def seed_strip(ax, entries: Mapping[str, Mapping[str, Any]], *, xlabel: str = "", color: str = "0.35",
               log: bool = False) -> None:
    """One row per ensemble (``entries``: label -> summarise entry with per-seed ``values``): every
    seed as a small point, the seed mean as a bar, the 95 % bootstrap interval of the mean as a
    line. Bounded quantities stay bounded (no mean ± std below zero)."""
    labels = list(entries)
    for k, label in enumerate(labels):
        values = np.asarray(entries[label].get("values", [entries[label]["mean"]]), dtype=np.float64)
        mean, lo, hi = seed_interval(entries[label])
        ax.hlines(k, lo, hi, color=color, lw=2.2, alpha=0.6, zorder=2)
        ax.plot([mean], [k], marker="|", ms=14, mew=2.2, color=color, zorder=3)
        ax.scatter(values, np.full(values.size, k + 0.18), s=14, color=COLORS["QINN"], zorder=4,
                   label="a seed" if k == 0 else None)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)


def seed_scatter(ax, x: Mapping[str, Any], y: Mapping[str, Any], *, label: str, color: Any, marker: str = "o",
                 ms: float = 6) -> None:
    """One ensemble in a plane of two metrics (summarise entries ``x`` and ``y`` of the same runs):
    every seed as a small point, the seed means as a larger marker with the 95 % bootstrap
    intervals of the two means as (asymmetric) error bars."""
    xs, ys = (np.asarray(e.get("values", [e["mean"]]), dtype=np.float64) for e in (x, y))
    mx, xlo, xhi = seed_interval(x)
    my, ylo, yhi = seed_interval(y)
    ax.scatter(xs, ys, s=10, color=color, alpha=0.55, lw=0, zorder=2)
    ax.errorbar([mx], [my], xerr=[[mx - xlo], [xhi - mx]], yerr=[[my - ylo], [yhi - my]], fmt=marker, ms=ms,
                color=color, label=label, zorder=3)


def log_axis(axis, *, percent: bool = False) -> None:
    """Readable labels on a log-scaled ``ax.xaxis`` / ``ax.yaxis`` (call it after plotting, it reads
    the axis range): plain numbers (or percentages) at 1-9 x 10^k on an axis spanning under a
    decade, at 1, 2, 5 x 10^k up to three decades, at powers of ten beyond; no minor labels (they
    overlap on short axes)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 10.0
    subs = tuple(range(1, 10)) if decades < 1 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.3g} %" if percent else f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_front(records: Sequence[dict[str, Any]], *, references: dict[str, dict[str, Any]] | None = None,
               baseline: dict[str, Any] | None = None, paper_recon: float = 0.021) -> Any:
    """The search in the plane (reconstruction deviation, JS(M_ll)): every trial, the Pareto front,
    the paper's 2.1 % (a vertical line), and the INN ensembles of notebook 05 as horizontal bands
    (``references``: ``{label: summarise-row metrics}``; their inverse is exact, so only their
    JS(M_ll) places them; the band spans their seeds). ``baseline``: the Table 1 QINN's
    summarise-row metrics, drawn seed by seed with the mean and its bootstrap interval."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    done = [r for r in records if r["values"] is not None]
    xs = np.array([r["values"][OBJECTIVES[0]] for r in done])
    ys = np.array([r["values"][OBJECTIVES[1]] for r in done])
    ax.scatter(xs, ys, s=18, color="0.6", label=f"trials ({len(done)})", zorder=2)
    front = front_trials(records)
    if front:
        fx = [r["values"][OBJECTIVES[0]] for r in front]
        fy = [r["values"][OBJECTIVES[1]] for r in front]
        ax.step(fx, fy, where="post", color=COLORS["QINN"], lw=1.2, zorder=3)
        ax.scatter(fx, fy, s=30, color=COLORS["QINN"], label=f"Pareto front ({len(front)})", zorder=4)
    for label, m in (references or {}).items():
        js = m.get("js/m_ll")
        if js is None:
            continue
        color = COLORS.get(label, "k")
        ax.axhline(js["mean"], color=color, lw=1.0, ls="--", label=f"{label} (exact inverse)")
        values = js.get("values", [js["mean"]])
        if len(values) > 1:
            ax.axhspan(min(values), max(values), color=color, alpha=0.12, lw=0)
    if baseline is not None and "recon_mean" in baseline and "js/m_ll" in baseline:
        seed_scatter(ax, baseline["recon_mean"], baseline["js/m_ll"], marker="*", ms=11, color="k",
                     label="Table 1 QINN (seeds; mean, 95 % bootstrap interval)")
    ax.axvline(paper_recon, color="k", lw=0.8, ls=":", label=f"paper: < {100 * paper_recon:.1f} %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    log_axis(ax.xaxis, percent=True)
    log_axis(ax.yaxis)
    ax.set_xlabel("reconstruction deviation ‖x̃ − x‖/‖x‖ (mean, test)")
    ax.set_ylabel(r"JS($M_{\ell\ell}$) (test)")
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig
