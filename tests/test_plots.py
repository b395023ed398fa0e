"""Figure helpers (qinn_lib.notebook.plots)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402

from qinn_lib.notebook import plots  # noqa: E402


def test_labels_without_a_role_colour_get_distinct_colours():
    """Regression: ax.stairs(color=None) draws black, so every unknown label used to be black."""
    rng = np.random.default_rng(0)
    fig, (ax, _) = plots.hist_with_ratio(rng.normal(size=500), {"N=1e2": rng.normal(size=500),
                                                                "depolarizing p=0.01": rng.normal(size=500)})
    colours = [mcolors.to_hex(p.get_edgecolor()) for p in ax.patches[1:]]
    assert len(colours) == 2 and len(set(colours)) == 2 and "#000000" not in colours


def test_seed_bands_are_the_seeds_min_max_and_never_below_zero():
    """Issue 21: a band of mean ± std over seeds crosses zero where one seed has no events in a bin;
    the min–max band spans the seeds and stays >= 0."""
    rng = np.random.default_rng(1)
    seeds = [rng.normal(size=400), rng.normal(3.0, 0.3, size=400), rng.normal(size=400)]
    bins = np.linspace(-4, 5, 31)
    mean, lo, hi = plots._band(seeds, bins)
    hists = np.stack([plots._density(s, bins) for s in seeds])
    assert np.all(lo >= 0) and np.allclose(lo, hists.min(axis=0)) and np.allclose(hi, hists.max(axis=0))
    assert np.any(mean - hists.std(axis=0) < 0), "the case mean ± std gets wrong"
    fig, (ax, rax) = plots.hist_with_ratio(rng.normal(size=1000), {"QINN": seeds}, bins=bins)
    assert len(ax.patches) == 3  # truth, the mean line, the band


def test_seed_strip_and_scatter_show_every_seed_and_a_bounded_interval():
    import matplotlib.pyplot as plt

    entries = {"baseline": {"mean": 0.134, "values": [0.0, 0.001, 0.4]}, "one seed": {"mean": 0.2, "values": [0.2]}}
    fig, (ax, ax2) = plt.subplots(1, 2)
    plots.seed_strip(ax, entries, xlabel="fold fraction")
    from matplotlib.collections import LineCollection, PathCollection

    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in points) == [1, 3]  # every seed is a point
    intervals = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    assert min(seg[:, 0].min() for seg in intervals) >= 0.0, "the interval of a fraction stays >= 0"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline", "one seed"]
    mean, lo, hi = plots.seed_interval(entries["baseline"])
    assert 0.0 <= lo <= mean <= hi <= 0.4 + 1e-12
    plots.seed_scatter(ax2, {"mean": 0.1, "values": [0.05, 0.1, 0.15]}, {"mean": 0.02, "values": [0.01, 0.02, 0.03]},
                       label="x", color="k")
    assert ax2.get_legend_handles_labels()[1] == ["x"]
    plt.close(fig)


def _legend_box_in_data(ax):
    fig = ax.figure
    fig.canvas.draw()
    return ax.get_legend().get_window_extent().transformed(ax.transData.inverted())


def test_the_legend_covers_no_curve():
    """Regression: notebook 04's Fig. 5 legend sat over the M_ll peak."""
    rng = np.random.default_rng(1)
    peak = rng.standard_cauchy(20_000) * 1.2 + 91.2
    fig, (ax, _) = plots.hist_with_ratio(peak, {"QINN (MSE)": peak + rng.normal(0, 0.5, peak.size),
                                                "QINN (fidelity)": peak + rng.normal(0, 1.0, peak.size)},
                                         bins=40, range=(75.0, 105.0))
    box = _legend_box_in_data(ax)
    edges = np.linspace(75.0, 105.0, 41)
    under = (edges[1:] > box.x0) & (edges[:-1] < box.x1)
    heights = np.max([p.get_data().values for p in ax.patches if hasattr(p, "get_data")], axis=0)
    assert under.any() and heights[under].max() < box.y0, "every curve under the legend ends below it"
    # a distribution rising to the right puts the legend on the left
    rising = rng.triangular(0, 10, 10, 5_000)
    fig, (ax, _) = plots.hist_with_ratio(rising, {"model": rising}, bins=20, range=(0.0, 10.0))
    assert ax.get_legend()._loc == 2, "upper left"


def test_loss_curves_are_a_grid_with_both_curves_visible():
    """Regression: six loss panels in one row, the training curve hidden under the validation one."""
    terms = ["loss", "nll", "mmd_latent", "mmd_input", "mmd_mz", "inv"]
    hist = [{"epoch": e, **{f"train_{t}": 1.0 / e for t in terms}, **{f"val_{t}": 1.0 / e for t in terms}}
            for e in range(1, 30)]
    fig = plots.loss_curves(hist)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6 and len({round(ax.get_position().y0, 3) for ax in visible}) == 2, "two rows of three"
    for ax in visible:
        train, val = ax.lines
        assert train.get_label() == "train" and val.get_label() == "validation"
        assert val.get_linestyle() == "--" and val.get_zorder() > train.get_zorder()
        assert train.get_linewidth() > 1.5 * val.get_linewidth(), "the training line shows beside the dashes"
