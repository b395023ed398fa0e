"""Faults of the reports runner, the command lines, the environment and the input parsers (issue 24,
cases 8, 9, 11, 15, 16 and the rules behind them): each reproduces a fault found on main and pins
the fixed behaviour. Fault injection by real subprocesses and signals where the fault is one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from qinn_lib import env, paths, settings
from qinn_lib.errors import EXIT_TERMINATED, run_cli
from qinn_lib.events import cache
from qinn_lib.events.lhe import read_lhe
from qinn_lib.events.sample import DataError
from qinn_lib.notebook import runner

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
import lhe_sample  # noqa: E402  (tests/lhe_sample.py: synthetic LHE events)

PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
for _name in env.VARIABLES:  # the children see only what a test sets
    ENV.pop(_name, None)


def _fake_notebooks(tmp_path: Path, *cells: str) -> Path:
    """``tmp_path/nb/01_data_exploration.ipynb`` with DataConfig's parameters cell and ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('n_events = 100\nseed = 1\nlhe_file = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    (tmp_path / "nb").mkdir(exist_ok=True)
    nbformat.write(nb, tmp_path / "nb" / "01_data_exploration.ipynb")
    return tmp_path / "nb"


def _patch_folders(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path / "nb")
    monkeypatch.setattr(paths, "reports_dir", lambda profile: tmp_path / "out")
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": tmp_path / "figures")


#: A runner in a child process on the fake notebooks of a test (its folders patched as above).
_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from qinn_lib import paths
    from qinn_lib.notebook import runner
    tmp = Path(sys.argv[1])
    paths.notebooks_dir = lambda: tmp / "nb"
    paths.reports_dir = lambda profile: tmp / "out"
    paths.figures_dir = lambda profile="paper": tmp / "figures"
    runner.pretrain_runs = lambda *a, **k: set()
    sys.exit(runner.main(["--only", "01", "--no-progress", *sys.argv[2:]]))
