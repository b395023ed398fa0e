"""Figures of notebook 07's sweep: each metric against the shot count or the noise strength, with
exact simulation's value, the band of the equivalence margin around it (:mod:`.equivalence`) and
the verdict of every point (:func:`qinn_lib.hardware.sweeps.as_good_as_exact`)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation.statistics import transforms
from qinn_lib.hardware import equivalence
from qinn_lib.hardware.sweeps import EXACT, GROUPS, METRIC_LABELS, as_good_as_exact

__all__ = ["plot_sweep"]


def _margin_band(ref: float, metric: str) -> tuple[float, float]:
    """The values within the equivalence margin of ``ref`` (a ratio either way on a log scale; of
    AUC − ½ for an AUC; ± the margin on the raw one)."""
    scale, r = transforms.rule_for(metric), equivalence.margin(metric)
    if scale == transforms.LOG:
        return ref / r, ref * r
    if scale == transforms.LOG_AUC:
        return 0.5 + (ref - 0.5) / r, 0.5 + (ref - 0.5) * r
    return ref - r, ref + r


def plot_sweep(rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str], *, x: str,
               labels: Mapping[str, str] | None = None, ncols: int = 4, judged: Sequence[str] | None = None):
    """One panel per metric against the shot count (``x="shots"``) or the noise strength of every
    channel (``x="p"``): seed mean with ±1 std error bars, the exact-simulation value as a line
    with the band of the equivalence margin around it (:mod:`.equivalence`); a cross marks a point
    found *not* as good as exact simulation (a difference outside the margin), an open square one
    left undecided (:func:`as_good_as_exact`); unmarked points are equivalent. ``judged``: the
    metrics drawn so (default: those of :data:`GROUPS`); any other is a diagnostic (no line, no
    crosses), as ``angle_error``."""
    import matplotlib.pyplot as plt

    if x not in ("shots", "p"):
        raise ValueError(f"plot_sweep: x must be 'shots' or 'p', got {x!r}")
    labels = {**METRIC_LABELS, **dict(labels or {})}
    if x == "shots":
        series = {"shots": [r for r in rows if r["device"]["shots"] is not None and r["device"]["channel"] is None]}
    else:
        channels = sorted({r["device"]["channel"] for r in rows if r["device"]["channel"]})
        series = {c: [r for r in rows if r["device"]["channel"] == c and r["device"]["shots"] is None] for c in channels}
    nrows = math.ceil(len(metric_names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows + 0.4), squeeze=False, layout="constrained")
    exact = next(r for r in rows if r["label"] == EXACT)["metrics"]
    judged = set(judged) if judged is not None else {m for names in GROUPS.values() for m in names}
    for ax, metric in zip(axes.flat, metric_names):
        ref = exact[metric]["mean"]
        diagnostic = metric not in judged  # e.g. angle_error: 0 when exact
        for name, group in series.items():
            group = sorted(group, key=lambda r: r["device"][x])
            xs = [r["device"][x] for r in group]
            means = np.array([r["metrics"][metric]["mean"] for r in group])
            stds = np.array([r["metrics"][metric]["std"] if r["metrics"][metric]["n"] > 1 else 0.0 for r in group])
            ok = [None if diagnostic else as_good_as_exact(rows, r["label"], metric)["ok"] for r in group]
            line = ax.errorbar(xs, means, yerr=np.nan_to_num(stds), marker="o", ms=3, capsize=2,
                               label=name.replace("_", " ") if x == "p" else "finite shots")
            bad = [i for i, v in enumerate(ok) if v is False]
            ax.plot([xs[i] for i in bad], means[bad], "x", color=line[0].get_color(), ms=7)
            open_ = [i for i, v in enumerate(ok) if v is None and not diagnostic]
            ax.plot([xs[i] for i in open_], means[open_], "s", mfc="none", color=line[0].get_color(), ms=7)
        if not diagnostic:
            ax.axhline(ref, color="black", lw=1, label="exact simulation")
            low, high = _margin_band(ref, metric)
            if transforms.rule_for(metric) == transforms.LOG_AUC:
                high = min(high, 1.0)  # an AUC ends at 1
            if math.isfinite(low) and math.isfinite(high):
                ax.axhspan(low, high, color="black", alpha=0.1, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("shots per circuit N" if x == "shots" else "noise strength p per gate")
        ax.set_title(labels.get(metric, metric))
        values = [r["metrics"][metric]["mean"] for g in series.values() for r in g] + ([] if diagnostic else [ref])
        if min(values) > 0 and max(values) > 10 * min(values):  # log only where the values span a decade
            ax.set_yscale("log")
        else:  # plain tick labels: an AUC pinned at 1 would otherwise read "1e-6+1" above its axis
            ax.ticklabel_format(axis="y", useOffset=False)
    spare = list(axes.flat)[len(metric_names):]
    for ax in spare:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if judged & set(metric_names):  # what the band and the markers mean, once for the figure
        from matplotlib.lines import Line2D  # deferred: matplotlib only where a figure is drawn
        from matplotlib.patches import Patch  # deferred: as Line2D

        handles += [Patch(color="black", alpha=0.1, lw=0), Line2D([], [], ls="", marker="x", color="grey", ms=7),
                    Line2D([], [], ls="", marker="s", mfc="none", color="grey", ms=7)]
        names += [f"equivalence margin (×{equivalence.RATIO_MARGIN:g}; NLL ±{equivalence.NLL_MARGIN:g})",
                  "not as good as exact", "undecided"]
    if spare:
        spare[0].legend(handles, names, loc="center")
    else:  # above the panels: a legend inside one would cover its curves (issue 23)
        fig.legend(handles, names, loc="outside upper center", ncol=len(names))
    return fig
