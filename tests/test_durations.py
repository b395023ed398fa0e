"""The paper-profile durations the README states are the ones the runner last measured."""

from __future__ import annotations

import pytest

from qinn_lib import paths
from qinn_lib.evaluation import results
from qinn_lib.notebook import durations, readme


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    (tmp_path / "figures").mkdir()
    return tmp_path


def test_a_partial_run_updates_its_notebooks_and_keeps_the_others(repo):
    durations.record_notebook("paper", "01_data_exploration", 60.0, models="shipped", trained_runs=0)
    durations.record_notebook("paper", "03_isp_training", 30.0, models="shipped", trained_runs=0)
    durations.record_training("paper", 600.0, runs=4)
    durations.record_notebook("paper", "03_isp_training", 90.0, models="train", trained_runs=4)
    section = results.load_results("paper")[durations.SECTION]
    assert sorted(section["notebooks"]) == ["01_data_exploration", "03_isp_training"]
    assert section["notebooks"]["03_isp_training"]["seconds"] == 90.0
    assert section["notebooks"]["03_isp_training"]["models"] == "train"
    assert section["training"]["runs"] == 4
    text = readme.render_results(results.load_results("paper"))
    assert "| 03_isp_training | 1.5 min | train | 4 |" in text
    assert "**all 2 notebooks** | **2.5 min**" in text
    assert "4 run(s) in 10.0 min" in text


def test_nothing_rendered_without_a_record():
    assert durations.render(None) == [] and durations.render({"notebooks": {}}) == []
