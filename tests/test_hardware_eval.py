"""Sweeps of a QINN over emulated devices (qinn_lib.hardware.sweeps), the "as good as exact" verdict
and its thresholds, the notebook-07 configuration, and the device-cost arithmetic (qinn_lib.hardware.resources)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qinn_lib.events.scaling import AngleScaler
from qinn_lib.hardware import equivalence, resources, sweep_figures
from qinn_lib.hardware import sweeps as he
from qinn_lib.hardware.device import Device
from qinn_lib.hardware.noise import NoiseModel
from qinn_lib.models.qinn.model import QINN
from qinn_lib.notebook import readme
from qinn_lib.training.config import ConfigError, HardwareRealismConfig, QINNRunConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _record(device: Device, seed: int, values: dict) -> dict:
    info = {"label": device.label, "shots": device.shots, "channel": device.noise and device.noise.channel,
            "p": device.noise and device.noise.p}
    return {"label": device.label, "device": info, "config": {"device": info}, "config_fingerprint": "c",
            "data_fingerprint": "d", "seed": seed, "metrics": values}


def _rows(shifts: dict[Device, float], spread: float = 0.003, sem: float = 0.001) -> list[dict]:
    """Three seeds per device; a sample metric = (1 + shift) (1 + spread e) with e ~ N(0, 1) drawn per
    device and seed, so the device pairs with exact simulation seed by seed; the event metrics'
    paired tests as :func:`sweeps.sweep` records them, from 2,000 per-event values each: the
    reconstruction (1 + shift) times exact's per event, the NLL exact's plus the shift, both with a
    per-event jitter of ``sem`` times the square root of the event count (so ``sem`` is the mean's)."""
    rng = np.random.default_rng(7)
    n_events = 2_000
    exact_events = {"recon_mean": rng.lognormal(-2.5, 0.5, n_events), "nll": rng.normal(-3.0, 1.0, n_events)}
    records = []
    for device, shift in {Device(): 0.0, **shifts}.items():
        jitter = sem * math.sqrt(n_events) * rng.standard_normal((2, n_events))
        events = {"recon_mean": exact_events["recon_mean"] * (1 + shift) * np.exp(jitter[0]),
                  "nll": exact_events["nll"] + shift + jitter[1]}
        tests = he._event_tests(exact_events, [events]) if device != Device() else {}
        for s in (0, 1, 2):
            v = (1.0 + shift) * (1.0 + spread * rng.standard_normal())
            values = {m: v for m in he.SAMPLE_METRICS}
            values.update(recon_mean=float(events["recon_mean"].mean()), nll=float(events["nll"].mean()),
                          recon_sem=sem, nll_sem=sem, **tests)
            records.append(_record(device, s, values))
    return he.summarise_sweep(records)


def test_verdict_is_a_paired_tost_against_the_declared_margin():
    from statsmodels.stats.weightstats import ttost_paired

    rows = _rows({Device(shots=100): 0.6, Device(shots=1000): 0.02, Device(shots=10_000): -0.5})
    level = he.point_level(rows)
    assert level == pytest.approx(0.05 / equivalence.STATEMENTS_PER_AXIS), "one scan axis"
    bad = he.as_good_as_exact(rows, "N=1e2", "js/m_ll")
    assert bad["ok"] is False and bad["diff"] == pytest.approx(0.6, abs=0.05) and bad["p_diff"] < level
    good = he.as_good_as_exact(rows, "N=1e3", "js/m_ll")
    assert good["ok"] is True and good["margin"] == equivalence.RATIO_MARGIN
    # the oracle: statsmodels' paired TOST on the log values, margin ln 1.25, seeds paired
    by = {r["label"]: r["metrics"]["js/m_ll"]["values"] for r in rows}
    p_oracle = ttost_paired(np.log(by["N=1e3"]), np.log(by["exact"]), -math.log(1.25), math.log(1.25))[0]
    assert good["p_tost"] == pytest.approx(p_oracle)
    better = he.as_good_as_exact(rows, "N=1e4", "js/m_ll")
    assert better["ok"] is False, "half of exact's JS is outside the margin: not equivalent, even if better"
    assert he.as_good_as_exact(rows, "N=1e3", "nll")["ok"] is True
    assert he.as_good_as_exact(rows, "N=1e4", "nll")["ok"] is False, "a lower NLL estimate is a wrong NLL"
    assert he.as_good_as_exact(rows, "N=1e2", "recon_mean")["ok"] is False
    with pytest.raises(ValueError, match="no metric"):
        he.as_good_as_exact(rows, "N=1e3", "js/pt_lp")
    with pytest.raises(ValueError, match="need rows"):
        he.as_good_as_exact(rows, "N=1e9", "nll")


def test_a_difference_inside_the_margin_that_the_seeds_cannot_pin_is_undecided():
    rows = _rows({Device(shots=100): 0.1}, spread=0.2)
    verdict = he.as_good_as_exact(rows, "N=1e2", "js/m_ll")
    assert verdict["ok"] is None and not verdict["p_tost"] < verdict["level"]


def test_event_tests_pair_over_events_and_a_non_finite_device_value_is_not_as_good():
    rng = np.random.default_rng(3)
    exact = {"recon_mean": rng.lognormal(-2.5, 0.5, 500), "nll": rng.normal(-3.0, 1.0, 500)}
    near = {"recon_mean": exact["recon_mean"] * 1.01, "nll": exact["nll"] + 0.01 + 0.001 * rng.standard_normal(500)}
    near["recon_mean"] = near["recon_mean"] * np.exp(0.01 * rng.standard_normal(500))
    tests = he._event_tests(exact, [near, near])
    assert tests["recon_mean_p_tost"] < 1e-10 and tests["nll_p_tost"] < 1e-10
    assert tests["nll_diff_t"] == pytest.approx(0.01, abs=1e-3) and tests["nll_margin_t"] == equivalence.NLL_MARGIN
    broken = {**near, "nll": np.where(np.arange(500) == 7, np.inf, near["nll"])}
    t = equivalence.paired_tests(exact["nll"], broken["nll"], "nll")
    assert t["nonfinite"] and equivalence.verdict(t, 0.05) is False
    same = equivalence.paired_tests([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "js/m_ll")
    assert same["p_tost"] == 0.0 and equivalence.verdict(same, 1e-3) is True, "identical values are equivalent"


def test_thresholds_need_every_larger_shot_count_and_every_smaller_noise():
    shots = {Device(shots=100): 0.5, Device(shots=1000): 0.0, Device(shots=10_000): 0.5, Device(shots=100_000): 0.0}
    dep = {Device(noise=NoiseModel("depolarizing", p)): s for p, s in ((1e-4, 0.0), (1e-3, 0.0), (1e-2, 0.5))}
    amp = {Device(noise=NoiseModel("amplitude_damping", p)): 0.5 for p in (1e-4, 1e-3)}
    rows = _rows({**shots, **dep, **amp})
    metric_names = ["js/m_ll", "recon_mean"]
    assert he.shots_threshold(rows, metric_names) == 100_000  # 1e3 passes, but 1e4 above it does not
    assert he.noise_threshold(rows, "depolarizing", metric_names) == pytest.approx(1e-3)
    assert he.noise_threshold(rows, "amplitude_damping", metric_names) is None
    assert he.shots_threshold(_rows({Device(shots=100): 0.5}), metric_names) is None


def test_single_seed_leaves_sample_metrics_undecided():
    records = [_record(d, 0, {"js/m_ll": v}) for d, v in ((Device(), 0.1), (Device(shots=100), 0.1))]
    assert he.as_good_as_exact(he.summarise_sweep(records), "N=1e2", "js/m_ll")["ok"] is None


def _toy_trained(n_events: int = 240) -> SimpleNamespace:
    """A small untrained QINN on plausible lepton features (the sweep's plumbing, not physics)."""
    rng = np.random.default_rng(0)
    physical = np.column_stack([rng.uniform(20, 80, n_events), rng.uniform(20, 80, n_events),
                                rng.uniform(-3, 3, n_events), rng.uniform(-2.4, 2.4, n_events),
                                rng.uniform(-2.4, 2.4, n_events)])
    scaler = AngleScaler.fit(physical)
    scaled = torch.as_tensor(scaler.transform(physical), dtype=torch.float32)
    cfg = QINNRunConfig(n_layers=2, isp_layers=2)
    data = SimpleNamespace(sample=SimpleNamespace(test=physical), scaler=scaler, test=scaled, train=scaled,
                           fingerprint="toy")
    return SimpleNamespace(cfg=cfg, model=QINN(n_layers=2, isp_layers=2, seed=1), data=data)


def test_sweep_evaluates_every_device_and_seed():
    trained = _toy_trained()
    devices = [Device(shots=100), Device(noise=NoiseModel("amplitude_damping", 0.01))]
    records = he.sweep(trained, devices, seeds=[5, 6], n_generate=200, n_test=50,
                       classifier={"epochs": 1, "hidden": 8}, log=lambda _: None)
    assert [r["label"] for r in records] == ["exact"] * 2 + ["N=1e2"] * 2 + ["amplitude_damping p=0.01"] * 2
    by = {(r["label"], r["seed"]): r["metrics"] for r in records}
    for key in ("js/m_ll", "w1/delta_r", "auc", "recon_mean", "nll", "nll_sem", "recon_sem", "angle_error"):
        assert all(math.isfinite(m[key]) for m in by.values()), key
    # same latent sample and classifier for every device: the exact device differs only by seed
    assert by[("exact", 5)]["recon_mean"] == by[("exact", 6)]["recon_mean"], "no shots: seed-independent"
    assert by[("N=1e2", 5)]["recon_mean"] != by[("N=1e2", 6)]["recon_mean"], "shots differ between seeds"
    assert by[("exact", 5)]["angle_error"] == 0.0 < by[("N=1e2", 5)]["angle_error"]
    assert by[("amplitude_damping p=0.01", 5)]["angle_error"] > 0
    assert all(math.isfinite(by[("N=1e2", s)][f"{m}_p_tost"]) for m in ("recon_mean", "nll") for s in (5, 6))
    assert "recon_mean_p_tost" not in by[("exact", 5)], "exact simulation is the reference, not tested"
    rows = he.summarise_sweep(records)
    assert {r["label"] for r in rows} == {"exact", "N=1e2", "amplitude_damping p=0.01"}
    assert he.as_good_as_exact(rows, "N=1e2", "nll")["ok"] in (True, False, None)
    fig = sweep_figures.plot_sweep(rows, ["js/m_ll", "nll", "angle_error"], x="shots")
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="seeds must be distinct"):
        he.sweep(trained, devices, seeds=[1, 1], n_generate=10, n_test=10)


def test_notebook_config_validates_shots_and_noise():
    assert HardwareRealismConfig().shots == (1e2, 1e3, 1e4, 1e5, 1e6)
    with pytest.raises(ConfigError, match="HardwareRealismConfig.shots must be whole numbers"):
        HardwareRealismConfig(shots=[100.5])
    with pytest.raises(ConfigError, match="HardwareRealismConfig.shots must be >= 1"):
        HardwareRealismConfig(shots=[0])
    with pytest.raises(ConfigError, match="HardwareRealismConfig.noise_levels must be <= 1"):
        HardwareRealismConfig(noise_levels=[0.1, 2.0])
    with pytest.raises(ConfigError, match="n_eval_seeds must be >= 2"):
        HardwareRealismConfig(n_eval_seeds=1)


def test_circuit_resources_count_the_ansatz():
    model = QINN(n_layers=3, isp_layers=2)
    n = model.n_features
    fwd, inv, swap = resources.circuit_resources(model)
    assert (fwd["qubits"], inv["qubits"], swap["qubits"]) == (n, n, 2 * n + 1)
    assert fwd["cnots"] == n * 3 and inv["cnots"] == n * (3 + 2)  # an n-CNOT ring per layer
    assert fwd["depth"] == 1 + 3 * (1 + n)  # encoding, then per layer a Rot and the ring's n sequential CNOTs
    assert swap["cswaps"] == n and swap["cnots_decomposed"] > swap["cnots"]
    assert fwd["cnots_decomposed"] == fwd["cnots"] and fwd["trained_angles"] == 3 * n * 3
    assert inv["event_angles"] == 3 * n


def test_device_cost_is_events_times_circuits_times_shots():
    rows = resources.device_cost(5, 180, 1e3, n_generate=10, n_nll=4, n_train=2, shot_rate_hz=100.0)
    gen, nll, epoch = rows
    assert gen["executions"] == 10 * 1 * 1000
    assert nll["circuits_per_event"] == 11 and nll["executions"] == 4 * 11 * 1000
    assert epoch["circuits_per_event"] == 11 * 361
    assert nll["device_hours"] == pytest.approx(44_000 / 100 / 3600)
    with pytest.raises(ValueError, match="shots must be a positive integer"):
        resources.device_cost(5, 180, 0)
    with pytest.raises(ValueError, match="shot_rate_hz"):
        resources.device_cost(5, 180, 10, shot_rate_hz=0)


def test_hardware_section_is_rendered_from_its_record():
    text = readme.render_results({"07_hardware_realism": {
        "seeds": [1, 2, 3], "statement": "From N = 1e5 shots on ...", "shots_table": "| shots |",
        "noise_table": "| noise |", "resources_table": "| res |", "cost_table": "| cost |"}})
    assert "From N = 1e5 shots on ..." in text and "| res |" in text and "| cost |" in text


def test_statement_and_table_say_what_the_numbers_say():
    shots = {Device(shots=100): 0.5, Device(shots=10_000): 0.0}
    noisy = {Device(noise=NoiseModel("depolarizing", p)): s for p, s in ((1e-4, 0.0), (1e-2, 0.5))}
    rows = _rows({**shots, **noisy})
    text = he.statement(rows)
    assert "the distributions from N = 10^4" in text and "the inverse from N = 10^4" in text
    assert "depolarizing noise" in text and "the NLL up to p = 0.0001" in text
    worse = he.statement(_rows({Device(shots=100): 0.5}))
    assert "the NLL at none of the shot counts up to N = 10^2 (there, nll differs beyond the margin)" in worse
    assert "two one-sided test (TOST) against a margin of ×1.25" in text
    table = he.verdict_table(rows, ["js/m_ll", "nll"])
    lines = table.splitlines()
    assert lines[0].startswith("| device | js/m_ll | nll | distributions as exact?")
    assert lines[3].startswith("| N=1e2 | 1.5") and lines[3].endswith("| no | no | no |")
    assert lines[4].endswith("| yes | yes | yes |")


def test_table_cells_do_not_wrap_and_the_sweep_legend_covers_no_curve():
    """Issue 23: notebook 07's tables wrapped every "value ± error" over 2-3 lines (and labels and
    exponents at their hyphens), and the noise figure's legend sat on the curves."""
    noisy = {Device(noise=NoiseModel("depolarizing", p)): s for p, s in ((1e-6, 0.0), (1e-2, 0.5))}
    rows = _rows(noisy, spread=1e-9)
    table = he.verdict_table(rows, ["js/m_ll", "nll"])
    cells = [c.strip() for line in table.splitlines()[2:] for c in line.strip("|").split("|")]
    assert "depolarizing\u00a0p=1e\u2060-\u206006" in cells and any("\u00a0±\u00a0" in c for c in cells)
    for cell in cells:
        assert " " not in cell and "-" not in cell.replace("\u2060-\u2060", ""), repr(cell)
    fig = sweep_figures.plot_sweep(rows, list(he.SAMPLE_METRICS) + ["recon_mean", "nll"], x="p", ncols=7)  # no spare panel
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes), "one legend, outside every panel"
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
