"""Notebook 02's panels, driven without a kernel: their figures are PNG bytes in Image widgets and
their work runs in background threads that the tests wait for."""

import numpy as np
import pytest
import torch

from qinn_lib.experiments import one_model, publish
from qinn_lib.notebook import depth_explorer, model_viewer
from qinn_lib.training.config import QINNRunConfig


def events(n=64, seed=0):
    return torch.rand(n, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * np.pi


def is_png(img) -> bool:
    return bytes(img.value).startswith(b"\x89PNG") and img.layout.display is None


def test_invertibility_fit_learns_on_one_thread():
    torch.set_num_threads(2)
    res = depth_explorer.invertibility_fit(events(256), 2, 2, steps=200, seed=1)
    assert torch.get_num_threads() == 2, "the fit restores the thread count"
    assert len(res["history"]) == 200 and res["steps"] == 200 and not res["stopped"]
    assert res["final_mse"] < 0.5 * res["history"][0], "200 Adam steps must at least halve the loss"
    assert res["spread_after"].shape == (5,)


def test_invertibility_fit_stops_when_asked():
    res = depth_explorer.invertibility_fit(events(), 2, 2, steps=100, seed=1, on_step=lambda step, loss: step == 7)
    assert res["stopped"] and res["steps"] == 7 and len(res["history"]) == 7


def test_scan_plot_has_a_point_per_fit_and_seed():
    scan = depth_explorer.depth_scan(events(), [1, 2], 2, steps=5, seeds=[1, 2, 3])
    assert [(r["n_layers"], r["seed"]) for r in scan] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    fig = depth_explorer.plot_depth_scan(scan)
    points = [line for line in fig.axes[1].lines if line.get_marker() == "o"]
    assert len(points) == 1 and len(points[0].get_xdata()) == 6
    np.testing.assert_allclose(sorted(points[0].get_ydata()), sorted(r["final_mse"] for r in scan))
    bars = fig.axes[1].containers  # the seed means with their spread
    assert len(bars) == 1 and len(bars[0].lines[0].get_xdata()) == 2


def test_circuit_picture_is_readable_at_every_depth():
    small = depth_explorer.circuit_png(5, 1)
    deep = depth_explorer.circuit_png(5, 64)
    assert deep == depth_explorer.circuit_png(5, depth_explorer.DRAWN_LAYERS) != small
    assert "and <b>62 more</b>" in depth_explorer.circuit_caption(64)
    assert "more" not in depth_explorer.circuit_caption(1)


def test_explorer_panel_keeps_every_fit():
    ex = depth_explorer.DepthExplorer(events(), max_depth=3, steps=10, seed=0, isp_layers=2, n_layers=1)
    assert is_png(ex.circuit)
    assert bytes(ex.plot.value) == b"" and ex.plot.layout.display == "none", "no broken image before the first fit"
    assert "fits kept: <b>0</b>" in ex.count.value
    changes = []
    ex.circuit.observe(lambda change: changes.append(change), names="value")
    ex.isp.value = 3
    assert changes == [], "the ISP depth does not change the forward circuit's picture"
    ex.layers.value = 2
    assert len(changes) == 1 and "2</b> of 2 layers" in ex.circuit_text.value
    ex.layers.value = 3
    assert len(changes) == 1 and "1 more" in ex.circuit_text.value, "deeper: same picture, new caption"
    ex.fit()
    ex.wait(120)
    assert "final MSE" in ex.job.status.value and "3 layers" in ex.job.status.value
    ex.seed.value = 1
    ex.fit()
    ex.wait(120)
    assert [(r["n_layers"], r["seed"]) for r in ex.results] == [(3, 0), (3, 1)]
    assert "fits kept: <b>2</b>" in ex.count.value and is_png(ex.plot)
    assert not ex.fit_button.disabled and ex.job.stop.disabled
    ex.clear()
    assert ex.results == [] and ex.plot.layout.display == "none"


def test_explorer_stop_discards_the_fit():
    ex = depth_explorer.DepthExplorer(events(), max_depth=3, steps=10, seed=0, results=[])
    ex.steps.value = 40
    release = depth_explorer.invertibility_fit

    def slow_fit(*args, on_step, **kwargs):  # stop from "the user" after a few steps
        def step(i, loss):
            if i == 3:
                ex.job.stop.click()
            return on_step(i, loss)
        return release(*args, on_step=step, **kwargs)

    depth_explorer.invertibility_fit = slow_fit
    try:
        ex.fit()
        ex.wait(120)
    finally:
        depth_explorer.invertibility_fit = release
    assert ex.results == [] and "stopped after 3 of 40 steps (not kept)" in ex.job.status.value


def test_explorer_starts_from_the_static_scan():
    scan = depth_explorer.depth_scan(events(), [1], 2, steps=3, seeds=[0, 1])
    ex = depth_explorer.DepthExplorer(events(), steps=10, results=scan)
    assert len(ex.results) == 2 and "model" not in ex.results[0] and is_png(ex.plot)
    assert "fits kept: <b>2</b> (depths 1)" in ex.count.value


# -- the trained-model viewer ------------------------------------------------------------------------
@pytest.fixture
def isolated(tmp_path, monkeypatch):
    for name, sub in (("QINN_RUNS_DIR", "runs"), ("QINN_SHIPPED_DIR", "shipped"), ("QINN_DATA_DIR", "data")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    return tmp_path


def tiny(seed=5):
    return QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64, seed=seed)


def test_viewer_without_models_says_so(isolated):
    v = model_viewer.ModelViewer(n_generate=300)
    assert v.candidates == [] and v.load_button.disabled
    assert "No trained QINN to look at yet" in v.job.status.value
    assert v.distributions.layout.display == "none" and v.event.disabled


def test_viewer_loads_a_run_and_shows_one_event(isolated):
    one_model.train_qinn(tiny(), progress=False)
    publish.refresh({"tiny": [tiny(seed=6)]}, progress=False, log=lambda *a: None)
    v = model_viewer.ModelViewer(n_generate=300)
    assert [c.source for c in v.candidates] == ["shipped", "run"]
    assert "seed 6" in v.candidates[0].label and "seed 5" in v.candidates[1].label
    for index in (1, 0):
        v.choice.value = index
        v.load()
        v.wait(120)
        assert "loaded" in v.job.status.value, v.job.status.value
        assert is_png(v.distributions) and is_png(v.event_plot) and not v.event.disabled
        assert v.trained.shipped == (index == 0) and v.trained.cfg.seed == (6 if index == 0 else 5)
    assert f"of 0 to {len(v.trained.data.test) - 1:,}" in v.event_note.value
    first, table = bytes(v.event_plot.value), v.table.value
    assert table.count("<tr>") == 6, "a header and the five features"
    v.event.value = 3
    assert bytes(v.event_plot.value) != first and v.table.value != table


# -- issue: the reader's experience of the panels ------------------------------------------------------
def fake_fit(n_layers, seed, *, origin=None, isp=2, steps=5, mse=0.1):
    r = {"n_layers": n_layers, "isp_layers": isp, "steps": steps, "seed": seed, "history": np.linspace(1, mse, steps),
         "final_mse": mse, "spread_after": np.full(5, 0.2), "seconds": 0.1, "stopped": False}
    return {**r, "origin": origin} if origin else r


def test_single_seed_depths_are_points_without_a_spread_bar():
    """Regression: a depth with one seed was joined into the 'seed mean ± std' line with a zero bar."""
    fig = depth_explorer.plot_depth_scan([fake_fit(1, 0), fake_fit(1, 1, mse=0.3), fake_fit(2, 0), fake_fit(4, 0)])
    (bars,) = fig.axes[1].containers
    assert list(bars.lines[0].get_xdata()) == [1], "only the depth with two seeds has a mean ± std"
    points = [line for line in fig.axes[1].lines if line.get_marker() == "o"]
    assert sorted(np.round(points[0].get_xdata())) == [1, 1, 2, 4], "every fit is a point"
    assert depth_explorer.plot_depth_scan([fake_fit(1, 0), fake_fit(2, 0)]).axes[1].containers == []


def test_your_fits_look_different_from_the_scan_and_depth_colours_differ():
    fig = depth_explorer.plot_depth_scan([fake_fit(d, 0) for d in (1, 2, 4, 8, 10, 12, 16)] + [fake_fit(12, 1, origin="yours")])
    stars = [line for line in fig.axes[1].lines if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == pytest.approx([12.04]) and "your fits" in stars[0].get_label()
    curves = fig.axes[0].lines
    assert [c.get_linestyle() for c in curves] == ["-"] * 7 + ["--"] and curves[-1].get_linewidth() > 2 * curves[0].get_linewidth()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["1 layer", "2 layers", "4 layers"] and labels[-1] == "your fits"
    import matplotlib.colors as mcolors

    rgb = np.array([mcolors.to_rgb(depth_explorer.DEPTH_COLORS[k]) for k in range(7)])
    gaps = [np.abs(a - b).sum() for i, a in enumerate(rgb) for b in rgb[i + 1:]]
    assert min(gaps) > 0.3, "neighbouring depths (10 and 12 layers) must not share a colour"
    assert depth_explorer.circuit_caption(1).count("1 layer,") == 1


def test_a_fit_that_repeats_a_kept_one_is_recognised_and_the_seed_moves_on():
    """Regression: a fit at the panel's defaults repeated the scan's seed-1234 fit and was kept as a
    fourth seed, moving the mean; the seed slider never advanced."""
    x = events()
    scan = depth_explorer.depth_scan(x, [2], 2, steps=10, seeds=[7, 8])
    ex = depth_explorer.DepthExplorer(x, max_depth=3, steps=10, seed=7, isp_layers=2, n_layers=2, results=scan)
    assert ex.seed.value == 9, "the slider starts at the first seed the kept fits do not have"
    ex.seed.value = 7
    assert ex.fit() is None and not ex.job.running
    assert "already kept (the static scan" in ex.job.status.value and "not fitted again" in ex.job.status.value
    assert len(ex.results) == 2 and ex.seed.value == 9
    ex.fit()
    ex.wait(120)
    assert [(r["seed"], r.get("origin")) for r in ex.results] == [(7, None), (8, None), (9, "yours")]
    assert ex.seed.value == 10 and "moved on to 10" in ex.job.status.value
    assert "1 of them yours" in ex.count.value


def test_panels_say_what_they_are_where_no_kernel_runs():
    """Regression: the committed notebook showed both panels as raw ``VBox(children=(HBox(...``."""
    ex = depth_explorer.DepthExplorer(events(), max_depth=3, steps=10, results=[])
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    for mime in ("text/plain", "text/html"):
        assert "VBox" not in bundle[mime] and "depth explorer" in bundle[mime] and "JupyterLab" in bundle[mime]


def test_widget_labels_are_html_not_latex():
    from qinn_lib.notebook import widgets

    assert widgets.label_html(r"$p_{T,\ell^+}$ [GeV]") == "p<sub>T,ℓ<sup>+</sup></sub> [GeV]"
    assert widgets.label_html(r"$\Delta R_{\ell^+\ell^-}$") == "ΔR<sub>ℓ<sup>+</sup>ℓ<sup>−</sup></sub>"
    table = model_viewer.reconstruction_table(np.arange(5.0), np.arange(5.0) + 0.5)
    assert "$" not in table and "\\" not in table and "p<sub>T,ℓ<sup>+</sup></sub>" in table


def test_jacobian_numbers_are_white_on_dark_cells_and_black_on_light_ones():
    from qinn_lib.notebook import widgets

    assert widgets.text_color_for((0.02, 0.19, 0.38)) == "white" and widgets.text_color_for((1.0, 0.9, 0.9)) == "black"
    jac = np.diag([2.0, -2.0, 0.0, 0.1, 1.9])
    fig = model_viewer.event_figure(jac, np.ones(5), np.ones(5))
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours["2.00"] == colours["-2.00"] == "white" and colours["0.00"] == colours["0.10"] == "black"


def test_viewer_labels_tell_the_shipped_models_apart():
    """Regression: 45 entries with 8 distinct labels (the ablations could not be told apart)."""
    labels = [c.label for c in model_viewer.available_qinns()]
    assert len(labels) == len(set(labels))
    shipped = [lab for lab in labels if lab.startswith("shipped")]
    assert shipped[0].startswith("shipped qinn-mse: QINN mse, seed 1234"), "Table 1 first: what load loads by default"
    assert any("06-no-latent-mmd" in lab and "lambda_mmd_latent=0" in lab for lab in shipped)
    assert any("qinn-mse: QINN mse, seed 1234" in lab and lab.endswith("; all else as Table 1") for lab in shipped)
    assert model_viewer.differences(QINNRunConfig(n_layers=24, lambda_mz=0.0)) == "n_layers=24, lambda_mz=0"


def test_viewer_selects_a_model_shows_errors_and_names_a_missing_event(isolated, monkeypatch):
    """Regression: nothing was selected, 'load' raised a TypeError that the button swallowed, and an
    event index out of range was clamped silently."""
    one_model.train_qinn(tiny(), progress=False)
    v = model_viewer.ModelViewer(n_generate=300)
    assert v.choice.value == 0, "the first model is selected"
    v.load_button.click()
    v.wait(120)
    assert "loaded" in v.job.status.value
    n = len(v.trained.data.test)
    before = bytes(v.event_plot.value)
    v.event.value = n + 5
    assert v.event.value == n + 5, "not clamped"
    assert f"test event {n + 5:,} does not exist: choose 0 to {n - 1:,}" in v.event_note.value
    assert bytes(v.event_plot.value) == before
    v.event.value = 1
    assert "does not exist" not in v.event_note.value
    monkeypatch.setattr(model_viewer, "load_qinn", lambda c: (_ for _ in ()).throw(RuntimeError("disk on fire")))
    v.load_button.click()
    v.wait(120)
    assert "RuntimeError: disk on fire" in v.job.status.value
    monkeypatch.setattr(model_viewer, "available_qinns", lambda: (_ for _ in ()).throw(OSError("no listing")))
    v.refresh_button.click()
    assert "refresh failed: OSError: no listing" in v.job.status.value, "a callback's error is shown, not swallowed"
