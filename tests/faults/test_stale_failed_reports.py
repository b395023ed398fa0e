"""A report kept after a failure (``NN_name.failed.ipynb``, beside the good reports) must not be
collected by nbval when the README's test command ``pytest --nbval-lax tests build/reports/quick``
runs: a stale one made that command fail long after the report was run again successfully."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from qinn_lib import paths

pytest.importorskip("nbval")


def _notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _pytest(folder: Path, *config: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", *config,
                           str(folder)], capture_output=True, text=True, timeout=240, cwd=paths.repo_root())


@pytest.fixture
def reports(tmp_path):
    folder = tmp_path / "reports" / "quick"
    folder.mkdir(parents=True)
    _notebook(folder / "01_events.ipynb", "x = 1 + 1\nprint(x)")
    _notebook(folder / "02_models.failed.ipynb", "raise RuntimeError('this report failed last week')")
    return folder


def test_a_stale_failed_report_is_not_collected(reports):
    out = _pytest(reports, "-c", str(paths.repo_root() / "pyproject.toml"), "-v")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "01_events.ipynb" in out.stdout and "1 passed" in out.stdout, out.stdout[-3000:]
    assert "failed.ipynb" not in out.stdout, out.stdout[-3000:]


def test_without_the_setting_the_stale_report_would_fail_the_run(reports):
    """The fault the setting removes, reproduced: with no project configuration nbval collects it."""
    out = _pytest(reports, "-c", "/dev/null", "-v")
    assert out.returncode == 1 and "02_models.failed.ipynb" in out.stdout, out.stdout[-3000:]
