"""Fault injection (issue 24): the search journals, the figures, figures/ provenance, results.json,
the writability of output folders, and the rule that every file the package writes is written
atomically. Each test reproduces its fault first (it fails on the code before the fix)."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
distributed = pytest.importorskip("distributed")

from optuna.trial import TrialState  # noqa: E402

from qinn_lib import paths  # noqa: E402
from qinn_lib.errors import QinnError  # noqa: E402
from qinn_lib.experiments import search, store  # noqa: E402
from qinn_lib.training.config import QINNRunConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BASE = QINNRunConfig(profile="quick", epochs=1, n_events=8000)
SHIPPED_STUDY = "qinn2k-paper-24f782f47a501bc9-s1234"


def toy_job(cfg_dict, env, seed, n_generate):
    """Stands in for a training: a cheap deterministic function of the trial's config."""
    return {"recon_mean": (math.log10(cfg_dict.get("lambda_inv", 10.0)) - 1.5) ** 2 + 0.01,
            "js/m_ll": cfg_dict.get("lambda_mz", 0.375) ** 0.5}


@pytest.fixture
def client():
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _open(path: Path, name: str, said: list | None = None):
    """``search.open_study`` (its ``log`` argument exists since the fix; the test runs before it too)."""
    import inspect

    log = {"log": said.append if said is not None else None}
    return search.open_study(path, name, 0, **(log if "log" in inspect.signature(search.open_study).parameters else {}))


def _finished(name: str, said: list) -> int:
    import inspect

    log = {"log": said.append} if "log" in inspect.signature(search.finished_trials).parameters else {}
    return search.finished_trials(name, **log)


def _complete(study) -> int:
    return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def _fill(name: str, n: int) -> Path:
    """A journal of ``n`` finished toy trials (no Dask: ask/tell by hand)."""
    path = search.study_path(name)
    study = _open(path, name)
    for _ in range(n):
        trial = study.ask()
        cfg = search.suggest_config(trial, BASE)
        study.tell(trial, [toy_job(cfg.to_dict(), None, 0, None)[k] for k in search.OBJECTIVES])
    return path


# -- case 1: a torn last record ---------------------------------------------------------------------
def test_a_journal_truncated_mid_record_is_repaired_and_the_search_resumes(runs, client):
    path = _fill("torn", 3)
    data = path.read_bytes()
    path.write_bytes(data[:-25])  # the state a write cut short leaves: the last record has no end
    said = []
    study = search.run_search(BASE, n_trials=5, name="torn", client=client, job=toy_job, log=said.append)
    assert _complete(study) == 5
    # the next session reads the whole study (before the fix: "Invalid log format", for good)
    again = _open(path, "torn", said)
    assert _complete(again) == 5 and path.read_bytes().endswith(b"\n")
    assert any("torn" in m and "kept in" in m for m in said), said
    backups = list(path.parent.glob("torn.journal.torn-*"))
    assert len(backups) == 1 and data[:-25].endswith(backups[0].read_bytes())


