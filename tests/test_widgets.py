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
    assert v.event.max == len(v.trained.data.test) - 1
    first, table = bytes(v.event_plot.value), v.table.value
    assert table.count("<tr>") == 6, "a header and the five features"
    v.event.value = 3
    assert bytes(v.event_plot.value) != first and v.table.value != table
