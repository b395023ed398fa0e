"""qinn_lib.experiments.search: the parameter budget, the search space (Table 1 is a point of it), the Pareto
front, and the study loop on a toy objective (Dask jobs, restart, stale trials, seeded sampler);
one real trial job on the quick data."""

from __future__ import annotations

import math

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
distributed = pytest.importorskip("distributed")

from optuna.trial import FixedTrial, TrialState  # noqa: E402

from qinn_lib.experiments import plans, search  # noqa: E402
from qinn_lib.models.qinn.model import QINN  # noqa: E402
from qinn_lib.notebook import plots  # noqa: E402
from qinn_lib.training.config import QINNRunConfig  # noqa: E402

BASE = QINNRunConfig(profile="quick", epochs=1, n_events=8000)
CALLS: list[int] = []


def toy_job(cfg_dict, env, seed, n_generate):
    """Stands in for a training: a cheap deterministic function of the trial's config."""
    CALLS.append(1)
    if cfg_dict.get("lambda_mmd_input", 1.0) > 9.0:
        return {"error": "toy divergence"}
    return {"recon_mean": (math.log10(cfg_dict.get("lambda_inv", 10.0)) - 1.5) ** 2 + 0.01,
            "js/m_ll": cfg_dict.get("lambda_mz", 0.375) ** 0.5, "extra": 2.0}


@pytest.fixture
def client():
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        yield c


@pytest.mark.parametrize("arch", [(12, 8, 3, 32), (12, 2, 2, 7), (24, 12, 4, 17), (3, 1, 1, 5)])
def test_parameter_count_matches_the_model(arch):
    n_layers, isp_layers, isp_nn_layers, hidden = arch
    model = QINN(5, n_layers, isp_layers, isp_nn_layers, hidden)
    assert search.qinn_parameter_count(5, *arch) == model.parameter_counts()["total"]


def test_table1_is_within_budget_at_the_widest_isp():
    assert search.qinn_parameter_count() == 2063 <= search.MAX_PARAMS
    h = search.max_isp_hidden(12, 8, 3)
    assert h == 32
    assert search.qinn_parameter_count(5, 12, 8, 3, h + 1) > search.MAX_PARAMS
    assert search.max_isp_hidden(12, 8, 3, max_params=100) == 0


def test_table1_params_round_trip_to_the_base_config():
    assert search.suggest_config(FixedTrial(search.table1_params(BASE)), BASE) == BASE


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("isp_layers", [2, 12])
def test_every_suggestion_fits_the_budget(depth, isp_layers):
    params = {**search.table1_params(BASE), "isp_nn_layers": depth, "isp_layers": isp_layers, "isp_width_fraction": 1.0}
    cfg = search.suggest_config(FixedTrial(params), BASE)
    assert QINN.from_config(cfg).parameter_counts()["total"] <= search.MAX_PARAMS
    wider = cfg.replace(isp_hidden=cfg.isp_hidden + 1)
    assert QINN.from_config(wider).parameter_counts()["total"] > search.MAX_PARAMS  # fraction 1 = the widest


def test_pareto_front():
    pts = [[1, 5], [2, 3], [3, 3], [4, 1], [2, 4], [np.nan, 0], [1, 5]]
    # [3,3] is dominated by [2,3]; [2,4] by [2,3]; the NaN row never counts; equal rows both stay
    assert search.pareto_front(pts) == [0, 6, 1, 3]
    assert search.pareto_front([[1.0, 1.0]]) == [0]
    with pytest.raises(ValueError, match="2-D"):
        search.pareto_front([1, 2])


