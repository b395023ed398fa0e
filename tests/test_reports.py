"""The notebook pipeline: discovery, jupytext pairing, parameter validation, failure reporting,
and the presence of the executed quick-profile reports that nbval then checks."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from qinn_lib import paths
from qinn_lib.evaluation import results as results_store
from qinn_lib.notebook import parameters, runner
from qinn_lib.notebook import readme as readme_lib
from qinn_lib.training.config import ConfigError, DataConfig

#: The notebooks the project ships, in order. A notebook added or lost must show up here.
EXPECTED_NOTEBOOKS = [
    "01_data_exploration",
    "02_circuit_and_inverse",
    "03_isp_training",
    "04_fidelity_vs_mse",
    "05_qinn_vs_inn",
    "06_why_the_gap",
    "07_hardware_realism",
]


def test_expected_notebooks_are_found():
    found = [nb.stem for nb in parameters.discover_notebooks()]
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
    declared = parameters.declared_parameters(nb_path)
    cls = parameters.config_class(nb_path)
    assert "profile" not in declared, "the profile is the runner's choice, not a notebook parameter"
    assert set(declared) == set(cls.field_names()) - {"profile"}
    # The parameters cell holds the paper's values, which are the dataclass defaults: the
    # interactive default (profiles.notebook_config) tells "the committed run" by them.
    defaults = cls()
    for name, text in declared.items():
        assert getattr(cls(**{name: parameters.parse_literal(text)}), name) == getattr(defaults, name), (stem, name)
    assert "lhe_file" in declared or stem == "01_data_exploration" and "lhe_file" in declared


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
        runner.run("quick", only=["01"], parameters={"01": {"n_event": 10}})


def test_out_of_range_parameter_is_rejected_before_running():
    with pytest.raises(ConfigError, match=r"01_data_exploration.*n_events must be >= 100"):
        runner.run("quick", only=["01"], parameters={"01": {"n_events": 5}})


def test_unknown_notebook_selection_is_rejected():
    with pytest.raises(parameters.ReportError, match="no notebook matches"):
        runner.run("quick", only=["99"])


def test_cli_reports_errors_without_traceback(capsys):
    assert runner.main(["--only", "01", "-p", "01", "sead", "3"]) == 2
    err = capsys.readouterr().err
    assert "sead" in err and "seed" in err and "Traceback" not in err


def _one_cell_quick_run(tmp_path, monkeypatch, source: str | list[str]) -> Path:
    """A stand-in notebook 01 (valid parameters cell + ``source``) run in the quick profile into
    ``tmp_path/out``; returns that directory."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('n_events = 100\nseed = 1\nlhe_file = ""')
    params.metadata["tags"] = ["parameters"]
    sources = [source] if isinstance(source, str) else source
    nb.cells = [params, *(nbformat.v4.new_code_cell(s) for s in sources)]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "01_data_exploration.ipynb")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path / "nb")
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "out")
    runner.run("quick", progress=False, log=lambda *a: None)
    return tmp_path / "out"


def test_failing_cell_names_the_notebook(tmp_path, monkeypatch):
    """A cell that raises makes the run fail loudly and keeps the partly executed notebook."""
    with pytest.raises(parameters.ReportError, match=r"01_data_exploration.ipynb failed.*boom in cell two"):
        _one_cell_quick_run(tmp_path, monkeypatch, "raise RuntimeError('boom in cell two')")
    assert (tmp_path / "out" / "01_data_exploration.failed.ipynb").is_file()
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def test_stuck_quick_cell_is_stopped_and_named(tmp_path, monkeypatch):
    """A quick-profile cell that exceeds the cell time limit fails the run with the notebook's name
    (rather than hanging CI) and keeps the partly executed notebook."""
    monkeypatch.setattr(runner, "QUICK_CELL_TIMEOUT", 2)
    with pytest.raises(parameters.ReportError, match=r"01_data_exploration.ipynb: a cell ran longer than 2 s"):
        _one_cell_quick_run(tmp_path, monkeypatch, "import time\ntime.sleep(60)")
    assert (tmp_path / "out" / "01_data_exploration.failed.ipynb").is_file()
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def test_strip_widget_state(tmp_path):
    path = tmp_path / "x.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, path)
    runner.strip_widget_state(path)
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
        # The runner records the profile in a quick report, so that nbval re-executes it as made.
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and 'qinn_profile = "quick"' in injected[0].source
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "[qinn] profile quick (recorded in this report by python -m qinn_lib.reports)" in printed, stem


