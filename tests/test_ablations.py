"""qinn_lib.experiments.ablations: the configs of issue 11's ablations (one change each, same seeds and data),
their verdicts against the baseline, and one small end-to-end pass through the Dask runner."""

from __future__ import annotations

import pytest

from qinn_lib.evaluation import ensemble_tables
from qinn_lib.experiments import ablations, plans
from qinn_lib.training.budget import effective_config
from qinn_lib.training.config import ComparisonConfig, QINNRunConfig

BASE = QINNRunConfig(profile="quick", epochs=2, n_events=8000)

EXPECTED_CHANGES = {
    "MSE sum": {"mse_reduction": "sum"},
    "NLL only": {"lambda_inv": 0.0, "lambda_mmd_input": 0.0, "lambda_mmd_latent": 0.0, "lambda_mz": 0.0},
    "NLL + inv (no MMD)": {"lambda_mmd_input": 0.0, "lambda_mmd_latent": 0.0, "lambda_mz": 0.0},
    "no latent MMD": {"lambda_mmd_latent": 0.0},
    "no input MMD": {"lambda_mmd_input": 0.0},
    "MMD per-observable": {"mmd_mode": "per_observable"},
    "λ_MZ × 0": {"lambda_mz": 0.0},
    "λ_MZ × 10": {"lambda_mz": 3.75},
    "ISP hidden 64": {"isp_hidden": 64},
    "24 layers": {"n_layers": 24},
}


def changed_fields(cfg, base):
    a, b = cfg.to_dict(), base.to_dict()
    return {k: a.get(k) for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "seed"}


def test_every_ablation_changes_exactly_its_fields():
    cfgs = ablations.ablation_configs(BASE, [7, 8, 9])
    assert list(cfgs) == [ablations.BASELINE, *EXPECTED_CHANGES]
    for label, runs_ in cfgs.items():
        assert [c.seed for c in runs_] == [7, 8, 9]
        expected = {} if label == ablations.BASELINE else EXPECTED_CHANGES[label]
        for c in runs_:
            assert changed_fields(c, BASE) == pytest.approx(expected), label


def test_baseline_runs_are_notebook_05s_qinn_runs():
    """Same settings, same fingerprints: the baseline reloads notebook 04/05's runs."""
    nb05 = plans.comparison_configs(ComparisonConfig(profile="quick", n_seeds=1))["QINN"]
    base = effective_config(QINNRunConfig(profile="quick"))
    cfgs = ablations.ablation_configs(base, [c.seed for c in nb05])
    assert [c.fingerprint() for c in cfgs[ablations.BASELINE]] == [c.fingerprint() for c in nb05]


def test_keep_by_priority_or_key_and_labels_follow_the_base():
    assert list(ablations.ablation_configs(BASE, [1], keep=1)) == [
        ablations.BASELINE, "MSE sum", "NLL only", "NLL + inv (no MMD)", "λ_MZ × 0"]
    assert list(ablations.ablation_configs(BASE, [1], keep=["n_layers"])) == [ablations.BASELINE, "24 layers"]
    with pytest.raises(ValueError, match="unknown ablation"):
        ablations.ablation_configs(BASE, [1], keep=["depth"])
    summed = ablations.ablation_configs(BASE.replace(mse_reduction="sum", lambda_mz=0.0), [1])
    assert "MSE mean" in summed
    # with lambda_MZ = 0 the x0 and x10 ablations change nothing and are left out
    assert "λ_MZ × 0" not in summed and "λ_MZ × 10" not in summed
    with pytest.raises(ValueError, match="no seeds"):
        ablations.ablation_configs(BASE, [])


def fake_rows():
    def rec(label, seed, nll, recon):
        return {"label": label, "config": {"x": label}, "config_fingerprint": "c", "data_fingerprint": "d",
                "seed": seed, "metrics": {"nll": nll, "recon_mean": recon}}

    recs = [rec(ablations.BASELINE, s, n, r) for s, n, r in ((1, 13.0, 0.08), (2, 13.1, 0.07), (3, 12.9, 0.09))]
    recs += [rec("better", s, n, r) for s, n, r in ((1, 12.0, 0.080), (2, 12.1, 0.075), (3, 11.9, 0.085))]
    recs += [rec("single", 1, 20.0, 0.5)]
    return ensemble_tables.summarise(recs)


def test_verdicts_are_tests_with_holm_over_the_table():
    rows = fake_rows()
    v = ablations.ablation_verdicts(rows, metrics=("nll", "recon_mean", "auc"))
    better = v["better"]["nll"]
    assert better["table_word"] == "better" and better["found"] == "b lower" and better["p_holm"] < 0.05
    assert better["family"] == ablations.SCREEN_FAMILY and better["family_size"] == 2  # single: one seed, no test
    assert better["effect"] == pytest.approx(-1.0) and better["effect_kind"] == "difference b-a"
    assert v["better"]["recon_mean"]["table_word"] == "undecided" and v["better"]["recon_mean"]["transform"] == "log"
    assert v["single"]["nll"]["table_word"] == "undecided" and v["single"]["nll"]["word"] == "undecided (1 seed)"
    assert "auc" not in v["better"]  # metrics a row lacks are skipped
    table = ablations.format_verdicts(v, rows, metrics=("nll", "recon_mean"))
    assert "| better | 12 (better, Δ -1, p_H " in table and "(undecided, ×" in table and "| single | 20 (1 seed)" in table
    with pytest.raises(ValueError, match="no row labelled"):
        ablations.ablation_verdicts(rows[1:])


def test_train_ablations_end_to_end(tmp_path, monkeypatch):
    """Two tiny ablations (1 epoch, small circuits) through runs.train_ensembles on an in-process
    Dask cluster; every record carries the diagnostics, consistent with evaluate_model."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    base = QINNRunConfig(profile="quick", epochs=1, n_events=8000, n_layers=2, isp_layers=2)
    cfgs = ablations.ablation_configs(base, [3], keep=["nll_only"])
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        ens = ablations.train_ablations(cfgs, client=client, log=lambda m: None, normalisation_samples=2000)
    assert list(ens) == [ablations.BASELINE, "NLL only"]
    for e in ens.values():
        m = e.records[0]["metrics"]
        assert 0.0 <= m["fold_fraction"] <= 0.5 and m["density_normalisation"] > 0
        # the headline reading is the recon metric of notebooks 03-05, on the same round trip
        assert m["reading/scaled_vector_mean"] == pytest.approx(m["recon_mean"], rel=1e-5)
    rows = ensemble_tables.summarise([r for e in ens.values() for r in e.records])
    v = ablations.ablation_verdicts(rows)
    assert set(v) == {"NLL only"} and v["NLL only"]["fold_fraction"]["word"] == "undecided (1 seed)"
