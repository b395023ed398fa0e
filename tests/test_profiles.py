"""How a notebook learns its profile and where it writes: the runner decides through the
environment; run by hand, a notebook writes under build/interactive and uses the paper profile
only when no training is needed."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from qinn_lib import paths, settings
from qinn_lib.evaluation import results as results_store
from qinn_lib.experiments import ablations, one_model, plans
from qinn_lib.notebook import plots, profiles
from qinn_lib.training.config import (
    CircuitDemoConfig,
    ComparisonConfig,
    DataConfig,
    DiagnosisConfig,
    FidelityVsMSEConfig,
    HardwareRealismConfig,
    QINNRunConfig,
)


def namespace(cls, **changes):
    """What a notebook's globals() hold after its parameters cell: the defaults, minus profile."""
    values = {k: v for k, v in cls().to_dict().items() if k != "profile"}
    values.update(changes)
    return values


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    for name, sub in (("QINN_RUNS_DIR", "runs"), ("QINN_SHIPPED_DIR", "shipped"), ("QINN_DATA_DIR", "data")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    return tmp_path


def test_context_from_the_environment(monkeypatch, tmp_path):
    ctx = settings.context()
    assert ctx.interactive and ctx.models == "shipped" and not ctx.runner
    assert ctx.output_dir == paths.repo_root() / "build" / "interactive"
    monkeypatch.setenv("QINN_PROFILE", "quick")
    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("QINN_MODELS", "train")
    ctx = settings.context()
    assert (ctx.profile, ctx.output_dir, ctx.models) == ("quick", tmp_path / "mine", "train")
    monkeypatch.setenv("QINN_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"QINN_PROFILE='fast': must be one of \['quick', 'paper'\]"):
        settings.context()


def test_runner_environment_points_at_the_publish_folders():
    env = settings.runner_environment("paper")
    assert env["QINN_PROFILE"] == "paper" and env["QINN_OUTPUT_DIR"] == str(paths.repo_root() / "figures")
    assert settings.runner_environment("quick", models="train")["QINN_MODELS"] == "train"
    with pytest.raises(ValueError, match="models"):
        settings.runner_environment("paper", models="maybe")


def test_runner_profile_wins(monkeypatch, isolated):
    monkeypatch.setenv("QINN_PROFILE", "quick")
    monkeypatch.setenv("QINN_RUNNER", "reports")
    lines = []
    cfg = profiles.notebook_config(QINNRunConfig, namespace(QINNRunConfig), log=lines.append)
    assert cfg.profile == "quick" and cfg.epochs == 200, "the profile caps counts later (qinn_lib.training.budget.effective_config)"
    assert lines[0].startswith("[qinn] profile quick (set by python -m qinn_lib.reports)")


def test_interactive_without_trained_models_falls_back_to_quick(isolated):
    """Run All of a committed notebook by hand must not start hours of training unasked."""
    lines = []
    cfg = profiles.notebook_config(ComparisonConfig, namespace(ComparisonConfig), log=lines.append)
    assert cfg.profile == "quick"
    assert "interactive default" in lines[0] and "build/interactive" in lines[0]
    assert "24 of the 24 paper-profile models" in lines[1] and "QINN_PROFILE=paper" in lines[1]


def test_interactive_with_every_model_available_is_the_paper_profile(isolated, monkeypatch):
    asked = []
    monkeypatch.setattr(one_model, "availability", lambda cfg, models="shipped": asked.append(cfg) or "shipped")
    lines = []
    cfg = profiles.notebook_config(FidelityVsMSEConfig, namespace(FidelityVsMSEConfig), log=lines.append)
    assert cfg.profile == "paper" and len(lines) == 2
    assert len(asked) == 12 and {c.invertibility for c in asked} == {"mse", "fidelity"}, "each run asked once"
    assert lines[1] == "[qinn] models: 12 of 12 shipped with the package (loaded, not trained) (qinn (fidelity), qinn (mse))"


def test_interactive_with_own_parameters_trains_in_the_paper_profile(isolated):
    lines = []
    cfg = profiles.notebook_config(QINNRunConfig, namespace(QINNRunConfig, epochs=3, mmd_widths=[0.1, 1.0]),
                                   log=lines.append)
    assert cfg.profile == "paper" and cfg.epochs == 3
    assert "not trained yet for these parameters: 1 of the 1 paper-profile models" in lines[1]


def test_notebooks_without_models_use_the_paper_profile(isolated):
    assert profiles.notebook_config(DataConfig, namespace(DataConfig), log=lambda *a: None).profile == "paper"
    assert profiles.notebook_config(CircuitDemoConfig, namespace(CircuitDemoConfig), log=lambda *a: None).profile == "paper"


def test_missing_parameter_is_named():
    with pytest.raises(ValueError, match=r"lacks \['n_events'\]"):
        profiles.notebook_config(DataConfig, {"seed": 1, "lhe_file": ""})


def test_notebook_outputs_go_to_the_output_folder_not_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path / "out"))
    fig = plt.figure()
    written = plots.save(fig, "zz_test")
    plt.close(fig)
    assert [p.parent for p in written] == [tmp_path / "out"] * 2
    results_store.record("zz_test", {"x": 1})
    assert (tmp_path / "out" / "results.json").is_file()
    assert results_store.results_path("paper") == paths.repo_root() / "figures" / "results.json"


