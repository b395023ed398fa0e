"""The JupyterLab extension that opens the committed reports read-only (no browser needed: the
contents manager is exercised directly)."""

import asyncio
import json

import pytest
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager, FileContentsManager
from tornado import web

from qinn_lib import paths
from qinn_lib.notebook import lab

REPORT = "notebooks/02_circuit_and_inverse.ipynb"


def run(value):
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


@pytest.mark.parametrize("base", [FileContentsManager, AsyncFileContentsManager])
def test_committed_reports_are_read_only(base, tmp_path, monkeypatch):
    cm = lab.protect(base)(root_dir=str(paths.repo_root()))
    model = run(cm.get(REPORT, content=False))
    assert model["writable"] is False
    assert run(cm.get("notebooks/02_circuit_and_inverse.py", content=False))["writable"] is False
    listing = run(cm.get("notebooks", content=True))
    assert {c["name"]: c["writable"] for c in listing["content"]}["03_isp_training.ipynb"] is False
    assert run(cm.get("README.md", content=False))["writable"] is True, "only the reports"
    with pytest.raises(web.HTTPError) as err:
        run(cm.save({"type": "notebook", "content": {}}, REPORT))
    assert err.value.status_code == 403 and "Save As" in err.value.log_message
    monkeypatch.setenv("QINN_EDIT_NOTEBOOKS", "1")
    assert run(cm.get(REPORT, content=False))["writable"] is True, "developers can switch it off"


def test_other_files_still_save(tmp_path):
    cm = lab.protect(FileContentsManager)(root_dir=str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    cm.save({"type": "file", "format": "text", "content": "hello"}, "notebooks/01_mine.py")
    assert (tmp_path / "notebooks" / "01_mine.py").read_text() == "hello", "not the repository's notebooks/"


def test_install_enables_the_extension(tmp_path, capsys):
    assert lab.main(["status", "--prefix", str(tmp_path)]) == 1
    path = lab.install(tmp_path)
    assert path == tmp_path / "etc/jupyter/jupyter_server_config.d/qinn_lib.json"
    assert json.loads(path.read_text()) == {"ServerApp": {"jpserver_extensions": {"qinn_lib.lab": True}}}
    assert lab.main(["status", "--prefix", str(tmp_path)]) == 0
    assert "enabled" in capsys.readouterr().out


def test_unprotected_session_is_warned_about(monkeypatch):
    monkeypatch.delenv(lab.PROTECTED_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert lab.unprotected_session_warning() == "", "papermill kernels have no session"
    monkeypatch.setenv("JPY_SESSION_NAME", str(paths.repo_root() / REPORT))
    assert "autosave your run over the committed report 02_circuit_and_inverse.ipynb" in lab.unprotected_session_warning()
    monkeypatch.setenv("JPY_SESSION_NAME", str(paths.repo_root() / "build" / "02_copy.ipynb"))
    assert lab.unprotected_session_warning() == "", "a copy elsewhere is the user's"
    monkeypatch.setenv("JPY_SESSION_NAME", str(paths.repo_root() / REPORT))
    monkeypatch.setenv(lab.PROTECTED_ENV, "1")
    assert lab.unprotected_session_warning() == ""