def test_search_on_a_toy_objective_resumes_and_requeues(tmp_path, monkeypatch, client):
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    CALLS.clear()
    study = search.run_search(BASE, n_trials=3, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    records = search.trial_records(study)
    assert len(records) == 3 and len(CALLS) == 3
    assert records[0]["config"] == BASE.to_dict()  # the first trial is Table 1 (here: the base config)
    for r in records:
        assert r["params_total"] <= search.MAX_PARAMS
        assert QINNRunConfig.from_dict(r["config"]).fingerprint()
        if r["values"] is not None:
            assert r["extra"] == 2.0
    assert (tmp_path / "search" / "toy.journal").is_file()

    # a restart with the same budget runs nothing
    search.run_search(BASE, n_trials=3, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    assert len(CALLS) == 3

    # a trial left running by a dead session is re-run with the same parameters
    stale_study = search.open_study(search.study_path("toy"), "toy", 3)
    stale = stale_study.ask()
    search.suggest_config(stale, BASE)
    stale_params = dict(stale.params)
    study = search.run_search(BASE, n_trials=4, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    assert len(CALLS) == 4
    assert study.trials[stale.number].state == TrialState.FAIL
    rerun = search.trial_records(study)[-1]
    assert rerun["params"] == pytest.approx(stale_params)
    front = search.front_trials(search.trial_records(study))
    assert front and all(r["values"] is not None for r in front)


def test_failed_trials_count_and_the_sampler_is_seeded(tmp_path, monkeypatch, client):
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    params = []
    for name in ("a", "b"):
        study = search.run_search(BASE, n_trials=3, name=name, sampler_seed=11, client=client, n_parallel=1,
                                  job=toy_job, log=None)
        params.append([t.params for t in study.trials])
    assert params[0] == params[1]

    def diverging(cfg_dict, env, seed, n_generate):
        return {"error": "toy divergence"}

    study = search.run_search(BASE, n_trials=2, name="fails", client=client, job=diverging, log=None)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(r["error"] == "toy divergence" for r in search.trial_records(study))
    assert search.front_trials(search.trial_records(study)) == []


def test_a_shipped_study_is_reused_instead_of_searching_again(tmp_path, monkeypatch, client):
    """Notebook 06 in a fresh clone: the search's journal ships with the package, so Run All
    reads its trials instead of training them; QINN_MODELS=train ignores it; a damaged copy is a
    clear error; and the availability check counts the shipped trials."""
    from qinn_lib.experiments import publish, store
    from qinn_lib.training.config import DiagnosisConfig

    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(tmp_path / "shipped"))
    CALLS.clear()
    search.run_search(BASE, n_trials=2, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    with pytest.raises(store.ShippedModelError, match="no search journal"):
        publish.publish_search("absent")
    assert publish.publish_search("toy") == "search/toy.journal"
    assert store.find_search("toy")["finished"] == 2 and store.verify() == []

    search.study_path("toy").unlink()  # a fresh clone: nothing under build/search
    assert search.finished_trials("toy") == 2 and search.finished_trials("toy", models="train") == 0
    study = search.run_search(BASE, n_trials=2, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    assert len(CALLS) == 2 and len(search.trial_records(study)) == 2  # read, not searched again

    search.study_path("toy").unlink()
    monkeypatch.setenv("QINN_MODELS", "train")
    search.run_search(BASE, n_trials=1, name="toy", sampler_seed=3, client=client, job=toy_job, log=None)
    assert len(CALLS) == 3  # shipped studies ignored: searched afresh
    monkeypatch.delenv("QINN_MODELS")

    search.study_path("toy").unlink()
    (tmp_path / "shipped" / "search" / "toy.journal").write_text("damaged\n")
    assert any("sha256 differs" in p for p in store.verify())
    with pytest.raises(store.ShippedModelError, match="does not match its sha256"):
        search.run_search(BASE, n_trials=2, name="toy", client=client, job=toy_job, log=None)

    # notebook 06's own check: its paper search is not shipped here, so Run All would have to search
    _, name, n = plans.notebook_search(DiagnosisConfig(profile="paper"))
    assert plans.missing_work(DiagnosisConfig(profile="paper")) == [f"search (0 of {n} trials finished)"]
    assert name.startswith("qinn2k-paper-") and plans.missing_work(BASE) == []


def test_plot_front(tmp_path, monkeypatch, client):
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    study = search.run_search(BASE, n_trials=3, name="plot", client=client, job=toy_job, log=None)
    refs = {"INN 2k": {"js/m_ll": {"mean": 0.05, "std": 0.01}}, "INN 6k": {"js/m_ll": {"mean": 0.02, "std": float("nan")}}}
    base = {"recon_mean": {"mean": 0.08, "std": 0.01}, "js/m_ll": {"mean": 0.6, "std": 0.1}}
    fig = plots.plot_front(search.trial_records(study), references=refs, baseline=base)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("Pareto" in s for s in labels) and "INN 2k (exact inverse)" in labels
    fig.canvas.draw()  # the log axes are labelled even when they span under a decade
    assert len([t for t in fig.axes[0].get_yticklabels() if t.get_text()]) >= 2
    assert any(t.get_text().endswith("%") for t in fig.axes[0].get_xticklabels())
    fig.savefig(tmp_path / "front.png")


def test_trial_job_trains_and_evaluates_a_real_qinn(tmp_path, monkeypatch):
    from qinn_lib.experiments import cluster

    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    cfg = BASE.replace(n_layers=2, isp_layers=2)
    out = search._trial_job(cfg.to_dict(), cluster.submitter_env(), 5, 2000)
    assert set(search.OBJECTIVES) <= set(out)
    assert all(math.isfinite(out[k]) for k in (*search.OBJECTIVES, "fold_fraction", "nll"))
    assert out["params_total"] == QINN.from_config(cfg).parameter_counts()["total"]
    assert 0.0 <= out["js/m_ll"] <= 1.0


def test_a_search_of_up_to_ten_trials_is_a_random_screen():
    """The module docstring (and notebook 06) say TPE draws its first 10 trials at random."""
    import inspect

    import optuna

    assert inspect.signature(optuna.samplers.TPESampler).parameters["n_startup_trials"].default == 10
    assert "n_startup_trials" not in inspect.getsource(search.open_study), "the default is the one described"
