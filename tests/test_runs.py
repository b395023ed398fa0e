"""End to end on a tiny sample: train the QINN through the notebooks' entry point, reload the
finished run, generate events, and the helpers notebook 03 uses (notebook 02's panels: test_widgets.py)."""

import numpy as np
import pytest
import torch

from qinn_lib.evaluation import ensemble_tables, evaluate
from qinn_lib.experiments import ensembles, one_model, plans
from qinn_lib.experiments.bench import ReferenceQINN
from qinn_lib.models.qinn.model import QINN
from qinn_lib.notebook import plots
from qinn_lib.training.budget import effective_config
from qinn_lib.training.config import QINNRunConfig


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_effective_config_caps_only_in_quick():
    paper = QINNRunConfig()
    assert effective_config(paper) == paper
    quick = effective_config(QINNRunConfig(profile="quick"))
    assert (quick.epochs, quick.n_events) == (2, 8_000)
    assert quick.n_layers == paper.n_layers


def test_train_reload_and_generate(isolated_dirs):
    cfg = QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64)
    first = one_model.train_qinn(cfg, progress=False)
    assert first.result.epochs_run == 1 and first.run_dir.parent == isolated_dirs / "runs"
    again = one_model.train_qinn(cfg, progress=False)
    assert again.result.epochs_run == 0, "a finished run must be reloaded, not retrained"
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    gen = again.generate(500, seed=3)
    assert gen.shape[1] == 5 and len(gen) <= 500 and np.isfinite(gen).all()
    assert np.array_equal(gen, again.generate(500, seed=3)), "same seed, same events"
    dev = evaluate.reconstruction_deviation(again.data.test, again.reconstruct(again.data.test))
    assert 0.0 <= dev["median"] <= dev["p95"]


def test_reconstruction_deviation_definition():
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    x_rec = np.array([[3.0, 4.5], [1.0, 0.1]])
    dev = evaluate.reconstruction_deviation(x, x_rec)
    assert dev["mean"] == pytest.approx((0.5 / 5.0 + 0.1 / 1.0) / 2)
    assert dev["per_feature_mae"] == pytest.approx([0.0, 0.3])
    with pytest.raises(ValueError, match="same shape"):
        evaluate.reconstruction_deviation(x, x_rec[:, :1])


def test_reference_step_model_matches_fast_path():
    """The benchmark's PennyLane step computes the same function as the fast path."""
    torch.manual_seed(0)
    model = QINN(5, 3, 2, seed=4, dtype=torch.float64)
    ref = ReferenceQINN(model)
    x = torch.rand(6, 5, dtype=torch.float64) * np.pi
    z_fast, ld_fast = model.forward_and_logdet(x)
    z_ref, ld_ref = ref.forward_and_logdet(x)
    assert torch.allclose(z_fast, z_ref, atol=1e-10) and torch.allclose(ld_fast, ld_ref, atol=1e-8)
    assert torch.allclose(model.inverse(z_fast), ref.inverse(z_fast), atol=1e-8)


def test_hist_with_ratio_counts_events_outside_the_range():
    ref = np.random.default_rng(0).normal(size=10_000)
    inside_only = ref[np.abs(ref) < 1]
    fig, (ax, rax) = plots.hist_with_ratio(ref, {"model": np.concatenate([inside_only, np.full(len(ref) - len(inside_only), 50.0)])},
                                            bins=10, range=(-1, 1))
    ratio = rax.patches or rax.lines
    assert ratio  # drawn
    # Same counts inside the range and the same total, so the ratio is 1 everywhere.
    from qinn_lib.notebook.plots import _density
    edges = np.linspace(-1, 1, 11)
    assert np.allclose(_density(ref, edges), _density(np.concatenate([inside_only, np.full(len(ref) - len(inside_only), 50.0)]), edges))
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_seeds():
    assert ensembles.seeds(7, 3) == [7, 8, 9]
    with pytest.raises(ValueError, match="n_seeds"):
        ensembles.seeds(7, 0)