def test_notebook_runs_and_lhe_file_reach_every_run():
    q = QINNRunConfig(lhe_file="z.lhe")
    assert plans.notebook_runs(q) == [q]
    fid = plans.notebook_runs(FidelityVsMSEConfig(lhe_file="z.lhe", n_seeds=2))
    assert len(fid) == 4 and {c.lhe_file for c in fid} == {"z.lhe"}
    cmp_ = plans.notebook_runs(ComparisonConfig(lhe_file="z.lhe", profile="quick"))
    assert len(cmp_) == 4 and {c.lhe_file for c in cmp_} == {"z.lhe"} and {c.epochs for c in cmp_} == {2}
    assert plans.notebook_runs(DataConfig()) == []
    # an LHE run is another run; the Pythia fingerprint did not change when lhe_file arrived
    assert q.fingerprint() != QINNRunConfig().fingerprint()
    committed = results_store.load_results("paper").get("03_isp_training", {}).get("config_fingerprint")
    if committed:  # written before lhe_file existed; run folders and shipped models are found by it
        assert QINNRunConfig().fingerprint() == committed


def test_notebook_06_plans_its_ablations_and_reuploading_runs():
    """reports --profile paper pretrains notebook 06's runs with the others' in one Dask batch."""
    plan = plans.planned_runs(DiagnosisConfig(profile="quick", lhe_file="z.lhe", max_uploads=3))
    labels = list(plan)
    assert labels[0] == ablations.BASELINE and labels[-3:] == ["1 upload", "2 uploads", "3 uploads"]
    flat = [c for cs in plan.values() for c in cs]
    assert {c.lhe_file for c in flat} == {"z.lhe"} and {c.epochs for c in flat} == {2} and {c.seed for c in flat} == {1234}
    assert {c.kind for c in plan["2 uploads"]} == {"reuploading"} and plan["2 uploads"][0].uploads == 2
    # the baseline is notebook 04/05's MSE QINN: reloaded, not trained again
    assert plan[ablations.BASELINE] == plans.comparison_configs(ComparisonConfig(profile="quick", lhe_file="z.lhe"))["QINN"]
    paper = plans.planned_runs(DiagnosisConfig(ablation_priority=1, max_uploads=2))
    assert len(paper) == 1 + 4 + 2 and all(len(cs) == 3 and cs[0].epochs == 200 for cs in paper.values())
    assert plans.notebook_runs(DiagnosisConfig(profile="quick", max_uploads=3)) == [c.replace(lhe_file="") for c in flat]