def test_figure_paths_do_not_depend_on_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(paths.OUTPUT_DIR_ENV, raising=False)
    p = paths.figure_path("x_test", ".png", tmp_path / "figs")
    assert p.parent == tmp_path / "figs"
    assert paths.output_dir() == paths.repo_root() / "build" / "interactive"
    assert paths.figures_dir("quick") == paths.repo_root() / "figures" / "quick"
    with pytest.raises(ValueError, match="profile"):
        paths.figures_dir("fast")
    with pytest.raises(ValueError, match="plain file stem"):
        paths.figure_path("../escape")


def test_all_sets_a_parameter_in_every_notebook(monkeypatch):
    with pytest.raises(ConfigError, match=r"02_circuit_and_inverse.*n_events must be >= 100"):
        runner.run("quick", only=["02"], parameters={"all": {"n_events": 5}})
    seen = {}

    def check(nb, overrides, profile):
        seen[nb.stem] = overrides
        if len(seen) == len(EXPECTED_NOTEBOOKS):
            raise parameters.ReportError("checked them all")  # stop before anything runs
        return overrides

    monkeypatch.setattr(runner, "check_parameters", check)
    with pytest.raises(parameters.ReportError, match="checked them all"):
        runner.run("quick", parameters={"all": {"lhe_file": "z.lhe.gz"}, "03": {"epochs": 1}})
    assert all(seen[s]["lhe_file"] == "z.lhe.gz" for s in EXPECTED_NOTEBOOKS)
    assert seen["03_isp_training"]["epochs"] == 1 and "epochs" not in seen["04_fidelity_vs_mse"]


def test_runner_gives_its_kernels_the_profile_and_output_folder(tmp_path, monkeypatch):
    """The only path that writes figures/: the runner points QINN_OUTPUT_DIR there for its kernels
    (and only for them: the variables are restored afterwards)."""
    monkeypatch.delenv("QINN_PROFILE", raising=False)
    out = _one_cell_quick_run(tmp_path, monkeypatch, "import os\nprint(os.environ['QINN_PROFILE'], os.environ['QINN_OUTPUT_DIR'])")
    nb = nbformat.read(out / "01_data_exploration.ipynb", as_version=4)
    # (the report holds the folder relative to the repository: runner.clean_report drops this machine's root)
    assert nb.cells[-1].outputs[0]["text"].split() == ["quick", str(paths.figures_dir("quick").relative_to(paths.repo_root()))]
    assert "QINN_PROFILE" not in __import__("os").environ


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
    results_store.record("03_isp_training", {
        "seed": 7, "params_quantum": 300, "params_classical": 1763, "params_total": 2063, "epochs": 200,
        "steps_per_epoch": 292, "train_seconds": 900.0, "device": "cpu", "threads": 1, "val_loss": 1.25,
        "val_nll": -0.5, "recon_mean": 0.0123, "recon_median": 0.01, "n_test": 50_000,
        "test_nll": 9.5, "test_nll_sem": 0.01}, "paper")
    assert json.loads((tmp_path / "figures" / "results.json").read_text())["03_isp_training"]["seed"] == 7
    readme_lib.update_readme("paper")
    text = (tmp_path / "README.md").read_text()
    assert "old text 99.9" not in text and text.startswith("intro") and text.endswith("outro\n")
    assert "1.23 %" in text and "15.0 min" in text and "300 + 1763 = 2063" in text
    results_store.record("05_qinn_vs_inn", {"seeds": [1, 2, 3], "table": "| t |", "conclusion": "nll: QINN better than INN 2k",
                                            "claims": "peak: -> reproduced", "rows": []}, "paper")
    readme_lib.update_readme("paper")
    text = (tmp_path / "README.md").read_text()
    assert "1.23 %" in text, "the other sections stay"
    assert "nll: QINN better than INN 2k" in text and "Sec. 4.2's statements" in text and "peak: -> reproduced" in text


def test_readme_without_markers_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("no markers here\n")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    with pytest.raises(parameters.ReportError, match="markers"):
        readme_lib.update_readme("paper")


def test_readme_commands_are_marked_for_ci():
    text = (paths.repo_root() / "README.md").read_text()
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        assert marker in text, f"README lacks {marker}; .ci/run reads the test command after it"