def test_a_search_killed_mid_append_resumes(runs, client):
    """A subprocess writes half a record and is SIGKILLed (the write patched at the file level)."""
    path = _fill("killed", 2)
    script = textwrap.dedent("""
        import builtins, os, signal
        from qinn_lib.experiments import search
        from qinn_lib.training.config import QINNRunConfig
        study = search.open_study(search.study_path("killed"), "killed", 0)
        trial = study.ask()
        search.suggest_config(trial, QINNRunConfig(profile="quick", epochs=1, n_events=8000))
        real_open = builtins.open

        class Torn:
            def __init__(self, fh): self.fh = fh
            def write(self, data):
                self.fh.write(data[: len(data) // 2]); self.fh.flush(); os.kill(os.getpid(), signal.SIGKILL)
            def __getattr__(self, name): return getattr(self.fh, name)
            def __enter__(self): return self
            def __exit__(self, *exc): self.fh.close()

        def torn_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            return Torn(fh) if str(file).endswith(".journal") and "a" in mode else fh

        builtins.open = torn_open
        study.tell(trial, [0.5, 0.5])
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not path.read_bytes().endswith(b"\n")  # the fault happened: a torn tail
    said = []
    study = search.run_search(BASE, n_trials=4, name="killed", client=client, job=toy_job, log=said.append)
    assert _complete(study) == 4
    assert _complete(_open(path, "killed")) == 4
    assert any("repaired" in m for m in said), said


def test_a_full_disk_during_an_append_leaves_no_torn_record(runs, monkeypatch):
    path = _fill("full", 2)
    before = path.read_bytes()
    study = _open(path, "full")
    trial = study.ask()
    search.suggest_config(trial, BASE)
    import builtins

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 3])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def full_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return Full(fh) if str(file) == str(path) and "a" in mode else fh

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(OSError):
        study.tell(trial, [0.5, 0.5])
    monkeypatch.setattr(builtins, "open", real_open)
    assert path.read_bytes().startswith(before) and path.read_bytes().endswith(b"\n")
    # the disk has room again: the same process (and a new one) go on with a readable study
    fresh = _open(path, "full")
    t = fresh.ask()
    search.suggest_config(t, BASE)
    fresh.tell(t, [0.1, 0.2])
    assert _complete(_open(path, "full")) == 3


def test_a_record_glued_onto_a_torn_one_is_recovered(runs):
    """A journal an older version damaged: a torn record with the next record appended onto it."""
    path = _fill("glued", 3)
    lines = path.read_bytes().split(b"\n")
    last = lines[-2]
    glued = b"\n".join([*lines[:-2], last[:-9] + last, b""])  # torn copy, then the whole record, on one line
    path.write_bytes(glued)
    said = []
    study = _open(path, "glued", said)
    assert _complete(study) == 3
    assert any("separated" in m for m in said), said


def test_a_journal_line_that_is_no_record_names_the_file_and_line(runs):
    path = _fill("bad", 2)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"garbage that is not json"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(QinnError, match=r"bad\.journal, line 2: not a journal record"):
        _open(path, "bad")


# -- case 7: an empty journal ---------------------------------------------------------------------------
def test_an_empty_journal_does_not_drop_the_shipped_trials(runs, client):
    entry = store.find_search(SHIPPED_STUDY)
    assert entry is not None and entry["finished"] == 8
    path = search.study_path(SHIPPED_STUDY)
    path.write_bytes(b"")  # a search stopped before its first record
    said = []
    assert _finished(SHIPPED_STUDY, said) == 8
    assert any("is empty" in m and "treated as absent" in m for m in said), said
    calls = []

    def job(*args):
        calls.append(args)
        return toy_job(*args)

    study = search.run_search(BASE, n_trials=8, name=SHIPPED_STUDY, client=client, job=job, log=said.append)
    assert search.finished_count(study) == 8 and not calls  # before the fix: 0 trials, and 8 trained anew
    assert any("started from the shipped journal" in m for m in said), said


def test_a_journal_holding_only_a_torn_record_counts_as_absent(runs):
    path = search.study_path(SHIPPED_STUDY)
    path.write_bytes(b'{"op_code":0,"worker_id":"x","study_na')
    said = []
    assert _finished(SHIPPED_STUDY, said) == 8
    assert any("torn" in m for m in said) and any("is empty" in m for m in said), said


# -- case 17: the search journal folder is checked up front ---------------------------------------------
def _deny_writes_under(monkeypatch, folder: Path) -> None:
    """A read-only folder, also for root (the tests may run as root): creating a file in it fails."""
    real_open = os.open

    def ro_open(file, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(file).startswith(str(folder)):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)


def test_a_read_only_search_folder_is_named_before_any_trial(runs, monkeypatch):
    (runs / "search").mkdir()
    _deny_writes_under(monkeypatch, runs / "search")
    with pytest.raises(QinnError, match=r"search journal folder .*/search: Permission denied; set QINN_RUNS_DIR"):
        search.study_path("x")


def test_a_search_folder_that_is_a_file_is_named(runs):
    (runs / "search").write_text("not a folder")
    with pytest.raises(QinnError, match=r"search journal folder .*search is a file"):
        search.study_path("x")


# -- case 2: a figure write that fails midway ---------------------------------------------------------
def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_a_figure_write_that_fails_midway_leaves_the_old_figure(tmp_path, monkeypatch):
    import io

    import matplotlib.figure

    from qinn_lib.notebook import plots

    fig = _figure()
    old = {p.suffix: p.read_bytes() for p in plots.save(fig, "01_demo", tmp_path)}
    real = matplotlib.figure.Figure.savefig

    def half_then_full_disk(self, target, *args, **kwargs):
        buf = io.BytesIO()
        real(self, buf, *args, **{"format": Path(str(target)).suffix[1:] or "png", **kwargs})
        data = buf.getvalue()[: len(buf.getvalue()) // 2]
        if isinstance(target, (str, os.PathLike)):
            Path(target).write_bytes(data)
        else:
            target.write(data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_full_disk)
    fig.axes[0].plot([0, 1], [0, 1])
    with pytest.raises(OSError, match=r"01_demo\.pdf.*No space left"):
        plots.save(fig, "01_demo", tmp_path)
    assert {p.suffix: p.read_bytes() for p in tmp_path.glob("01_demo.*")} == old  # before the fix: half a PDF
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left


# -- case 3: figures/ mixes runs ------------------------------------------------------------------------
def test_every_figure_records_its_run(tmp_path):
    from qinn_lib.notebook import plots, profiles

    cfg = profiles.notebook_config(QINNRunConfig, {**{n: getattr(QINNRunConfig(), n) for n in QINNRunConfig.field_names()
                                                      if n != "profile"}, "seed": 8}, log=lambda m: None)
    plots.save(_figure(), "03_demo", tmp_path)
    manifest = json.loads((tmp_path / "figures.json").read_text())
    for name in ("03_demo.pdf", "03_demo.png"):
        entry = manifest[name]
        assert entry["notebook"] == "03" and entry["seed"] == 8 and entry["parameters"] == {"seed": 8}
        assert entry["fingerprint"] == cfg.fingerprint() and entry["config"] == "QINNRunConfig"
        assert entry["written"].endswith("Z")


def test_a_failing_report_leaves_the_published_figures_as_they_were(tmp_path, monkeypatch):
    """The reports runner with papermill replaced: the 'kernel' saves a figure, then a cell fails."""
    import papermill

    from qinn_lib.notebook import plots, runner

    figs, reports = tmp_path / "figs", tmp_path / "reports"
    monkeypatch.setattr(paths, "figures_dir", lambda profile="paper": figs)
    monkeypatch.setattr(paths, "reports_dir", lambda profile: reports)
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "data"))
    try:
        from qinn_lib.notebook import provenance

        monkeypatch.setattr(provenance, "failed_figures_dir", lambda nb: tmp_path / "failed" / nb)
    except ImportError:  # before the fix
        pass
    good = plots.save(_figure(), "01_features", figs)
    before = {p.name: p.read_bytes() for p in good}

    def kernel(source, output, **kwargs):
        fig = _figure()
        fig.axes[0].set_title("a run that fails")
        plots.save(fig, "01_features")
        raise papermill.PapermillExecutionError(3, 3, "x = 1", "ValueError", "bad", [])

    monkeypatch.setattr(papermill, "execute_notebook", kernel)
    said = []
    with pytest.raises(QinnError, match="01_data_exploration.ipynb failed in cell 3"):
        runner.run("quick", only=["01"], progress=False, pretrain=False, log=said.append)
    assert {p.name: p.read_bytes() for p in good} == before  # before the fix: the failed run's figure
    assert not list(figs.glob(".staging-*"))
    kept = tmp_path / "failed" / "01_data_exploration"
    assert (kept / "01_features.png").is_file() and (kept / "figures.json").is_file()
    assert any("did not finish" in m for m in said), said

    # the same run succeeding publishes its figures, with their provenance
    def kernel_ok(source, output, **kwargs):
        fig = _figure()
        fig.axes[0].set_title("the run that succeeds")
        plots.save(fig, "01_features")
        Path(output).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", kernel_ok)
    runner.run("quick", only=["01"], progress=False, pretrain=False, log=said.append)
    assert {p.name: p.read_bytes() for p in good} != before
    assert set(json.loads((figs / "figures.json").read_text())) >= {"01_features.png", "01_features.pdf"}
    assert not list(figs.glob(".staging-*"))


# -- case 17: the compile cache folder ----------------------------------------------------------------
def test_a_read_only_compile_cache_folder_falls_back_with_a_warning(tmp_path, monkeypatch):
    from qinn_lib import compiling

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(compiling, "repo_root", lambda: tmp_path)
    (tmp_path / "build").write_text("a file where the build folder should be")
    with pytest.warns(compiling.CompileFallbackWarning, match=r"compile cache folder .*build/torch_compile_cache"):
        compiling._set_cache_dir()  # before the fix: NotADirectoryError out of the fallback
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


# -- results.json and the README: extra faults ------------------------------------------------------------
@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path))
    return tmp_path


def _section_03(**changes):
    from qinn_lib.evaluation.results import SECTION_SCHEMAS

    values = {k.rstrip("?"): {"int": 1, "number": 0.5, "str": "x"}[v] for k, v in SECTION_SCHEMAS["03_isp_training"].items()}
    return {**values, **changes}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_number_is_never_recorded_for_the_readme(results_dir, bad):
    from qinn_lib.evaluation import results

    with pytest.raises(QinnError, match=r"section '03_isp_training', key 'recon_mean' must be a finite number"):
        results.record("03_isp_training", _section_03(recon_mean=bad))
    assert not (results_dir / "results.json").exists()  # before the fix: NaN written, and shown in the README


def test_a_readme_that_would_show_nan_is_left_unchanged(tmp_path, monkeypatch):
    from qinn_lib.notebook import readme

    (tmp_path / "README.md").write_text(f"head\n{readme.README_START}\nold\n{readme.README_END}\n")
    (tmp_path / "figures").mkdir()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(readme, "render_results", lambda results: "| recon | nan |")
    (tmp_path / "figures" / "results.json").write_text(json.dumps({"schema_version": 1, "other": {"a": 1}}))
    with pytest.raises(QinnError, match="not a finite number"):
        readme.update_readme("paper")
    assert "old" in (tmp_path / "README.md").read_text()


def test_a_truncated_results_file_is_named_and_kept(results_dir):
    from qinn_lib.evaluation import results

    results.record("03_isp_training", _section_03())
    text = (results_dir / "results.json").read_text()
    (results_dir / "results.json").write_text(text[: len(text) // 2])
    with pytest.raises(QinnError, match=r"results\.json: not valid JSON.*restore it"):
        results.record("01_other", {"a": 1})
    assert (results_dir / "results.json").read_text() == text[: len(text) // 2]  # nothing overwritten


def test_a_full_disk_while_writing_results_keeps_the_old_file(results_dir, monkeypatch):
    from qinn_lib import atomic
    from qinn_lib.evaluation import results

    results.record("03_isp_training", _section_03())
    before = (results_dir / "results.json").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(QinnError, match=r"results\.json.*No space left"):
        results.record("01_other", {"a": 1})
    monkeypatch.undo()
    assert (results_dir / "results.json").read_bytes() == before
    assert not [p for p in results_dir.iterdir() if p.name.endswith(".tmp")]


def test_two_processes_recording_at_once_lose_no_section(results_dir):
    script = textwrap.dedent("""
        import sys
        from qinn_lib.evaluation import results
        for i in range(15):
            results.record(f"{sys.argv[1]}_{i}", {"i": i})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name], env=dict(os.environ), cwd=REPO)
             for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    data = json.loads((results_dir / "results.json").read_text())
    assert {f"{n}_{i}" for n in "ab" for i in range(15)} <= set(data)


