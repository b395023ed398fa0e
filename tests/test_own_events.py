"""A user's own MadGraph-like events end to end: one parameter (lhe_file) and the sample's
fingerprint reaches every checkpoint and results record, as the Pythia sample's does."""

import json

import lhe_sample  # tests/ is on sys.path under pytest
import nbformat
import pytest
import torch

from qinn_lib import paths
from qinn_lib.events import cache
from qinn_lib.events import sample as sample_lib
from qinn_lib.experiments import ensembles, one_model
from qinn_lib.notebook import runner
from qinn_lib.training.config import ConfigError, QINNRunConfig


@pytest.fixture
def own_events(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(tmp_path / "shipped"))
    return lhe_sample.write(tmp_path / "zj.lhe.gz", 2_500, seed=3)


def test_load_sample_reads_and_caches_the_lhe_file(own_events, tmp_path):
    n = cache.lhe_events_available(own_events)
    assert 2_000 < n <= 2_500, "the events that pass the cuts"
    full = cache.load_sample(n, 1234, lhe_file=own_events)
    assert n == full.n_events == full.meta["n_used"] == full.meta["n_available"], "all of them"
    assert full.meta["generator"] == "LHE file" and full.meta["loaded_from_cache"], "parsed once, by the count"
    again = cache.load_sample(n, 1234, lhe_file=own_events)
    assert again.meta["loaded_from_cache"] and again.fingerprint == full.fingerprint
    part = cache.load_sample(1_000, 1234, lhe_file=str(own_events))
    assert part.n_events == 1_000 and part.fingerprint != full.fingerprint
    assert (part.all() == full.all()[:1_000]).all(), "the first n events, split like the Pythia sample"
    with pytest.raises(sample_lib.DataError, match="missing.lhe does not exist"):
        cache.load_sample(1_000, 1, lhe_file=tmp_path / "missing.lhe")


def test_fingerprint_reaches_checkpoint_and_record(own_events):
    cfg = QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64,
                        lhe_file=str(own_events))
    sample = cache.load_sample(1_000, cfg.data_seed, lhe_file=own_events)
    ens = ensembles.train_ensemble("QINN", [cfg], progress=False, log=lambda *a: None)
    trained, record = ens.runs[0], ens.records[0]
    assert trained.data.fingerprint == sample.fingerprint
    ckpt = torch.load(trained.result.checkpoint, weights_only=True)
    assert ckpt["data_fingerprint"] == sample.fingerprint and ckpt["cfg"]["lhe_file"] == str(own_events)
    assert trained.run_dir.name.endswith(sample.fingerprint)
    assert record["data_fingerprint"] == sample.fingerprint and record["config"]["lhe_file"] == str(own_events)
    pythia = cfg.replace(lhe_file="")
    assert one_model.run_dir_for(pythia, sample.fingerprint) != trained.run_dir, "another configuration, another run"


def test_a_short_lhe_file_is_an_error_naming_it_and_both_counts(own_events, tmp_path, monkeypatch):
    """Regression: a file with 434 events passing the cuts ran the notebooks on 434 while they said
    8000, and reported a 62 % reconstruction deviation without a word."""
    n = cache.lhe_events_available(own_events)
    with pytest.raises(sample_lib.DataError, match=rf"LHE file {own_events}: {n:,} events pass the cuts, fewer than "
                                                    rf"the 8,000 asked for.*at most {n}"):
        cache.load_sample(8_000, 1234, lhe_file=own_events)
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "reports")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")
    ran = []
    monkeypatch.setattr(runner, "pretrain_runs", lambda *a, **k: ran.append(1) or set())
    with pytest.raises(ConfigError, match=rf"03_isp_training.ipynb: LHE file {own_events}: {n:,} events pass the cuts, "
                                          r"fewer than the 8,000 asked for"):
        runner.run("quick", only=["03"], parameters={"all": {"lhe_file": str(own_events)}}, progress=False,
                   log=lambda *a: None)
    assert ran == [] and not list(tmp_path.rglob("*.ipynb")), "refused before anything ran"


def test_one_parameter_runs_notebook_01_on_the_lhe_file(own_events, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "reports")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")
    n = 2_000  # of the file's ~2,200 that pass the cuts
    runner.run("quick", only=["01"], parameters={"all": {"lhe_file": str(own_events), "n_events": n}}, progress=False,
               log=lambda *a: None)
    folder = runner.output_folders(paths.notebooks_dir() / "01_data_exploration.ipynb",
                                   {"lhe_file": str(own_events), "n_events": n}, "quick")
    assert folder[2].startswith("params-lhe_file-zj.lhe.gz_n_events-2000-"), "a run of its own, in a folder of its own"
    results = json.loads((folder[1] / "results.json").read_text())["01_data_exploration"]
    sample = cache.load_sample(n, 1234, lhe_file=own_events)
    assert results["fingerprint"] == sample.fingerprint and results["source"] == "LHE file"
    assert results["lhe_file"] == str(own_events) and results["n_events"] == sample.n_events == n
    assert (folder[1] / "01_mll_fit.png").is_file()
    nb = nbformat.read(folder[0] / "01_data_exploration.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and str(own_events) in injected[0].source, "the report says which events it ran on"
