"""The field's measures on notebook 07 (qinn_lib.hardware.field_measures on the sweep,
qinn_lib.hardware.ibm.device_field on the calibrated devices): the sweep records them by the same
function as notebooks 03-06, the tables show them with their errors, and the statements say when
they change a threshold, a verdict or an ordering. Small synthetic rows; no Qiskit needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qinn_lib.evaluation import evaluate
from qinn_lib.hardware import field_measures as fm
from qinn_lib.hardware import sweeps
from qinn_lib.hardware.device import Device
from qinn_lib.hardware.ibm import device_field
from qinn_lib.hardware.noise import NoiseModel

pytestmark = pytest.mark.usefixtures("one_thread")

OURS = sweeps.GROUPS["distributions"]


def _record(device: Device, seed: int, values: dict) -> dict:
    info = {"label": device.label, "shots": device.shots, "channel": device.noise and device.noise.channel,
            "p": device.noise and device.noise.p}
    return {"label": device.label, "device": info, "config": {"device": info}, "config_fingerprint": "c",
            "data_fingerprint": "d", "seed": seed, "metrics": values}


def _rows(ours: dict[Device, float], field: dict[Device, float], spread: float = 0.002) -> list[dict]:
    """Three seeds per device: our distribution metrics = 1 + ours[d] + seed noise, the field's = 1 +
    field[d] + seed noise (errors 0.001; the noise drawn per device and seed, N(0, spread²)); event
    metrics equal to exact's, with the paired tests the sweep would record for them."""
    rng = np.random.default_rng(11)
    exact_events = {"recon_mean": rng.lognormal(-2.5, 0.5, 500), "nll": rng.normal(-3.0, 1.0, 500)}
    near = {"recon_mean": exact_events["recon_mean"] * np.exp(1e-3 * rng.standard_normal(500)),
            "nll": exact_events["nll"] + 1e-3 * rng.standard_normal(500)}
    tests = sweeps._event_tests(exact_events, [near])
    records = []
    for device in [Device(), *ours]:
        for s in (0, 1, 2):
            noise = spread * rng.standard_normal()
            values = {m: 1.0 + ours.get(device, 0.0) + noise for m in OURS}
            values.update({m: 1.0 + field.get(device, 0.0) + noise for m in fm.FIELD_COLUMNS})
            values.update({f"{m}_err": 0.001 for m in fm.FIELD_COLUMNS})
            values.update(recon_mean=1.0, recon_sem=0.001, nll=1.0, nll_sem=0.001, angle_error=0.0)
            if device != Device():
                values.update(tests)
            records.append(_record(device, s, values))
    return sweeps.summarise_sweep(records)


SHOTS = [Device(shots=n) for n in (100, 1000, 10_000)]
DEP = [Device(noise=NoiseModel("depolarizing", p)) for p in (1e-4, 1e-3, 1e-2)]
AMP = [Device(noise=NoiseModel("amplitude_damping", p)) for p in (1e-4, 1e-3, 1e-2)]


def test_the_statement_says_when_the_field_s_measures_move_a_threshold():
    ours = {SHOTS[0]: 0.5, SHOTS[1]: 0.0, SHOTS[2]: 0.0, **dict(zip(DEP, (0.0, 0.0, 0.5))),
            **dict(zip(AMP, (0.0, 0.5, 1.0)))}
    same = _rows(ours, ours)
    th = fm.field_thresholds(same)
    assert th["ours"] == th["field"] == {"shots": 1000, "amplitude_damping": 1e-4, "depolarizing": 1e-3}
    text = fm.field_statement(same)
    assert "the same as by JS, W1 and the MLP AUC (N = 1,000)" in text
    assert "stand by the field's measures as well" in text and "No field measure orders" in text

    stricter = dict(ours)
    stricter[SHOTS[1]] = 0.5  # the field's measures fail at N = 1000 where ours pass
    rows = _rows(ours, stricter)
    th = fm.field_thresholds(rows)
    assert th["ours"]["shots"] == 1000 and th["field"]["shots"] == 10_000
    assert th["by_metric"]["fpd"]["shots"] == 10_000
    text = fm.field_statement(rows)
    assert "from N = 10,000, not the same as by JS, W1 and the MLP AUC (N = 1,000): the field's measures are stricter" in text
    assert "change on the shots axis" in text

    lenient = dict(ours)
    lenient[DEP[2]] = 0.0  # ...and pass at p = 1e-2 where ours fail
    text = fm.field_statement(_rows(ours, lenient))
    assert "up to p = 0.01, not the same as by JS, W1 and the MLP AUC (p = 0.001): the field's measures are more lenient" in text


