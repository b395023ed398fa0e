"""The notebook pipeline: discovery, jupytext pairing, parameter validation, failure reporting,
and the presence of the executed quick-profile reports that nbval then checks."""

import json
from pathlib import Path

import nbformat
import pytest

from qinn_lib import paths, reports
from qinn_lib.config import ConfigError, DataConfig

#: The notebooks the project ships, in order. A notebook added or lost must show up here.
EXPECTED_NOTEBOOKS = [
    "01_data_exploration",
    "02_circuit_and_inverse",
    "03_isp_training",
    "04_fidelity_vs_mse",
    "05_qinn_vs_inn",
    "07_hardware_realism",
]


def test_expected_notebooks_are_found():
    found = [nb.stem for nb in reports.discover_notebooks()]
    assert found == EXPECTED_NOTEBOOKS, f"found {len(found)} notebooks: {found}"


@pytest.mark.parametrize("stem", EXPECTED_NOTEBOOKS)
def test_notebook_is_paired_and_parameterised(stem):
    nb_path = paths.notebooks_dir() / f"{stem}.ipynb"
    assert (paths.notebooks_dir() / f"{stem}.py").is_file(), f"no py:percent twin for {nb_path.name}"
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata, "saved widget state must be stripped"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: need exactly one cell tagged 'parameters'"
    assert "paper" in tagged[0].source.lower(), "the parameters cell must say which values reproduce the paper"
    declared = reports.declared_parameters(nb_path)
    assert set(declared) == set(reports.config_class(nb_path).field_names())
    assert declared["profile"] == "'paper'" or declared["profile"] == '"paper"'


@pytest.mark.parametrize("stem", EXPECTED_NOTEBOOKS)
def test_notebook_and_twin_agree(stem):
    """The .ipynb and the .py twin hold the same code (jupytext --sync keeps them so)."""
    import jupytext

    ipynb = nbformat.read(paths.notebooks_dir() / f"{stem}.ipynb", as_version=4)
    py = jupytext.read(paths.notebooks_dir() / f"{stem}.py")
    code = lambda nb: [c.source.strip() for c in nb.cells if c.cell_type == "code"  # noqa: E731
                       and "injected-parameters" not in c.metadata.get("tags", [])]
    assert code(ipynb) == code(py), f"{stem}: run `jupytext --sync notebooks/{stem}.py`"


def test_notebooks_use_no_path_hacks():
    for py in paths.notebooks_dir().glob("[0-9][0-9]_*.py"):
        text = py.read_text()
        assert "sys.path" not in text, f"{py.name} manipulates sys.path"
        assert "os.chdir" not in text, f"{py.name} changes directory"


def test_unknown_parameter_is_rejected_before_running():
    with pytest.raises(ConfigError, match=r"n_event.*did you mean 'n_events'"):
        reports.run("quick", only=["01"], parameters={"01": {"n_event": 10}})


def test_out_of_range_parameter_is_rejected_before_running():
    with pytest.raises(ConfigError, match=r"01_data_exploration.*n_events must be >= 100"):
        reports.run("quick", only=["01"], parameters={"01": {"n_events": 5}})


def test_unknown_notebook_selection_is_rejected():
    with pytest.raises(reports.ReportError, match="no notebook matches"):
        reports.run("quick", only=["99"])


def test_cli_reports_errors_without_traceback(capsys):
    assert reports.main(["--only", "01", "-p", "01", "sead", "3"]) == 2
    err = capsys.readouterr().err
    assert "sead" in err and "seed" in err and "Traceback" not in err


