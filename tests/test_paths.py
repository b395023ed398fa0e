"""Folder overrides: QINN_RUNS_DIR / QINN_DATA_DIR mean the same folder to a command line and to a
notebook kernel (which papermill starts in notebooks/)."""

from qinn_lib import paths


def test_relative_override_is_relative_to_the_repository_not_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_RUNS_DIR", "scratch/runs")
    monkeypatch.chdir(tmp_path)
    in_shell = paths.runs_dir()
    monkeypatch.chdir(paths.notebooks_dir())  # where a report's kernel runs
    assert paths.runs_dir() == in_shell == paths.repo_root() / "scratch" / "runs"


def test_empty_override_means_the_default(monkeypatch):
    monkeypatch.setenv("QINN_DATA_DIR", "")
    monkeypatch.setenv("QINN_RUNS_DIR", "  ")
    assert paths.data_dir() == paths.repo_root() / "data"
    assert paths.runs_dir() == paths.repo_root() / "build" / "runs"


def test_absolute_override_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "events"))
    assert paths.data_dir() == tmp_path / "events"