def test_an_ordering_against_js_is_reported_only_beyond_the_seed_spreads():
    ours = {**dict(zip(DEP, (0.0, 0.1, 0.5))), **dict(zip(AMP, (0.0, 0.1, 0.3)))}
    field = {**dict(zip(DEP, (0.0, 0.1, 0.3))), **dict(zip(AMP, (0.0, 0.1, 0.5)))}  # the channels swap at 1e-2
    swaps = fm.orderings(_rows(ours, field))
    assert {(s["metric"], s["better"], s["worse"], s["kind"]) for s in swaps} == {
        (m, "depolarizing p=0.01", "amplitude_damping p=0.01", "channels") for m in fm.FIELD_COLUMNS}
    assert "ranks depolarizing p=0.01 better than amplitude_damping p=0.01" in fm.field_statement(_rows(ours, field))
    within = {**field, AMP[2]: 0.51, DEP[2]: 0.49}  # a swap the seeds' noise cannot decide is no ordering
    ours_close = {**ours, AMP[2]: 0.5, DEP[2]: 0.51}
    assert fm.orderings(_rows(ours_close, within, spread=0.02)) == []


def test_the_table_shows_seed_spread_and_own_error_and_both_verdicts():
    ours = {SHOTS[0]: 0.5, SHOTS[1]: 0.0, SHOTS[2]: 0.0}
    rows = _rows(ours, {SHOTS[0]: 0.0})
    table = fm.field_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| device | FPD | KPD | boosted-tree AUC |")
    n100 = next(line for line in lines if line.startswith("| N=1e2"))
    assert n100.endswith("| no | yes |"), "ours fail at N = 100, the field's measures pass"
    assert "\u00a0±\u00a00.00" in n100 and "\u00a0[±0.001]" in n100, "seed mean ± seed std [± own error]"
    assert fm.field_cell({"fpd": {"mean": 0.5, "std": 0.01, "n": 3}, "fpd_err": {"mean": 3e-8, "std": 0.0, "n": 3}},
                         "fpd").endswith("[±3e-08]"), "a tiny error in exponent form, not 0.00000003"


def _toy_trained(n_events: int = 400):
    from types import SimpleNamespace

    import torch

    from qinn_lib.events.scaling import AngleScaler
    from qinn_lib.models.qinn.model import QINN
    from qinn_lib.training.config import QINNRunConfig

    rng = np.random.default_rng(0)
    physical = np.column_stack([rng.uniform(20, 80, n_events), rng.uniform(20, 80, n_events),
                                rng.uniform(-3, 3, n_events), rng.uniform(-2.4, 2.4, n_events),
                                rng.uniform(-2.4, 2.4, n_events)])
    scaler = AngleScaler.fit(physical)
    scaled = torch.as_tensor(scaler.transform(physical), dtype=torch.float32)
    data = SimpleNamespace(sample=SimpleNamespace(test=physical), scaler=scaler, test=scaled, train=scaled,
                           fingerprint="toy")
    return SimpleNamespace(cfg=QINNRunConfig(n_layers=1, isp_layers=1), model=QINN(n_layers=1, isp_layers=1, seed=1),
                           data=data)


def test_a_device_evaluation_records_the_field_measures_of_notebooks_03_to_06():
    trained = _toy_trained()
    truth = np.asarray(trained.data.sample.test)
    m = sweeps.evaluate_on_device(trained, Device(), seed=3, n_generate=300, n_test=20, bdt_events=150,
                                  classifier={"epochs": 1, "hidden": 8}, event_metrics=False)
    assert all(math.isfinite(m[k]) for k in sweeps.FIELD_METRICS) and m["seconds_field"] > 0
    from qinn_lib.hardware.device import DeviceQINN

    u = DeviceQINN(trained.model, Device(), seed=3 + sweeps.SHOT_SEED_OFFSET).generate_scaled(300, latent_seed=3)
    same = evaluate.field_metrics(truth, trained.data.scaler.inverse(u), seed=3, bdt_events=150)
    assert {k: m[k] for k in sweeps.FIELD_METRICS} == pytest.approx(same, rel=1e-9), "the same function, no copy"
    few = sweeps.field_metrics(truth, truth[:50], seed=1)
    assert all(math.isnan(few[k]) for k in sweeps.FIELD_METRICS), "fewer than 100 events: no distance"
    off = sweeps.evaluate_on_device(trained, Device(), seed=3, n_generate=200, n_test=20, field=False,
                                    classifier={"epochs": 1, "hidden": 8}, event_metrics=False)
    assert "fpd" not in off


# -- the calibrated devices ------------------------------------------------------------------------
def _sample(fpd: float, auc: float, js: float, err: float = 0.01) -> dict:
    return {"fpd": fpd, "fpd_err": err, "kpd": fpd / 2, "kpd_err": err, "auc_bdt": auc, "auc_bdt_err": err,
            "auc_bdt_derived": auc, "auc_bdt_derived_err": err, "js/m_ll": js, "angle_error_noise": 0.1,
            "angle_error_noise_se": 0.001}


def _summary(name: str, raw: dict, mitigated: dict) -> dict:
    return {"backend": name, "generation": {"n": 1000, "raw": raw, "mitigated": mitigated,
                                            "shots_only": _sample(0.2, 0.8, 0.03), "exact": _sample(0.19, 0.8, 0.025)}}