def test_notebook_07_plans_notebook_03s_qinn():
    assert plans.notebook_runs(HardwareRealismConfig(profile="quick")) == plans.notebook_runs(QINNRunConfig(profile="quick"))
    (qinn,) = plans.notebook_runs(HardwareRealismConfig(seed=7, lhe_file="z.lhe"))
    assert (qinn.seed, qinn.lhe_file, qinn.epochs, qinn.kind) == (7, "z.lhe", 200, "qinn")


def test_interactive_notebooks_06_and_07_check_their_models(isolated, monkeypatch):
    lines = []
    cfg = profiles.notebook_config(DiagnosisConfig, namespace(DiagnosisConfig), log=lines.append)
    assert cfg.profile == "quick"
    n = len(plans.notebook_runs(DiagnosisConfig()))
    assert f"{n} of the {n} paper-profile models" in lines[1] and "reuploading (2 uploads)" in lines[1]
    assert "search (0 of 8 trials finished)" in lines[1]
    # every run trained but the search not: Run All still must not start it (hours)
    monkeypatch.setattr(one_model, "availability", lambda c, models="shipped": "trained")
    lines = []
    assert profiles.notebook_config(DiagnosisConfig, namespace(DiagnosisConfig), log=lines.append).profile == "quick"
    assert "paper-profile models" not in lines[1] and "build/: search (0 of 8 trials finished)" in lines[1]
    monkeypatch.setattr(plans, "missing_work", lambda c, models="shipped": [])
    assert profiles.notebook_config(DiagnosisConfig, namespace(DiagnosisConfig), log=lambda *a: None).profile == "paper"
    asked = []
    monkeypatch.setattr(one_model, "availability", lambda c, models="shipped": asked.append(c) or "trained")
    lines = []
    cfg = profiles.notebook_config(HardwareRealismConfig, namespace(HardwareRealismConfig), log=lines.append)
    assert cfg.profile == "paper" and len(lines) == 2 and asked == plans.notebook_runs(QINNRunConfig())
    assert lines[1].startswith("[qinn] models: 1 of 1 reloaded from a finished run under build/runs (trained earlier)")


def test_the_report_says_whether_its_models_were_trained_or_reloaded(isolated, monkeypatch):
    """Regression: a report trained by the runner said "models: shipped"."""
    cfg = QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64)
    lines = []
    monkeypatch.setenv("QINN_PROFILE", "quick")
    ns = namespace(QINNRunConfig, n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64)
    profiles.notebook_config(QINNRunConfig, ns, log=lines.append)
    assert lines[-1] == "[qinn] models: 1 of 1 to be trained by this notebook (checkpointed under build/runs) (qinn (mse))"
    one_model.train_qinn(cfg, progress=False)
    monkeypatch.setenv(settings.TRAINED_BY_RUNNER_ENV, one_model.run_key(cfg))
    profiles.notebook_config(QINNRunConfig, ns, log=lines.append)
    assert lines[-1] == "[qinn] models: 1 of 1 trained just now by python -m qinn_lib.reports for this report (qinn (mse))"
    monkeypatch.delenv(settings.TRAINED_BY_RUNNER_ENV)
    monkeypatch.setenv("QINN_MODELS", "train")
    profiles.notebook_config(QINNRunConfig, ns, log=lines.append)
    assert lines[-1].startswith("[qinn] models: 1 of 1 reloaded from a finished run under build/runs (trained earlier)")
    assert lines[-1].endswith("(QINN_MODELS=train: shipped models are not used)")
    assert "models:" not in lines[0], "the profile line no longer shows the policy as if it were the source"


def test_kernel_warnings_name_no_machine_path():
    fmt = profiles.kernel_warning_format
    assert fmt("folds", UserWarning, "/tmp/ipykernel_15249/3904066155.py", 9) == "UserWarning: folds\n"
    assert fmt("x", FutureWarning, str(paths.repo_root() / "qinn_lib" / "a.py"), 3) == "qinn_lib/a.py:3: FutureWarning: x\n"
    assert fmt("y", DeprecationWarning, "/opt/env/lib/python3.11/site-packages/torch/nn.py", 4) == \
        "torch/nn.py:4: DeprecationWarning: y\n"
