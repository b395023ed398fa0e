"""Sweeps of a QINN over emulated devices (qinn_lib.hardware.sweeps), the "as good as exact" verdict
and its thresholds, the notebook-07 configuration, and the device-cost arithmetic (qinn_lib.hardware.resources)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qinn_lib.events.scaling import AngleScaler
from qinn_lib.hardware import resources
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


def _rows(shifts: dict[Device, float], spread: float = 0.01, sem: float = 0.001) -> list[dict]:
    """Three seeds per device; every metric = 1 + shift + (seed - 1) * spread, event SEMs = sem."""
    records = []
    for device, shift in {Device(): 0.0, **shifts}.items():
        for s in (0, 1, 2):
            v = 1.0 + shift + (s - 1) * spread
            values = {m: v for m in he.SAMPLE_METRICS + he.EVENT_METRICS}
            values.update(recon_sem=sem, nll_sem=sem)
            records.append(_record(device, s, values))
    return he.summarise_sweep(records)


def test_verdict_compares_with_two_combined_uncertainties():
    rows = _rows({Device(shots=100): 0.05, Device(shots=1000): 0.02, Device(shots=10_000): -0.5})
    # sample metric: seed std 0.01 each -> tolerance 2 sqrt(2) 0.01 = 0.028
    bad = he.as_good_as_exact(rows, "N=1e2", "js/m_ll")
    assert bad["ok"] is False and bad["diff"] == pytest.approx(0.05)
    assert bad["tolerance"] == pytest.approx(2 * math.sqrt(2) * 0.01)
    assert he.as_good_as_exact(rows, "N=1e3", "js/m_ll")["ok"] is True
    assert he.as_good_as_exact(rows, "N=1e4", "js/m_ll")["ok"] is True, "better than exact is as good"
    assert he.as_good_as_exact(rows, "N=1e4", "nll")["ok"] is False, "a lower NLL estimate is a wrong NLL"
    # event metric: seed std and SEM combined, tolerance 2 sqrt(2 (0.01^2 + 0.001^2))
    ev = he.as_good_as_exact(rows, "N=1e3", "nll")
    assert ev["tolerance"] == pytest.approx(2 * math.sqrt(2 * (0.01**2 + 0.001**2)))
    with pytest.raises(ValueError, match="no metric"):
        he.as_good_as_exact(rows, "N=1e3", "js/pt_lp")
    with pytest.raises(ValueError, match="need rows"):
        he.as_good_as_exact(rows, "N=1e9", "nll")


def test_event_metrics_without_seed_spread_use_their_standard_error():
    records = []
    for device, v in ((Device(), 1.0), (Device(noise=NoiseModel("depolarizing", 1e-3)), 1.003)):
        for s in (0, 1):
            records.append(_record(device, s, {"nll": v, "nll_sem": 0.001, "js/m_ll": 0.1 + 0.01 * s}))
    rows = he.summarise_sweep(records)
    verdict = he.as_good_as_exact(rows, "depolarizing p=0.001", "nll")
    assert verdict["tolerance"] == pytest.approx(2 * math.sqrt(2) * 0.001)
    assert verdict["ok"] is False  # 0.003 > 0.00283


def test_thresholds_need_every_larger_shot_count_and_every_smaller_noise():
    shots = {Device(shots=100): 0.2, Device(shots=1000): 0.0, Device(shots=10_000): 0.2, Device(shots=100_000): 0.0}
    dep = {Device(noise=NoiseModel("depolarizing", p)): s for p, s in ((1e-4, 0.0), (1e-3, 0.0), (1e-2, 0.3))}
    amp = {Device(noise=NoiseModel("amplitude_damping", p)): 0.3 for p in (1e-4, 1e-3)}
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
    rows = he.summarise_sweep(records)
    assert {r["label"] for r in rows} == {"exact", "N=1e2", "amplitude_damping p=0.01"}
    fig = he.plot_sweep(rows, ["js/m_ll", "nll", "angle_error"], x="shots")
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
    assert "the NLL at none of the shot counts up to N = 10^2 (there, nll still differs)" in worse
    table = he.verdict_table(rows, ["js/m_ll", "nll"])
    lines = table.splitlines()
    assert lines[0].startswith("| device | js/m_ll | nll | distributions as exact?")
    assert lines[3].startswith("| N=1e2 | 1.500\u00a0±\u00a00.010 | 1.500\u00a0±\u00a00.010 | no | no | no |")
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
    fig = he.plot_sweep(rows, list(he.SAMPLE_METRICS) + ["recon_mean", "nll"], x="p", ncols=7)  # no spare panel
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes), "one legend, outside every panel"
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