def test_inn_ensemble_trains_and_evaluates(isolated_dirs, monkeypatch):
    from qinn_lib.experiments import jobs
    from qinn_lib.training.config import INNRunConfig

    # one worker: the two seeds stay one stack (with more workers jobs.balance splits it)
    monkeypatch.setattr(jobs, "_worker_count", lambda client: 1)

    cfgs = [INNRunConfig(profile="quick", n_events=1_000, epochs=1, size="2k", batch_size=64, seed=s)
            for s in ensembles.seeds(3, 2)]
    messages = []
    ens = ensembles.train_ensemble("INN 2k", cfgs, progress=False, log=messages.append)
    assert [r["seed"] for r in ens.records] == [3, 4]
    # the two unfinished seeds were trained together (INNStack), then reloaded as ordinary runs
    assert messages[0].startswith(f"training 2 run(s) as 1 Dask job(s): inn-2k-{cfgs[0].fingerprint()[:8]}-seeds-3-4; "
                                  "projected ")
    assert [run.history[-1]["lockstep_members"] for run in ens.runs] == [2, 2]
    assert all(run.result.epochs_run == 0 for run in ens.runs)
    # each seed is charged its share of the stack's wall time
    assert ens.records[0]["metrics"]["train_seconds"] == pytest.approx(
        sum(h["seconds"] for h in ens.runs[0].history) / 2)
    assert len({r["data_fingerprint"] for r in ens.records}) == 1
    m = ens.records[0]["metrics"]
    assert 0.0 <= m["auc"] <= 1.0 and np.isfinite(m["nll"]) and m["params_total"] == 1920
    assert m["recon_mean"] < 1e-3, "the spline INN inverts exactly (up to float32 rounding)"
    assert set(ens.generated[0]) >= {"m_ll", "delta_r"}
    rows = ensemble_tables.summarise(ens.records)
    assert rows[0]["n_seeds"] == 2


def test_comparison_configs_are_notebook_04s_mse_runs_and_the_inn_sizes():
    from qinn_lib.training.config import ComparisonConfig, INNRunConfig

    cfgs = plans.comparison_configs(ComparisonConfig(seed=7, n_seeds=2))
    assert list(cfgs) == ["QINN", "INN 2k", "INN 6k", "INN 16k"]
    assert [c.seed for c in cfgs["INN 16k"]] == [7, 8]
    # notebook 04 builds its MSE runs like this; the fingerprints must agree so 05 reloads them
    nb04 = effective_config(QINNRunConfig(seed=7, lambda_mz=0.375, invertibility="mse"))
    assert cfgs["QINN"][0].fingerprint() == nb04.fingerprint()
    assert cfgs["INN 6k"][1] == INNRunConfig(size="6k", seed=8)
    quick = plans.comparison_configs(ComparisonConfig(profile="quick"))
    assert len(quick["QINN"]) == 1 and quick["INN 2k"][0].epochs == 2


def test_runs_cli_rejects_unknown_models_and_parameters(capsys):
    with pytest.raises(SystemExit):
        plans.main(["32k"])
    assert "unknown model(s) ['32k']" in capsys.readouterr().err
    # an unknown parameter: "did you mean", one line, exit 2 (was a bare TypeError)
    assert plans.main(["16k", "-p", "n_seed", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m qinn_lib.runs: error: unknown parameter in -p for ComparisonConfig: "
                          "'n_seed' (did you mean 'n_seeds'?)") and err.count("\n") == 1
    # values parsed by type: 1:30 is no integer (YAML made it 90)
    assert plans.main(["16k", "-p", "epochs", "1:30"]) == 2
    assert "-p: ComparisonConfig.epochs must be an integer, got '1:30'" in capsys.readouterr().err


def test_runs_cli_runs_folder_that_is_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("not a folder")
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "data"))
    assert plans.main(["2k", "-p", "profile", "quick", "-p", "n_events", "1000", "-p", "epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m qinn_lib.runs: error: the runs folder {tmp_path / 'runs'} is a file, not a folder; "
                   "set QINN_RUNS_DIR to a writable folder\n")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir()), "no events were generated"


def test_runs_cli_checkpoint_error_is_one_line(isolated_dirs, capsys):
    quick = ["-p", "profile", "quick", "-p", "n_events", "1000", "-p", "epochs", "1", "--no-progress"]
    assert plans.main(["2k", *quick]) == 0
    capsys.readouterr()
    (ckpt,) = (isolated_dirs / "runs").glob("inn-*/checkpoint.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    assert plans.main(["2k", *quick]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{ckpt} does not match the sha256" in err and "Traceback" not in err
    assert plans.main(["2k", *quick, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_runs_cli_trains_a_quick_ensemble(isolated_dirs, capsys):
    quick = ["-p", "profile", "quick", "-p", "n_events", "1000", "-p", "epochs", "1"]
    assert plans.main(["2k", "--status", *quick]) == 0
    assert "[INN 2k] seed 1234: 0/1 epochs" in capsys.readouterr().out
    assert plans.main(["2k", *quick, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[INN 2k] 1 run(s) ready" in out and str(isolated_dirs / "runs") in out
    assert plans.main(["2k", "--status", *quick]) == 0
    assert "[INN 2k] seed 1234: 1/1 epochs" in capsys.readouterr().out


def test_runs_cli_ctrl_c_is_one_line_and_130(isolated_dirs, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plans, "train_ensembles", interrupted)
    assert plans.main(["2k", "-p", "profile", "quick", "-p", "n_events", "1000"]) == 130
    assert capsys.readouterr().err == ("python -m qinn_lib.runs: interrupted; every finished epoch is in its run's "
                                       "checkpoint: run the same command again to resume\n")