def _one_cell_quick_run(tmp_path, monkeypatch, source: str) -> Path:
    """A stand-in notebook 01 (valid parameters cell + ``source``) run in the quick profile into
    ``tmp_path/out``; returns that directory."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "paper"\nn_events = 100\nseed = 1\nlhe_file = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "01_data_exploration.ipynb")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path / "nb")
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "out")
    reports.run("quick", progress=False, log=lambda *a: None)
    return tmp_path / "out"


def test_failing_cell_names_the_notebook(tmp_path, monkeypatch):
    """A cell that raises makes the run fail loudly and keeps the partly executed notebook."""
    with pytest.raises(reports.ReportError, match=r"01_data_exploration.ipynb failed.*boom in cell two"):
        _one_cell_quick_run(tmp_path, monkeypatch, "raise RuntimeError('boom in cell two')")
    assert (tmp_path / "out" / "01_data_exploration.failed.ipynb").is_file()
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def test_stuck_quick_cell_is_stopped_and_named(tmp_path, monkeypatch):
    """A quick-profile cell that exceeds the cell time limit fails the run with the notebook's name
    (rather than hanging CI) and keeps the partly executed notebook."""
    monkeypatch.setattr(reports, "QUICK_CELL_TIMEOUT", 2)
    with pytest.raises(reports.ReportError, match=r"01_data_exploration.ipynb: a cell ran longer than 2 s"):
        _one_cell_quick_run(tmp_path, monkeypatch, "import time\ntime.sleep(60)")
    assert (tmp_path / "out" / "01_data_exploration.failed.ipynb").is_file()
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def test_strip_widget_state(tmp_path):
    path = tmp_path / "x.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, path)
    reports.strip_widget_state(path)
    assert "widgets" not in json.loads(path.read_text())["metadata"]


def test_quick_reports_were_executed():
    """The test command runs the quick profile first; nbval then re-checks these reports."""
    out = paths.reports_dir("quick")
    missing = [s for s in EXPECTED_NOTEBOOKS if not (out / f"{s}.ipynb").is_file()]
    assert not missing, f"no executed quick report for {missing}: run `python -m qinn_lib.reports` first"
    for stem in EXPECTED_NOTEBOOKS:
        nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{stem}: executed report contains errors"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "quick" in injected[0].source


def test_figure_paths_do_not_depend_on_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = paths.figure_path("x_test", "quick")
    assert p.is_absolute() and p.parent == paths.repo_root() / "figures" / "quick"
    with pytest.raises(ValueError, match="profile"):
        paths.figure_path("x_test", "fast")
    with pytest.raises(ValueError, match="plain file stem"):
        paths.figure_path("../escape")


def test_config_is_self_validating():
    with pytest.raises(ConfigError, match="DataConfig.n_events must be an integer"):
        DataConfig(n_events="many")
    with pytest.raises(ConfigError, match="profile must be one of"):
        DataConfig(profile="fast")
    assert DataConfig.from_dict({"n_events": 1000.0}).n_events == 1000


def test_results_are_recorded_and_rendered_into_the_readme(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text(
        "intro\n<!-- results:start -->\nold text 99.9\n<!-- results:end -->\noutro\n")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    reports.record("03_isp_training", {
        "seed": 7, "params_quantum": 300, "params_classical": 1763, "params_total": 2063, "epochs": 200,
        "steps_per_epoch": 292, "train_seconds": 900.0, "device": "cpu", "threads": 1, "val_loss": 1.25,
        "val_nll": -0.5, "recon_mean": 0.0123, "recon_median": 0.01, "n_test": 50_000,
        "test_nll": 9.5, "test_nll_sem": 0.01}, "paper")
    assert json.loads((tmp_path / "figures" / "results.json").read_text())["03_isp_training"]["seed"] == 7
    reports.update_readme("paper")
    text = (tmp_path / "README.md").read_text()
    assert "old text 99.9" not in text and text.startswith("intro") and text.endswith("outro\n")
    assert "1.23 %" in text and "15.0 min" in text and "300 + 1763 = 2063" in text
    reports.record("05_qinn_vs_inn", {"seeds": [1, 2, 3], "table": "| t |", "conclusion": "nll: QINN better than INN 2k",
                                      "claims": "peak: -> reproduced", "rows": []}, "paper")
    reports.update_readme("paper")
    text = (tmp_path / "README.md").read_text()
    assert "1.23 %" in text, "the other sections stay"
    assert "nll: QINN better than INN 2k" in text and "Sec. 4.2's statements" in text and "peak: -> reproduced" in text


def test_readme_without_markers_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("no markers here\n")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    with pytest.raises(reports.ReportError, match="markers"):
        reports.update_readme("paper")


def test_readme_commands_are_marked_for_ci():
    text = (paths.repo_root() / "README.md").read_text()
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        assert marker in text, f"README lacks {marker}; .ci/run reads the test command after it"


def test_inn_benchmark_is_rendered_from_its_record():
    text = reports.render_results({"bench_inn": {"batch_size": 128, "members": 3, "threads": 1, "sizes": {
        "16k": {"params": 15960, "single_ms": 110.0, "lockstep_ms": 141.0, "lockstep_ms_per_seed": 47.0,
                "speedup_per_seed": 2.34, "paper_hours_3_seeds_single": 5.35,
                "paper_hours_3_seeds_lockstep": 2.29}}}})
    assert "| 16k | 15,960 | 110 | 47 | 2.34× | 5.3 h → 2.3 h |" in text