def _scan() -> list[dict]:
    """Exact plus a depolarising scan whose angle error grows with p; our metrics pass up to 1e-3,
    the field's measures only up to 1e-4."""
    ours = dict(zip(DEP, (0.0, 0.0, 0.5)))
    rows = _rows(ours, dict(zip(DEP, (0.0, 0.5, 0.5))))
    for r in rows:
        p = r["device"]["p"] or 1e-6
        r["metrics"]["angle_error"] = {"mean": 10 * p, "std": 0.0, "n": 3}
    return rows


def test_the_device_statement_reports_verdict_changes_and_orderings():
    a = _summary("fake_a", _sample(3.0, 0.99, 0.9), _sample(2.0, 0.98, 0.95))  # mitigation: FPD better, JS worse
    b = _summary("fake_b", _sample(5.0, 1.0, 0.8), _sample(5.0, 1.0, 0.8))  # worse by FPD, better by JS than a
    summaries = [a, b]
    assert device_field.has_field(summaries)
    table = device_field.field_table(summaries)
    assert table.count("| fake_a |") == 4 and "3.000\u00a0±\u00a00.010" in table
    rows = _scan()
    verdicts = device_field.field_verdicts(summaries, rows)
    # effective p = 0.1 / 10 = 1e-2: above both thresholds
    assert [(v["threshold"], v["field_threshold"], v["usable"], v["field_usable"]) for v in verdicts] == [
        (1e-3, 1e-4, False, False)] * 2
    text = device_field.field_statement(summaries, rows)
    assert "the verdict is the same: fake_a not usable; fake_b not usable" in text
    assert "FPD ranks fake_a mitigated better than fake_a as read" in text
    assert "FPD ranks fake_a better than fake_b" in text
    assert "worse than exact simulation (z-test on the two own errors, Holm over the devices and measures) by 4 of 4 measures" in text
    near = [_summary("fake_c", _sample(0.19, 0.8, 0.02), _sample(0.19, 0.8, 0.02))]
    for s in near:
        s["generation"]["raw"]["angle_error_noise"] = 1e-4  # effective p 1e-5: usable by both thresholds
    text = device_field.field_statement(near, rows)
    assert "by no measure decidedly worse than exact simulation" in text and "fake_c usable" in text
    small = _summary("fake_d", _sample(math.nan, math.nan, 0.9), _sample(math.nan, math.nan, 0.9))
    assert not device_field.has_field([small]), "the quick profile's 24 events have no field measures"


def test_readme_renders_the_field_measures_of_both_sections_and_older_records_without_them():
    from qinn_lib.notebook import readme

    base = {"seeds": [1, 2, 3], "statement": "From N = 1e5 ...", "shots_table": "| shots |", "noise_table": "| noise |",
            "resources_table": "| res |", "cost_table": "| cost |"}
    device = {"backends": ["fake_a"], "shots": 10, "n_generate": 100, "n_test": 10, "statement": "On fake_a ...",
              "results_table": "| dev |", "resources_table": "| dev res |"}
    text = readme.render_results({"07_hardware_realism": {**base, "field_statement": "By the field's measures ...",
                                                          "field_shots_table": "| f shots |",
                                                          "field_noise_table": "| f noise |"},
                                  "07_hardware_device": {**device, "field_table": "| f dev |",
                                                         "field_statement": "FPD on fake_a ..."}})
    for piece in ("By the field's measures ...", "| f shots |", "| f noise |", "| f dev |", "FPD on fake_a ..."):
        assert piece in text
    assert text.index("| noise |") < text.index("| f shots |") < text.index("| res |")
    older = readme.render_results({"07_hardware_realism": base, "07_hardware_device": device})
    assert "| shots |" in older and "field's measures" not in older


def test_field_table_cells_do_not_wrap():
    rows = _rows({DEP[0]: 0.0}, {DEP[0]: 0.0})
    cells = [c.strip() for line in fm.field_table(rows).splitlines()[2:] for c in line.strip("|").split("|")]
    assert any("[±0.001]" in c for c in cells)
    for cell in cells:
        assert " " not in cell, repr(cell)


def test_the_quick_profile_fits_the_trees_on_fewer_folds(monkeypatch):
    """The boosted-tree AUC's folds follow the run's profile (one helper, budget): 5 in the paper
    profile (its committed numbers), 2 in the quick one; evaluate_model and the sweep both ask it."""
    from qinn_lib.training.config import INNRunConfig, QINNRunConfig

    assert evaluate.bdt_folds_for(QINNRunConfig()) == 5 == evaluate.bdt_folds_for(INNRunConfig())
    assert evaluate.bdt_folds_for(QINNRunConfig(profile="quick")) == 2
    seen = []

    def fake_bdt_auc(truth, generated, **kw):
        seen.append(kw["n_folds"])
        return {"auc": 0.5, "auc_err": 0.01}

    monkeypatch.setattr(evaluate, "bdt_auc", fake_bdt_auc)
    rng = np.random.default_rng(0)
    t = np.abs(rng.normal(40, 10, (400, 5)))
    evaluate.field_metrics(t, t + 1, seed=1, bdt_folds=2)
    evaluate.field_metrics(t, t + 1, seed=1)
    assert seen == [2, 2, 5, 5]