def test_inn_benchmark_is_rendered_from_its_record():
    text = readme_lib.render_results({"bench_inn": {"batch_size": 128, "members": 3, "threads": 1, "sizes": {
        "16k": {"params": 15960, "single_ms": 110.0, "lockstep_ms": 141.0, "lockstep_ms_per_seed": 47.0,
                "speedup_per_seed": 2.34, "paper_hours_3_seeds_single": 5.35,
                "paper_hours_3_seeds_lockstep": 2.29, "path": "compiled",
                "paths": {"nflows": {"lockstep_ms_per_seed": 69.7}}}}}})
    assert "| 16k | 15,960 | compiled | 110.0 | 47.0 | 69.7 | 5.35 h alone, 2.29 h lockstep |" in text


def test_benchmark_projection_is_rendered_from_its_record():
    text = readme_lib.render_results({"bench_projection": {"jobs": 9, "runs": 15, "core_hours": 1.5,
                                                           "wall_minutes": 47.0, "n_workers": 2}})
    assert "the 15 training runs of notebooks 03–05 as 9 Dask jobs on 2 single-threaded workers" in text
    assert "1.50 core-hours, **47 min** of wall time" in text


# -- reliability (issue 12) ---------------------------------------------------------------------------
def test_a_killed_kernel_keeps_the_partial_notebook_and_the_existing_report(tmp_path, monkeypatch):
    """The kernel dies mid-report (out of memory, kill -9): the cells run so far are kept as
    NN.failed.ipynb and the report from the last good run is not overwritten."""
    (tmp_path / "out").mkdir()
    report = tmp_path / "out" / "01_data_exploration.ipynb"
    report.write_text("the last good report")
    with pytest.raises(parameters.ReportError, match=r"01_data_exploration.ipynb: execution stopped \(DeadKernelError.*"
                       r"kernel killed.*the partly executed notebook is .*01_data_exploration.failed.ipynb"):
        _one_cell_quick_run(tmp_path, monkeypatch, ["print('first result')",
                                                    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    assert report.read_text() == "the last good report"
    failed = nbformat.read(tmp_path / "out" / "01_data_exploration.failed.ipynb", as_version=4)
    assert "first result" in json.dumps([cell.get("outputs") for cell in failed.cells])
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_ctrl_c_keeps_the_partial_notebook_and_exits_130(tmp_path, monkeypatch, capsys):
    import papermill

    def interrupted(source, output, **kwargs):
        Path(output).write_text('{"cells": [], "partial": true}')  # papermill saves as it goes
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "out")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")
    assert runner.main(["--only", "01", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("python -m qinn_lib.reports: interrupted; ") and "Traceback" not in err
    assert json.loads((tmp_path / "out" / "01_data_exploration.failed.ipynb").read_text())["partial"]
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def test_a_kept_failed_notebook_is_not_taken_for_a_notebook(tmp_path, monkeypatch):
    (tmp_path / "01_data_exploration.ipynb").write_text("{}")
    (tmp_path / "01_data_exploration.failed.ipynb").write_text("{}")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path)
    assert [nb.name for nb in parameters.discover_notebooks()] == ["01_data_exploration.ipynb"]


def test_profile_is_not_a_notebook_parameter(capsys):
    with pytest.raises(ConfigError, match=r"'profile' is not a notebook parameter.*--profile"):
        runner.run("quick", only=["03"], parameters={"03": {"profile": "paper"}})
    assert runner.main(["--only", "03", "-p", "03", "profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert err == ("python -m qinn_lib.reports: error: -p 03 profile paper: the profile is not a notebook "
                   "parameter; choose it with --profile paper\n")


def test_cli_parameters_are_parsed_by_the_field_type(capsys):
    assert parameters.parse_parameters([["03", "max_lr", "1e-3"], ["03", "epochs", "010"]]) == \
        {"03_isp_training": {"max_lr": 0.001, "epochs": 10}}
    assert parameters.parse_parameters([["01", "seed", "7"]])["01_data_exploration"]["seed"] == 7
    assert runner.main(["--only", "03", "-p", "03", "epochs", "1:30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "QINNRunConfig.epochs must be an integer, got '1:30'" in err


def test_unwritable_output_folders_are_found_before_any_notebook_runs(tmp_path, monkeypatch):
    (tmp_path / "figures").write_text("a file where the figures folder should be")
    real_notebooks = paths.notebooks_dir()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(paths, "notebooks_dir", lambda: real_notebooks)
    with pytest.raises(OSError, match=rf"cannot write in the figures folder {tmp_path / 'figures' / 'quick'}: Not a directory"):
        runner.run("quick", only=["01"], progress=False, log=lambda *a: None)
    assert not (tmp_path / "build" / "reports" / "quick" / "01_data_exploration.ipynb").exists()


def test_runs_dir_that_is_a_file_is_found_before_any_notebook_runs(tmp_path, monkeypatch):
    (tmp_path / "runs").write_text("not a folder")
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "out")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")
    with pytest.raises(OSError, match=rf"the runs folder {tmp_path / 'runs'} is a file, not a folder; set QINN_RUNS_DIR"):
        runner.run("quick", only=["01"], progress=False, log=lambda *a: None)
    assert not (tmp_path / "out" / "01_data_exploration.ipynb").exists()


def _readme(tmp_path):
    (tmp_path / "README.md").write_text("intro\n<!-- results:start -->\nthe results 42\n<!-- results:end -->\noutro\n")
    return tmp_path / "README.md"


@pytest.mark.parametrize("state", ["missing", "folder", "empty"])
def test_update_readme_without_results_leaves_the_readme_untouched(tmp_path, monkeypatch, capsys, state):
    readme = _readme(tmp_path)
    before = readme.read_text()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    results_json = tmp_path / "figures" / "results.json"
    if state == "folder":
        results_json.mkdir(parents=True)
    elif state == "empty":
        results_json.parent.mkdir()
        results_json.write_text("{}")
    match = {"missing": "does not exist", "folder": "is a folder", "empty": "holds no results"}[state]
    with pytest.raises(parameters.ReportError, match=rf"{match}.*README.md was left unchanged"):
        readme_lib.update_readme("paper")
    assert runner.main(["--update-readme"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert readme.read_text() == before


def test_update_readme_refuses_results_of_different_event_samples(tmp_path, monkeypatch):
    readme = _readme(tmp_path)
    before = readme.read_text()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    from test_results import section_from_schema

    data = section_from_schema("01_data_exploration") | {"fingerprint": "aaaa"}
    training = section_from_schema("03_isp_training") | {"data_fingerprint": "bbbb"}
    results_store.record("01_data_exploration", data, "paper")
    results_store.record("03_isp_training", training, "paper")
    with pytest.raises(parameters.ReportError, match=r"mix results of different event samples \(section '01_data_exploration': "
                       r"aaaa, section '03_isp_training': bbbb\)"):
        readme_lib.update_readme("paper")
    assert readme.read_text() == before
    results_store.record("03_isp_training", training | {"data_fingerprint": "aaaa"}, "paper")
    readme_lib.update_readme("paper")
    assert "the results 42" not in readme.read_text()


def test_update_readme_with_an_older_section_names_it(tmp_path, monkeypatch, capsys):
    readme = _readme(tmp_path)
    before = readme.read_text()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "results.json").write_text(json.dumps({"bench": {"batch_size": 128}}))
    assert runner.main(["--update-readme"]) == 2
    err = capsys.readouterr().err
    assert "section 'bench' lacks key 'threads'" in err and err.count("\n") == 1 and "Traceback" not in err
    assert readme.read_text() == before


def test_wrong_parameter_type_through_papermill_directly_names_the_parameter(tmp_path):
    """Without our runner (papermill's own CLI or a JupyterLab user editing the parameters cell),
    the notebook's config dataclass still refuses the value, naming it, before any work."""
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(str(paths.notebooks_dir() / "01_data_exploration.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"n_events": "many", "profile": "quick"}, kernel_name=runner.KERNEL_NAME,
                                   cwd=str(paths.notebooks_dir()), progress_bar=False)
    assert info.value.ename == "ConfigError"
    assert "DataConfig.n_events must be an integer, got 'many'" in info.value.evalue


def test_parameters_are_checked_as_the_profile_will_run_them():
    """batch_size 5000 fits the paper's 37,500 training events but not the quick profile's 3,000:
    refused before notebook 01 spends a minute generating events (it failed in notebook 03's cell 3)."""
    with pytest.raises(ConfigError, match=r"03_isp_training.ipynb: QINNRunConfig.batch_size \(5000\) exceeds the 3000 "
                                          r"training events of n_events=8000"):
        runner.run("quick", parameters={"03": {"batch_size": 5000}})
    with pytest.raises(ConfigError, match=r"05_qinn_vs_inn.ipynb: ComparisonConfig.n_events is too small.*n_events >= 342"):
        runner.run("quick", parameters={"05": {"n_events": 300}})


# -- runs with parameters of their own, --list, machine paths ------------------------------------------
def test_parameter_set_names():
    nb = paths.notebooks_dir() / "03_isp_training.ipynb"
    assert parameters.changed_parameters(nb, {"seed": 1234, "mmd_widths": [0.02, 0.1, 0.4, 1.0, 5.0]}) == {}
    changed = parameters.changed_parameters(nb, {"n_layers": 6, "seed": 7, "epochs": 200})
    assert changed == {"n_layers": 6, "seed": 7}
    assert parameters.parameter_set_name(changed) == "params-n_layers-6_seed-7"
    assert parameters.parameter_set_name({}) == ""
    a = parameters.parameter_set_name({"lhe_file": "/data/a/z.lhe.gz"})
    b = parameters.parameter_set_name({"lhe_file": "/data/b/z.lhe.gz"})
    assert a.startswith("params-lhe_file-z.lhe.gz-") and a != b, "same file name, other file: other folder"
    assert "/" not in a and len(parameters.parameter_set_name({"max_lr": 1e-3, "lambda_mz": 0.5, "lambda_inv": 3.0,
                                                               "n_layers": 30, "isp_hidden": 64})) <= 80


def test_a_run_with_parameters_leaves_the_default_report_alone(tmp_path, monkeypatch):
    """Regression: `reports --only 03 -p 03 n_layers 6 -p 03 seed 7` wrote over the default quick
    report, its figures and its results.json section, without a word."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('n_events = 100\nseed = 1\nlhe_file = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os\nfrom qinn_lib.evaluation import results\nresults.record('zz', {'seed': seed})\n"
        "print(os.environ['QINN_OUTPUT_DIR'])")]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "01_data_exploration.ipynb")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path / "nb")
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "reports")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")
    lines = []
    runner.run("quick", progress=False, log=lines.append)
    runner.run("quick", parameters={"01": {"seed": 7}}, progress=False, log=lines.append)
    default = json.loads((tmp_path / "figures" / "results.json").read_text())["zz"]
    own = json.loads((tmp_path / "figures" / "params-seed-7" / "results.json").read_text())["zz"]
    assert default == {"seed": 1} and own == {"seed": 7}
    assert (tmp_path / "reports" / "01_data_exploration.ipynb").is_file()
    report = nbformat.read(tmp_path / "reports" / "params-seed-7" / "01_data_exploration.ipynb", as_version=4)
    assert report.cells[-1].outputs[0]["text"].strip() == str(tmp_path / "figures" / "params-seed-7")
    notice = [line for line in lines if "parameters of its own" in line]
    assert len(notice) == 1 and "(seed=7)" in notice[0] and "params-seed-7/" in notice[0] and "left as it is" in notice[0]


def test_list_shows_what_a_default_run_uses(capsys):
    """Regression: --list showed the paper defaults only, not the quick caps a default run applies."""
    assert runner.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "[quick: N] = the value a default run (--profile quick) uses" in out
    block = out.split("03_isp_training")[1].split("04_fidelity_vs_mse")[0]
    assert re.search(r"epochs = 200\s+\[quick: 2\]", block) and re.search(r"n_events = 100_000\s+\[quick: 8000\]", block)
    assert re.search(r"\n    seed = 1234\n", block), "an uncapped parameter has no quick value"
    assert re.search(r"n_test = 50_000\s+\[quick: 4000\]", out) and re.search(r"search_epochs = 200\s+\[quick: 2\]", out)
    # notebook 07's grids, thinned in the quick profile (both ends kept), in the cell's own spelling
    assert "shots = [1e2, 1e3, 1e4, 1e5, 1e6] [quick: [1e2, 1e4, 1e6]]" in out
    assert re.search(r"noise_levels = \[1e-6, .*, 1e-1\] \[quick: \[1e-6, 1e-5, 1e-3, 1e-1\]\]", out)
    assert re.search(r"n_eval_seeds = 3\s+\[quick: 2\]", out)


def test_the_quick_values_listed_are_the_caps_the_notebooks_apply():
    """Every ``budget(cfg.profile, "CAP", cfg.NAME)`` in a notebook is what --list shows for NAME."""
    from qinn_lib.training import budget as budget_lib

    for py in sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.py")):
        for cap, name in re.findall(r'budget\(cfg\.profile, "(\w+)", cfg\.(\w+)\)', py.read_text()):
            assert budget_lib.CAPPED_AS.get(name, name) == cap, f"{py.name}: {name} is capped by {cap!r}"


def test_clean_report_removes_machine_paths(tmp_path):
    root = tmp_path / "repo"
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"input_path": str(root / "notebooks" / "01_x.ipynb"),
                                "output_path": str(root / "notebooks" / ".01_x.ipynb.abc.ipynb")}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        "/tmp/ipykernel_15249/3904066155.py:9: FoldWarning: folds\n"
        f"{root}/qinn_lib/x.py:3: and /opt/venv/lib/python3.11/site-packages/torch/nn.py:4: UserWarning: y\n")),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"PosixPath('{root}/figures/results.json')",
                                                       "image/png": "iVBORw0KGgo/tmp/ipykernel_1/2.py"})]
    nb.cells = [cell]
    path = tmp_path / "report.ipynb"
    nbformat.write(nb, path)
    runner.clean_report(path, source=root / "notebooks" / "01_x.ipynb", published=root / "notebooks" / "01_x.ipynb",
                        root=root)
    out = json.loads(path.read_text())
    assert out["metadata"]["papermill"]["input_path"] == out["metadata"]["papermill"]["output_path"] == "notebooks/01_x.ipynb"
    text = "".join(out["cells"][0]["outputs"][0]["text"])
    assert text == ("<cell>:9: FoldWarning: folds\n"
                    "qinn_lib/x.py:3: and site-packages/torch/nn.py:4: UserWarning: y\n")
    data = out["cells"][0]["outputs"][1]["data"]
    assert "".join(data["text/plain"]) == "PosixPath('figures/results.json')"
    assert "".join(data["image/png"]) == "iVBORw0KGgo/tmp/ipykernel_1/2.py", "pictures are left alone"


def test_the_notebooks_end_without_printing_a_path(tmp_path, monkeypatch):
    """Regression: results.record(...) ending a cell printed PosixPath('/.../figures/results.json')."""
    from qinn_lib.evaluation import records

    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path))
    assert results_store.record("zz_test", {"x": 1}) is None and (tmp_path / "results.json").is_file()
    assert records.write_results(tmp_path / "m.json", []) is None and (tmp_path / "m.json").is_file()


def test_pretraining_tells_the_kernels_what_it_trained(monkeypatch):
    from qinn_lib import settings
    from qinn_lib.experiments import jobs, one_model, plans
    from qinn_lib.training.config import FidelityVsMSEConfig

    monkeypatch.setattr(jobs, "train_runs", lambda configs, log=None: [])
    monkeypatch.setattr(one_model, "availability",
                        lambda c, models="shipped": "shipped" if c.invertibility == "fidelity" else None)
    nb = paths.notebooks_dir() / "04_fidelity_vs_mse.ipynb"
    trained = runner.pretrain_runs([(nb, {})], "quick", log=lambda *a: None)
    runs = plans.notebook_runs(FidelityVsMSEConfig(profile="quick"))
    assert trained == {one_model.run_key(c) for c in runs if c.invertibility == "mse"} and len(trained) == 1
    env = settings.runner_environment("quick", trained=sorted(trained))
    monkeypatch.setenv(settings.TRAINED_BY_RUNNER_ENV, env[settings.TRAINED_BY_RUNNER_ENV])
    assert settings.trained_by_runner() == trained


def test_paper_profile_parameter_runs_stay_out_of_the_committed_folders():
    root = paths.repo_root()
    reports, figures = paths.parameter_run_dirs("paper", "params-seed-7")
    assert reports == root / "build" / "reports" / "paper" / "params-seed-7" and figures == root / "figures" / "params-seed-7"
    assert "figures/params-*/" in (root / ".gitignore").read_text().splitlines(), "git-ignored"
    with pytest.raises(ValueError, match="plain folder name"):
        paths.parameter_run_dirs("quick", "../x")