def test_a_read_only_figures_folder_is_named(tmp_path, monkeypatch):
    from qinn_lib.notebook import plots

    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path / "figs"))
    (tmp_path / "figs").mkdir()
    _deny_writes_under(monkeypatch, tmp_path / "figs")
    with pytest.raises(QinnError, match=r"cannot write .*figs/01_demo\.pdf: Permission denied"):
        plots.save(_figure(), "01_demo")


# -- the general rule: every file the package writes is written atomically -----------------------------------
#: Calls that write a file, found by the scan below: (file, call) -> (how many, why it is allowed).
#: A stale entry (the call is gone) fails too, so the list stays exact.
ALLOWED_WRITES = {
    ("qinn_lib/atomic.py", "os.open"): (2, "the atomic writer's own temporary; its folder, read-only, to fsync the rename"),
    ("qinn_lib/notebook/lab.py", "save"): (1, "Jupyter's contents manager saving a notebook the user edits (its own write)"),
    ("qinn_lib/notebook/provenance.py", "shutil.move"): (1, "a failed notebook's staging folder renamed whole"),
    ("qinn_lib/training/checkpoints.py", "torch.save"): (1, "into a memory buffer; the bytes go through atomic_write"),
    ("qinn_lib/events/cache.py", "np.savez"): (1, "into the handle of an atomic write"),
    ("qinn_lib/notebook/plots.py", "savefig"): (1, "into the handle of an atomic write"),
    ("qinn_lib/notebook/widgets.py", "savefig"): (1, "into a memory buffer (a PNG for a widget)"),
    ("qinn_lib/experiments/journal.py", "open"): (2, "the append-only Optuna journal: a torn tail is repaired"),
    ("qinn_lib/hardware/ibm/sampler.py", "np.save"): (1, "into a memory buffer; the bytes go through atomic_write"),
    ("qinn_lib/notebook/book.py", "shutil.copy2"): (1, "MathJax into the build; its stamp is written after the copy, "
                                                       "so an interrupted copy is redone"),
    ("qinn_lib/notebook/serving.py", "open"): (1, "the app server's log, streamed while it runs (not a result)"),
    ("qinn_lib/experiments/publish.py", "shutil.copyfileobj"): (1, "into a staged file of the shipped store's "
                                                                    "transaction (qinn_lib.experiments.swap)"),
    ("qinn_lib/experiments/publish.py", "torch.save"): (1, "into a staged file of the shipped store's transaction"),
    ("qinn_lib/experiments/store.py", "shutil.copyfileobj"): (1, "into the handle of an atomic write"),
    ("qinn_lib/experiments/swap.py", "open"): (1, "the shipped folder's lock file (no content)"),
}
_WRITE_CALLS = {"write_text", "write_bytes", "savefig", "to_csv", "to_parquet", "save", "savez", "savez_compressed",
                "savetxt", "tofile", "dump", "copy", "copy2", "copyfile", "copyfileobj", "move", "to_file"}


