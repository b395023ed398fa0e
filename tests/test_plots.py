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
