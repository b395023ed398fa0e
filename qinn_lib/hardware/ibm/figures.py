"""The figure of notebook 07's section "On a real device's noise": where each calibrated device
sits on the uniform-noise axis of notebook 07's scan (:mod:`qinn_lib.hardware.ibm.placement`), and
the histogram ranges of the generated observables."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.hardware.ibm.placement import REFERENCE_CHANNEL, scan_curve

__all__ = ["plot_noise_axis", "common_ranges"]


def common_ranges(samples: Sequence[Mapping[str, np.ndarray]], keys: Sequence[str],
                  percentiles: tuple[float, float] = (0.5, 99.5)) -> dict[str, tuple[float, float]]:
    """Histogram ranges that hold the bulk of every sample (truth and each device): a device's
    events far from the truth's range would otherwise fall outside the panel and look absent."""
    out = {}
    for key in keys:
        lows, highs = [], []
        for sample in samples:
            values = np.asarray(sample[key], dtype=np.float64)
            values = values[np.isfinite(values)]
            if len(values):
                lo, hi = np.percentile(values, percentiles)
                lows.append(lo)
                highs.append(hi)
        out[key] = (float(min(lows)), float(max(highs)))
    return out


def plot_noise_axis(rows: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]],
                    placements: Sequence[Mapping[str, Any]], *, channel: str = REFERENCE_CHANNEL):
    """Notebook 07's angle error against the noise strength p of every scanned channel (exact
    expectation values), each device's noise-only angle error as a horizontal line (raw: solid,
    readout-mitigated: dashed) with its +-2 standard-error band, its effective p marked on the
    ``channel`` curve, and the p up to which the distributions are as good as exact (dotted)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    channels = sorted({r["device"]["channel"] for r in rows if r["device"].get("channel")})
    for c in channels:
        p, v = scan_curve(rows, c)
        ax.plot(p, v, "o-", ms=3, lw=1.2, color="black" if c == channel else "grey",
                label=f"uniform {c.replace('_', ' ')} (notebook 07)")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (s, pl) in enumerate(zip(summaries, placements)):
        col = colours[i % len(colours)]
        for variant, style in (("raw", "-"), ("mitigated", "--")):
            g = s["generation"][variant]
            a, se = g["angle_error_noise"], g["angle_error_noise_se"]
            ax.axhline(a, color=col, ls=style, lw=1.2,
                       label=f"{s['backend']}" + (" (readout mitigated)" if variant == "mitigated" else ""))
            if math.isfinite(se):
                ax.axhspan(a - 2 * se, a + 2 * se, color=col, alpha=0.12, lw=0)
        eff = pl[channel]
        if math.isfinite(eff["p"]):
            ax.plot([eff["p"]], [s["generation"]["raw"]["angle_error_noise"]], "D", color=col, ms=7, mec="black")
    limit = placements[0][channel]["threshold"] if placements else None
    if limit:
        ax.axvline(limit, color="black", ls=":", lw=1, label=f"distributions as good as exact up to p = {limit:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise strength p per gate (uniform, notebook 07)")
    ax.set_ylabel("RMS error of generated angles [rad]")
    fig.legend(loc="outside lower center", ncol=2)  # below the axes: it covers no curve
    return fig
