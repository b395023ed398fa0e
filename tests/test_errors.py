"""The command lines' error handling (qinn_lib.errors.run_cli): one line, exit 2 for an error the
user can act on, 130 for Ctrl-C, 1 (and a hint to --debug) for a bug; the traceback only with --debug."""

import os
import signal
import subprocess
import sys
import time

import pytest

from qinn_lib import paths
from qinn_lib.errors import QinnError, one_line, run_cli


def _raise(exc):
    def body():
        raise exc
    return body


def test_user_error_is_one_line_and_exit_2(capsys):
    assert run_cli(_raise(QinnError("file x.json: bad\nsecond line")), prog="prog") == 2
    assert capsys.readouterr().err == "prog: error: file x.json: bad | second line\n"


def test_os_error_is_a_user_error(capsys):
    assert run_cli(_raise(PermissionError(13, "Permission denied", "/x/y")), prog="prog") == 2
    assert capsys.readouterr().err == "prog: error: [Errno 13] Permission denied: '/x/y'\n"


def test_ctrl_c_is_130_with_what_was_kept(capsys):
    assert run_cli(_raise(KeyboardInterrupt()), prog="prog", interrupted="checkpoints kept") == 130
    assert capsys.readouterr().err == "prog: interrupted; checkpoints kept\n"


def test_a_bug_is_one_line_exit_1_and_the_traceback_only_with_debug(capsys):
    assert run_cli(_raise(ZeroDivisionError("division by zero")), prog="prog") == 1
    err = capsys.readouterr().err
    assert err == "prog: internal error: ZeroDivisionError: division by zero; re-run with --debug for the traceback\n"
    assert run_cli(_raise(ZeroDivisionError("division by zero")), prog="prog", debug=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("prog: internal error: ZeroDivisionError: division by zero\n")


def test_one_line_of_an_empty_message():
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_ctrl_c_during_event_generation_exits_130_in_one_line(tmp_path):
    """A real Ctrl-C (SIGINT) in the middle of a long computation: one line, status 130, nothing
    half-written left in the cache."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
    proc = subprocess.Popen([sys.executable, "-m", "qinn_lib.events", "--n-events", "5000000", "--cache-dir", str(cache),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not cache.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # the cache folder is checked (created) just before Pythia starts
        assert cache.exists(), proc.communicate()[1]
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("python -m qinn_lib.events: interrupted; nothing was cached (the cache is "
                                            "written only once generation is complete)")
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("module, argv", [
    ("qinn_lib.bench", ["--threads", "0"]),
    ("qinn_lib.reports", ["-p", "03", "epochs", "1:30"]),
    ("qinn_lib.shipped", ["verify", "--bogus"]),
    ("qinn_lib.runs", ["nonsense"]),
    ("qinn_lib.events", ["--n-events", "zero"]),
])
def test_module_entry_points_exit_2_without_traceback(module, argv):
    env = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"python -m {module}: error: ")