def _write_calls(source: str) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        full = f"{owner}.{name}" if owner in ("os", "np", "torch", "json", "shutil", "pickle") else name
        if name == "open" and owner in ("", "io", "gzip", "builtins"):
            modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
            if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                found.append("open")
        elif full == "os.open":
            found.append(full)
        elif name in _WRITE_CALLS and full not in ("json.dumps",) and not (name == "dump" and owner not in ("json", "pickle")):
            if name in ("copy", "move") and owner != "shutil":
                continue
            found.append(full)
    return found


def test_the_package_writes_every_file_atomically():
    seen: dict[tuple[str, str], int] = {}
    for path in sorted((REPO / "qinn_lib").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for call in _write_calls(path.read_text(encoding="utf-8")):
            seen[(rel, call)] = seen.get((rel, call), 0) + 1
    unexpected = {k: n for k, n in seen.items() if k not in ALLOWED_WRITES or ALLOWED_WRITES[k][0] != n}
    stale = [k for k in ALLOWED_WRITES if k not in seen]
    assert not unexpected, (f"non-atomic writes (use qinn_lib.atomic.atomic_write / atomic_write_text, or add an "
                            f"entry with its reason to ALLOWED_WRITES): {unexpected}")
    assert not stale, f"ALLOWED_WRITES lists calls that are gone; remove them: {stale}"