""")


def _start_runner(tmp_path: Path, *argv: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-c", _CHILD, str(tmp_path), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path, **popen)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not path.exists():
        proc.kill()
        pytest.fail(f"the child never got to {path.name}: {proc.communicate()[1][-2000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# -- case 15: SIGTERM ----------------------------------------------------------------------------------
def test_sigterm_during_a_report_is_said_keeps_the_partial_notebook_and_leaves_no_temporary(tmp_path):
    """Regression (case 15): SIGTERM (``timeout``, a batch system) ended the runner with 143 and no
    word, left papermill's hidden temporary notebook behind (which nbval then collected as a test)
    and no ``.failed.ipynb``. Now: one line saying what was kept, status 143, the partial notebook
    kept, no temporary, and the kernel shut down."""
    ready, kernel_pid = tmp_path / "ready", tmp_path / "kernel.pid"
    _fake_notebooks(tmp_path, "print('first result')",
                    f"import os, pathlib, time\npathlib.Path({str(kernel_pid)!r}).write_text(str(os.getpid()))\n"
                    f"pathlib.Path({str(ready)!r}).write_text('x')\ntime.sleep(120)")
    proc = _start_runner(tmp_path)
    try:
        _wait_for(ready, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_TERMINATED, err
    # The runner prints no traceback of its own (the dying kernel may print ipykernel's, on its
    # own stderr, which it shares with the runner: nothing of qinn_lib or papermill in it).
    assert "qinn_lib/" not in err and "papermill/" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m qinn_lib.reports: terminated (SIGTERM); the notebooks finished before are kept")
    out = tmp_path / "out"
    failed = nbformat.read(out / "01_data_exploration.failed.ipynb", as_version=4)
    assert "first result" in json.dumps([c.get("outputs") for c in failed.cells])
    assert not (out / "01_data_exploration.ipynb").exists()
    assert sorted(p.name for p in out.iterdir()) == ["01_data_exploration.failed.ipynb"], "a temporary was left"
    pid = int(kernel_pid.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the kernel outlived the runner"


def test_the_runner_temporary_is_not_a_notebook_for_nbval(tmp_path, monkeypatch):
    """Regression (case 15): the temporary papermill executes into was ``.NN.ipynb.xxxx.ipynb``, which
    nbval collects (``pytest --nbval-lax build/reports/quick``) once a killed run leaves it behind."""
    import papermill

    seen = []

    def execute(source, output, **kwargs):
        seen.append(Path(output))
        raise KeyboardInterrupt

    _fake_notebooks(tmp_path)
    _patch_folders(monkeypatch, tmp_path)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    with pytest.raises(KeyboardInterrupt):
        runner.run("quick", progress=False, log=lambda *a: None, pretrain=False)
    (tmp,) = seen
    assert tmp.parent == tmp_path / "out" and tmp.name.startswith(".") and not tmp.name.endswith(".ipynb")
    assert not tmp.exists()


def test_sigterm_is_a_terminated_one_liner_in_any_command(capsys):
    def body():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not interrupt the body")

    old = signal.getsignal(signal.SIGTERM)
    assert run_cli(body, prog="prog", interrupted="kept x") == EXIT_TERMINATED
    assert capsys.readouterr().err == "prog: terminated (SIGTERM); kept x\n"
    assert signal.getsignal(signal.SIGTERM) is old, "the previous handler is restored"


# -- the flaky Ctrl-C test: SIGINT inherited as ignored ------------------------------------------------
def test_ctrl_c_works_in_a_command_started_with_sigint_ignored(tmp_path):
    """Cause of the flaky test_errors.py Ctrl-C test: a process started in the background by a
    non-interactive shell (``pytest ... &`` in a script) inherits SIGINT ignored, and Python keeps
    it so; the child then ignored ``kill -INT`` and the test timed out. The command lines now set
    SIGINT's handler themselves. Reproduced here by starting the child with SIGINT ignored."""
    ready = tmp_path / "ready"
    _fake_notebooks(tmp_path, f"import pathlib, time\npathlib.Path({str(ready)!r}).write_text('x')\ntime.sleep(120)")
    proc = _start_runner(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait_for(ready, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("python -m qinn_lib.reports: interrupted; ")


# -- case 8: negative LHE weights ------------------------------------------------------------------------
def _weighted_lhe(path: Path, weights: list[float]) -> Path:
    """An LHE file of len(weights) synthetic events with these event weights (XWGTUP)."""
    blocks = lhe_sample.events(len(weights), seed=5)
    out = []
    for block, w in zip(blocks, weights):
        head, rest = block.split("\n", 2)[1], block.split("\n", 2)[2]
        fields = head.split()
        fields[2] = f"{w:.6e}"
        out.append(f"<event>\n {' '.join(fields)}\n{rest}")
    path.write_text(lhe_sample.HEAD + "".join(out) + lhe_sample.TAIL)
    return path


def test_negative_lhe_weights_are_refused_naming_the_file_and_the_count(tmp_path):
    """Regression (case 8): an NLO-like file with negative weights was read with a warning on stderr
    only, and its cross-section after the cuts came out wrong; now a DataError names the file and
    how many events have negative weights (nothing cached)."""
    weights = [1.0] * 150 + [-1.0] * 50
    path = _weighted_lhe(tmp_path / "nlo.lhe", weights)
    with pytest.raises(DataError, match=r"nlo.lhe: 50 of 200 events have negative weights"):
        read_lhe(path)
    with pytest.raises(DataError, match=r"nlo.lhe: 50 of 200 events have negative weights"):
        cache.load_lhe_events(path, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("lhe_*")) if (tmp_path / "cache").exists() else True


def test_unequal_positive_weights_give_the_weighted_cross_section_after_cuts(tmp_path):
    """With unequal positive weights, sigma after cuts is sigma * (sum of passing weights) / (sum of
    all weights), not sigma * n_passed / n_read (which the reader gave before)."""
    rng = np.random.default_rng(3)
    weights = list(rng.uniform(0.2, 5.0, size=300))
    path = _weighted_lhe(tmp_path / "w.lhe", weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats, meta = read_lhe(path)
    assert any("event weights differ" in str(w.message) for w in caught)
    same, _ = read_lhe(_weighted_lhe(tmp_path / "u.lhe", [1.0] * 300))
    np.testing.assert_array_equal(feats, same)  # the same events, other weights
    w = np.asarray(weights)
    assert meta["weights_uniform"] is False and meta["n_negative_weights"] == 0
    eff_w = meta["cut_efficiency_weighted"]
    assert 0 < eff_w < 1 and eff_w != pytest.approx(meta["cut_efficiency"], abs=1e-6)
    assert meta["sigma_fiducial_pb"] == pytest.approx(meta["sigma_pb"] * eff_w)
    # the weighted fraction is the passing events' share of the total weight
    n_pass = meta["n_passed"]
    assert min(w) * n_pass / w.sum() <= eff_w <= max(w) * n_pass / w.sum()


def test_a_cached_sample_of_the_old_reader_is_read_again(tmp_path):
    """The old reader cached negative-weight files; such a cache must not bypass the new check."""
    path = _weighted_lhe(tmp_path / "nlo.lhe", [1.0] * 150 + [-1.0] * 50)
    good = _weighted_lhe(tmp_path / "tmp.lhe", [1.0] * 200)
    sample = cache.load_lhe_events(good, cache_dir=tmp_path / "cache")
    # plant the good file's cache under the negative file's hash, as the old reader would have written it
    import hashlib
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    for suffix in (".npz", ".json"):
        src = Path(sample.meta["cache_file"]).with_suffix(suffix)
        record = src.read_bytes()
        if suffix == ".json":
            data = json.loads(record)
            data["meta"].pop("reader_version")
            record = json.dumps(data).encode()
        (tmp_path / "cache" / f"lhe_{digest}{suffix}").write_bytes(record)
    with pytest.raises(DataError, match="negative weights"):
        cache.load_lhe_events(path, cache_dir=tmp_path / "cache")


# -- case 9: QINN_MODELS -----------------------------------------------------------------------------------
def _models_seen(tmp_path, monkeypatch, capsys, argv, models_env=None):
    import papermill

    _fake_notebooks(tmp_path)
    _patch_folders(monkeypatch, tmp_path)
    seen = {}

    def execute(source, output, **kwargs):
        seen["kernel"] = os.environ.get("QINN_MODELS")
        Path(output).write_text(nbformat.writes(nbformat.read(source, as_version=4)))

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(runner, "pretrain_runs", lambda plan, profile, models="shipped", log=print:
                        seen.setdefault("pretrain", models) and set())
    if models_env is None:
        monkeypatch.delenv("QINN_MODELS", raising=False)
    else:
        monkeypatch.setenv("QINN_MODELS", models_env)
    status = runner.main(["--only", "01", "--no-progress", *argv])
    return status, seen, capsys.readouterr()


def test_qinn_models_train_set_by_the_user_is_respected_and_said_first(tmp_path, monkeypatch, capsys):
    """Regression (case 9): QINN_MODELS=train was overridden by the runner ("shipped") without a
    word. Now the kernels and the pre-training get "train", and the first line says so and why."""
    status, seen, out = _models_seen(tmp_path, monkeypatch, capsys, [], models_env="train")
    assert status == 0 and seen == {"kernel": "train", "pretrain": "train"}
    first = out.out.splitlines()[0]
    assert first.startswith("[qinn] models: train (QINN_MODELS=train): shipped models are ignored")


def test_the_default_models_mode_is_said_first(tmp_path, monkeypatch, capsys):
    status, seen, out = _models_seen(tmp_path, monkeypatch, capsys, [])
    assert status == 0 and seen == {"kernel": "shipped", "pretrain": "shipped"}
    assert out.out.splitlines()[0].startswith("[qinn] models: shipped (the default): a shipped model is loaded")


def test_retrain_against_qinn_models_shipped_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    status, seen, out = _models_seen(tmp_path, monkeypatch, capsys, ["--retrain"], models_env="shipped")
    assert status == 2 and seen == {}
    assert out.err.strip() == ("python -m qinn_lib.reports: error: --retrain asks to ignore the shipped models, but "
                               "QINN_MODELS=shipped asks to use them; drop one of the two (unset QINN_MODELS, or "
                               "leave out --retrain)")


# -- case 11 and the environment rule: one line naming the file or variable --------------------------------
def test_an_invalid_notebook_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """Regression (case 11): a notebook in notebooks/ that is not JSON (a merge conflict, a truncated
    save) gave nbformat's NotJSONError as "internal error", exit 1."""
    nb_dir = _fake_notebooks(tmp_path)
    (nb_dir / "02_circuit_and_inverse.ipynb").write_text('{"cells": [ <<<<<<< HEAD')
    _patch_folders(monkeypatch, tmp_path)
    assert runner.main(["--list"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
    assert "02_circuit_and_inverse.ipynb: not a readable notebook (NotJSONError" in err
    assert "restore it" in err


@pytest.mark.parametrize("name, value, message", [
    ("QINN_THREADS", "two", "environment variable QINN_THREADS='two': must be an integer >= 1"),
    ("QINN_THREADS", "0", "environment variable QINN_THREADS='0': must be an integer >= 1"),
    ("QINN_COMPILE", "sometimes", "environment variable QINN_COMPILE='sometimes': must be one of ['auto', 'always', 'never']"),
    ("QINN_PROFILE", "fast", "environment variable QINN_PROFILE='fast': must be one of ['quick', 'paper']"),
    ("QINN_MODELS", "retrain", "environment variable QINN_MODELS='retrain': must be one of ['shipped', 'train']"),
    ("QINN_DASK_SCHEDULER", "not an address", "environment variable QINN_DASK_SCHEDULER='not an address': must be a Dask"),
    ("QINN_EDIT_NOTEBOOKS", "yes", "environment variable QINN_EDIT_NOTEBOOKS='yes': must be one of ['0', '1']"),
])
def test_a_bad_environment_variable_is_one_line_naming_it_before_any_work(name, value, message, tmp_path, monkeypatch,
                                                                         capsys):
    """Regression (case 11 / the environment rule): QINN_THREADS=two or QINN_COMPILE=sometimes raised
    a ValueError (not a QinnError) when first read, deep in a run: "internal error", exit 1, and
    only after the work before it. Now every variable is parsed when a command starts."""
    import papermill

    _fake_notebooks(tmp_path)
    _patch_folders(monkeypatch, tmp_path)
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setenv(name, value)
    assert runner.main(["--only", "01", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m qinn_lib.reports: error: {message}") and len(err.strip().splitlines()) == 1


def test_a_folder_variable_naming_a_file_is_refused_at_start(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "afile"))
    with pytest.raises(env.EnvError, match=r"QINN_RUNS_DIR=.*afile is a file, not a folder"):
        settings.check_environment()


@pytest.mark.parametrize("module, argv", [("qinn_lib.events", ["--n-events", "1000"]), ("qinn_lib.runs", ["qinn"]),
                                          ("qinn_lib.bench", ["--repeats", "1"])])
def test_every_command_checks_the_environment_first(module, argv):
    proc = subprocess.run([PYTHON, "-m", module, *argv], capture_output=True, text=True, timeout=300,
                          env={**ENV, "QINN_COMPILE": "sometimes"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"python -m {module}: error: environment variable QINN_COMPILE='sometimes': must be "
                                   "one of ['auto', 'always', 'never']; set it to such a value or unset it")


def test_every_variable_the_package_reads_is_listed():
    """No module reads a QINN_* variable that qinn_lib.env does not list (and so check)."""
    import re

    names = set()
    for path in (paths.repo_root() / "qinn_lib").rglob("*.py"):
        names |= set(re.findall(r"\"(QINN_[A-Z_]+)\"", path.read_text()))
    assert names <= set(env.VARIABLES), sorted(names - set(env.VARIABLES))


def test_qinn_output_dir_ignored_by_the_runner_is_said(tmp_path, monkeypatch, capsys):
    """Extra fault: QINN_OUTPUT_DIR set by the user was silently replaced by figures/ in the runner."""
    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path / "mine"))
    status, _, out = _models_seen(tmp_path, monkeypatch, capsys, [])
    assert status == 0
    assert out.out.splitlines()[1].startswith("[qinn] QINN_OUTPUT_DIR is not used here: the reports runner writes")


# -- case 16: a short LHE file ------------------------------------------------------------------------------
def test_a_short_lhe_file_names_the_file_and_n_events_on_every_path(tmp_path, monkeypatch, capsys):
    """Case 16: fewer events pass the cuts than a run asks for. The runner (before any notebook),
    the events cache (a notebook or the runs command) and the runs command each name the file and
    n_events."""
    lhe = lhe_sample.write(tmp_path / "short.lhe", 300, seed=2)
    n_pass = cache.load_lhe_events(lhe, cache_dir=tmp_path / "cache").n_events
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=rf"LHE file .*short.lhe: {n_pass} events pass the cuts, fewer than the 1,000 "
                                        r"asked for \(n_events"):
        cache.load_sample(1000, 1, lhe_file=str(lhe))
    _fake_notebooks(tmp_path)
    _patch_folders(monkeypatch, tmp_path)
    assert runner.main(["--only", "01", "--no-progress", "-p", "01", "lhe_file", str(lhe),
                        "-p", "01", "n_events", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m qinn_lib.reports: error: 01_data_exploration.ipynb: LHE file ")
    assert "short.lhe" in err and "n_events" in err and len(err.splitlines()) == 1
    proc = subprocess.run([PYTHON, "-m", "qinn_lib.runs", "qinn", "-p", "lhe_file", str(lhe), "-p", "n_seeds", "1"],
                          capture_output=True, text=True, timeout=300,
                          env={**ENV, "QINN_DATA_DIR": str(tmp_path / "cache"), "QINN_RUNS_DIR": str(tmp_path / "runs")})
    assert proc.returncode == 2, proc.stderr
    assert "short.lhe" in proc.stderr and "n_events" in proc.stderr and "Traceback" not in proc.stderr
    assert "-p all" not in proc.stderr, "extra fault: the runs command was given the reports runner's syntax"
