"""Faults of the shipped-model store (issue 24, cases 4, 5, 6 and the shipped part of 11, and
further faults of the store): each reproduces a fault found on main and pins the fixed behaviour.
Interruptions are real: a child process SIGKILLs itself at a patched point of a refresh."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from qinn_lib import env, paths, settings
from qinn_lib.errors import QinnError
from qinn_lib.experiments import one_model, publish, store
from qinn_lib.training.config import QINNRunConfig

PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
for _name in env.VARIABLES:  # the children see only what a test sets
    ENV.pop(_name, None)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(seed: int) -> QINNRunConfig:
    return QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64, seed=seed)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """Finished tiny runs (seeds 5-8) under a runs folder, and a shipped set of set "a" = seeds 5, 6
    and set "b" = seed 7 published from them."""
    root = tmp_path_factory.mktemp("shipped-golden")
    mp = pytest.MonkeyPatch()
    mp.setenv("QINN_DATA_DIR", str(root / "data"))
    mp.setenv("QINN_RUNS_DIR", str(root / "runs"))
    mp.setenv("QINN_SHIPPED_DIR", str(root / "shipped"))
    try:
        publish.refresh({"x": [tiny(5), tiny(6), tiny(7), tiny(8)]}, reuse_runs=True, progress=False, log=quiet)
        shutil.rmtree(root / "shipped")
        publish.refresh({"a": [tiny(5), tiny(6)], "b": [tiny(7)]}, reuse_runs=True, progress=False, log=quiet)
    finally:
        mp.undo()
    assert store.verify(root / "shipped") == []
    return root


@pytest.fixture
def shipped(golden, tmp_path, monkeypatch):
    """A copy of the golden shipped set for one test, the environment pointing at it."""
    folder = tmp_path / "shipped"
    shutil.copytree(golden / "shipped", folder)
    monkeypatch.setenv("QINN_DATA_DIR", str(golden / "data"))
    monkeypatch.setenv("QINN_RUNS_DIR", str(golden / "runs"))
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(folder))
    return folder


def _sets(manifest: dict) -> list[tuple[str, int]]:
    return sorted((e["set"], e["seed"]) for e in manifest["models"].values())


# -- case 4: an interrupted refresh leaves a set that verifies ------------------------------------------
_KILLED_REFRESH = textwrap.dedent("""
    import os, signal, sys
    target, at, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    real, seen = os.replace, [0]
    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(folder) and str(dst).endswith(target):
            seen[0] += 1
            if seen[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)  # a power cut at this point of the refresh
        return real(src, dst, *args, **kwargs)
    os.replace = replace
    from qinn_lib.experiments import publish
    from qinn_lib.training.config import QINNRunConfig
    cfg = lambda s: QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64, seed=s)
    publish.refresh({"a": [cfg(6), cfg(8)]}, reuse_runs=True, progress=False, log=lambda *a: None)
""")


@pytest.mark.parametrize("target, at", [(".pt", 1), (".pt", 2), ("manifest.json", 1)])
def test_a_refresh_killed_at_any_point_leaves_a_set_that_verifies(shipped, golden, target, at):
    """Regression (case 4): refresh deleted the old files of a set first, wrote the new ones, and
    the manifest last; SIGKILLed in between, the folder held neither set (files listed but missing,
    or sha256s that differ). Now the set verifies after a kill anywhere, and is the old set or the
    new one; the next refresh says what it recovered or removed."""
    before = json.loads((shipped / store.MANIFEST_NAME).read_text())
    proc = subprocess.run([PYTHON, "-c", _KILLED_REFRESH, target, str(at), str(shipped)], capture_output=True,
                          text=True, timeout=300, env={**ENV, "QINN_DATA_DIR": str(golden / "data"),
                                                      "QINN_RUNS_DIR": str(golden / "runs"), "QINN_SHIPPED_DIR": str(shipped)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert store.verify(shipped) == [], "the folder holds a complete set after the kill"
    after = store.read_manifest(shipped)
    assert _sets(after) in (_sets(before), [("a", 6), ("a", 8), ("b", 7)]), "the old set or the new one"
    assert one_model.train_qinn(tiny(7), progress=False).shipped, "set b was never touched"
    said: list[str] = []
    publish.refresh({"a": [tiny(6), tiny(8)]}, reuse_runs=True, progress=False, log=said.append)
    assert any(line.startswith("[shipped] ") and ("interrupted refresh" in line) for line in said), said
    assert store.check_set(shipped)[:2] == ([], []), "nothing left over"
    assert sorted(p.name for p in shipped.iterdir() if not p.name.startswith(".")) == sorted(
        [store.MANIFEST_NAME, *store.read_manifest(shipped)["models"]])


def test_a_full_disk_while_staging_keeps_the_old_set_and_no_temporary(shipped, monkeypatch):
    """Regression (case 4, in process): ENOSPC while writing the second new file of a refresh left
    the set's old files deleted and the manifest naming them."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    before = (shipped / store.MANIFEST_NAME).read_bytes()
    with pytest.raises(QinnError, match="No space left on device"):
        publish.refresh({"a": [tiny(6), tiny(8)]}, reuse_runs=True, progress=False, log=quiet)
    assert (shipped / store.MANIFEST_NAME).read_bytes() == before and store.verify(shipped) == []
    assert [p.name for p in shipped.iterdir() if p.name.startswith(".") and p.name != ".lock"] == []


def test_replacing_a_file_of_the_same_name_switches_content_and_manifest_together(shipped, monkeypatch):
    """Same configuration and events, new weights: the file keeps its name. Stopped after the switch
    but before the staged file is renamed (an exception here; a kill is the case above), the set
    is the new one, and verifies."""
    name = next(n for n, e in store.read_manifest(shipped)["models"].items() if e["seed"] == 5)
    real_shippable, real_replace = publish._shippable, os.replace

    def shippable(path):
        ckpt = real_shippable(path)
        ckpt["history"][-1]["note"] = "retrained"  # other bytes, same name
        return ckpt

    def replace(src, dst, *args, **kwargs):
        if str(dst) == str(shipped / name):
            raise KeyboardInterrupt  # Ctrl-C just after the switch
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(publish, "_shippable", shippable)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        publish.refresh({"a": [tiny(5)]}, reuse_runs=True, progress=False, log=quiet)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.verify(shipped) == []
    loaded = one_model.train_qinn(tiny(5), progress=False)
    assert loaded.history[-1].get("note") == "retrained", "the new content is the one served"
    assert _sets(store.read_manifest(shipped)) == [("a", 5), ("b", 7)]
    assert publish.main(["recover"]) == 0
    assert store.check_set(shipped)[:2] == ([], []) and "staged" not in store.read_manifest(shipped)["models"][name]


# -- case 5: weights changed together with their sha256 --------------------------------------------------
def _alter_weights(folder: Path, name: str) -> None:
    """Change an ISP weight of a shipped QINN and write its new sha256 and size into the manifest,
    as a hand-edited or wrongly regenerated set would."""
    path = folder / name
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["isp_weights"] = ckpt["model"]["isp_weights"] + 0.3
    torch.save(ckpt, path)
    manifest = json.loads((folder / store.MANIFEST_NAME).read_text())
    manifest["models"][name].update(sha256=store.file_sha256(path), bytes=path.stat().st_size)
    (folder / store.MANIFEST_NAME).write_text(json.dumps(manifest))


def test_weights_changed_with_their_sha256_are_refused_on_load_and_by_verify(shipped, capsys):
    """Regression (case 5): such a model loaded without a word (the issue: reconstruction 0.077 ->
    0.274). Its outputs on the probe batch no longer match its behavioural fingerprint."""
    name = next(n for n, e in store.read_manifest(shipped)["models"].items() if e["seed"] == 6)
    _alter_weights(shipped, name)
    with pytest.raises(store.ShippedModelError, match=rf"{name} computes other outputs than when it was published"):
        one_model.train_qinn(tiny(6), progress=False)
    assert [p for p in store.verify(shipped) if name in p and "computes other outputs" in p]
    assert publish.main(["verify"]) == 1
    assert one_model.train_qinn(tiny(5), progress=False).shipped, "the other models still load"


def test_the_committed_shipped_models_all_match_their_fingerprints():
    """Every committed model has a behavioural fingerprint, and this machine's torch reproduces it
    (largest deviation well inside the tolerance): what numerical drift across torch versions
    would break."""
    folder = paths.shipped_models_dir()
    manifest = store.read_manifest(folder)
    assert len(manifest["models"]) == 96 and all(e.get("behaviour") for e in manifest["models"].values())
    problems, notes, worst = store.check_set(folder)
    assert problems == [] and notes == [] and worst <= 0.1, (problems, worst)


def test_the_probe_does_not_depend_on_the_thread_count():
    """Same machine, another QINN_THREADS: the same fingerprint (bit for bit after float32 rounding)."""
    from qinn_lib.experiments import probe

    folder = paths.shipped_models_dir()
    entries = store.read_manifest(folder)["models"]
    picked = [next(n for n, e in entries.items() if e["kind"] == kind) for kind in ("qinn", "inn", "reuploading")]
    before = torch.get_num_threads()
    try:
        for name in picked:
            model = store.behaviour_of(folder, name, entries[name])
            torch.set_num_threads(2)
            two = probe.deviation(model, entries[name]["behaviour"])
            torch.set_num_threads(1)
            one = probe.deviation(model, entries[name]["behaviour"])
            assert one <= 0.1 and two <= 0.1, (name, one, two)
    finally:
        torch.set_num_threads(before)


def test_a_model_without_a_fingerprint_is_refused_and_can_be_fingerprinted(shipped, capsys):
    manifest = json.loads((shipped / store.MANIFEST_NAME).read_text())
    name = next(iter(manifest["models"]))
    recorded = manifest["models"][name].pop("behaviour")
    (shipped / store.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert any("has no behavioural fingerprint" in p for p in store.verify(shipped))
    assert publish.main(["fingerprint"]) == 0
    assert store.read_manifest(shipped)["models"][name]["behaviour"] == recorded
    assert "recorded the behavioural fingerprint of 1 shipped model(s)" in capsys.readouterr().out


def test_a_fingerprint_of_an_older_probe_is_refused_by_name_and_re_recorded(shipped, capsys):
    """Version 1 of the probe ran a float32 model in float32; its fingerprints are refused (not
    compared with a float64 evaluation) with a line saying what to run, which re-records them."""
    from qinn_lib.experiments import probe

    manifest = json.loads((shipped / store.MANIFEST_NAME).read_text())
    name = next(iter(manifest["models"]))
    recorded = manifest["models"][name]["behaviour"]
    manifest["models"][name]["behaviour"] = "v1:" + recorded.partition(":")[2]
    (shipped / store.MANIFEST_NAME).write_text(json.dumps(manifest))
    problems = [p for p in store.verify(shipped) if name in p]
    assert problems and f"older version of the probe (v1, this is v{probe.VERSION})" in problems[0], problems
    assert "shipped fingerprint" in problems[0]
    assert publish.main(["fingerprint"]) == 0
    assert store.read_manifest(shipped)["models"][name]["behaviour"] == recorded
    assert store.verify(shipped) == []


def test_the_probe_evaluates_a_float64_copy_and_leaves_the_model_alone():
    """The fingerprint is of the weights, not of the CPU's float32 rounding (probe version 2): the
    float32 model's own outputs differ from the fingerprint's float64 ones by float32 rounding,
    and the model keeps its precision, mode and weights."""
    from qinn_lib.experiments import probe

    folder = paths.shipped_models_dir()
    entries = store.read_manifest(folder)["models"]
    name = next(n for n, e in entries.items() if e["kind"] == "inn")
    model = store.behaviour_of(folder, name, entries[name]).train()
    assert next(model.parameters()).dtype == torch.float32
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = probe.outputs(model)
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    x = probe._inputs(probe.N_FEATURES)[0].float()
    with torch.no_grad():
        z32 = model.eval().forward_and_logdet(x)[0].double().reshape(-1).numpy()
    gap = abs(z32 - ref[:z32.size]).max()
    assert 0 < gap < 1e-3, gap  # float32 rounding: present, and small


# -- case 6 and the environment rule: relative folders mean the start folder --------------------------------
_GRANDCHILD = "from qinn_lib.experiments import store; from qinn_lib import paths; print(store.shipped_dir(), paths.runs_dir())"
_CHILD_STARTS_KERNEL = textwrap.dedent(f"""
    import subprocess, sys
    from qinn_lib import paths, settings
    settings.check_environment()  # what every command does first
    # a notebook kernel: papermill starts it in notebooks/
    sys.stdout.write(subprocess.run([sys.executable, "-c", {_GRANDCHILD!r}], cwd=str(paths.notebooks_dir()),
                                    capture_output=True, text=True, check=True).stdout)
""")


def test_a_relative_shipped_dir_means_the_folder_where_the_command_was_started(shipped, tmp_path):
    """Regression (case 6): QINN_SHIPPED_DIR=shipped was resolved in the kernel's notebooks/, where
    no models are, and the notebook silently trained for 200 epochs. Now the command makes it
    (and QINN_RUNS_DIR etc.) absolute against the folder it was started in, for all it starts."""
    proc = subprocess.run([PYTHON, "-c", _CHILD_STARTS_KERNEL], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**ENV, "QINN_SHIPPED_DIR": "shipped", "QINN_RUNS_DIR": "my-runs"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(shipped), str(tmp_path / "my-runs")]


def test_the_reports_runner_hands_its_kernels_absolute_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QINN_SHIPPED_DIR", "shipped")
    monkeypatch.setenv("QINN_DATA_DIR", "~/events")
    kernel = settings.runner_environment("quick")
    assert kernel["QINN_SHIPPED_DIR"] == str(tmp_path / "shipped")
    assert kernel["QINN_DATA_DIR"] == str(Path("~/events").expanduser())


def test_every_relative_folder_variable_is_made_absolute_at_command_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in settings.FOLDER_VARIABLES:
        monkeypatch.setenv(name, f"rel/{name.lower()}")
    settings.check_environment()
    assert {name: os.environ[name] for name in settings.FOLDER_VARIABLES} == {
        name: str(tmp_path / "rel" / name.lower()) for name in settings.FOLDER_VARIABLES}
    assert paths.runs_dir() == tmp_path / "rel" / "qinn_runs_dir" and paths.output_dir() == tmp_path / "rel" / "qinn_output_dir"


# -- case 11: the shipped command's errors are one line, with the common exit statuses ------------------------
def test_shipped_model_error_is_a_qinn_error():
    assert issubclass(store.ShippedModelError, QinnError)


def _workers_in_group(pgid: int) -> int:
    """Dask worker processes (multiprocessing children) in process group ``pgid``."""
    n = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        n += int(fields[2]) == pgid and b"spawn_main" in cmd
    return n


def _ctrl_c_during_refresh(tmp_path, *, workers_running: bool = False):
    env_ = {**ENV, "QINN_DATA_DIR": str(tmp_path / "data"), "QINN_RUNS_DIR": str(tmp_path / "runs"),
            "QINN_SHIPPED_DIR": str(tmp_path / "shipped")}
    proc = subprocess.Popen([PYTHON, "-m", "qinn_lib.shipped", "refresh", "--only", "qinn-mse", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_, start_new_session=True)
    time.sleep(12)  # imports, then the events are generated / training starts
    if workers_running:  # wait until the Dask workers exist and train (bounded), as in a real Ctrl-C
        deadline = time.monotonic() + 90
        while _workers_in_group(proc.pid) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert _workers_in_group(proc.pid) >= 2, "the refresh started no Dask workers"
        time.sleep(6)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err, [line for line in err.strip().splitlines() if line.strip()]


def test_ctrl_c_during_refresh_is_one_line_and_exit_130(tmp_path):
    """Regression (case 11): Ctrl-C during `shipped refresh` printed four tracebacks. The whole
    process group gets the SIGINT, as from a terminal."""
    code, err, lines = _ctrl_c_during_refresh(tmp_path)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert lines[0].startswith("python -m qinn_lib.shipped: interrupted; the shipped set was left complete"), err[-3000:]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes in /proc")
def test_ctrl_c_during_refresh_prints_nothing_else(tmp_path):
    """Case 11: a Ctrl-C while the Dask workers trained reached them too (the terminal signals the
    whole process group): workers starting printed KeyboardInterrupt tracebacks, and the
    resource_tracker warned about the semaphores of the workers the nannies then had to SIGKILL.
    Now the workers never see SIGINT and the tracker removes those semaphores without a word."""
    code, err, lines = _ctrl_c_during_refresh(tmp_path, workers_running=True)
    assert code == 130, err[-3000:]
    assert len(lines) == 1, err[-3000:]


def test_a_shipped_error_at_the_command_line_is_one_line_exit_2(shipped, capsys):
    (shipped / store.MANIFEST_NAME).write_text('{"format": 1, "models": {"x.pt": {"key": "qinn-1"}}}')
    assert publish.main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"python -m qinn_lib.shipped: error: shipped-model manifest {shipped / store.MANIFEST_NAME}: "
                           "entry models.x.pt has no valid field 'kind'; restore the file (git checkout, or reinstall "
                           "the package)")


# -- further faults of the store ------------------------------------------------------------------------------
def test_a_manifest_entry_without_its_sha256_names_the_entry(shipped):
    """Extra fault: an entry lacking a field gave a KeyError traceback in verify and on load."""
    manifest = json.loads((shipped / store.MANIFEST_NAME).read_text())
    name = next(iter(manifest["models"]))
    del manifest["models"][name]["sha256"]
    (shipped / store.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(store.ShippedModelError, match=rf"entry models\.{name} has no valid field 'sha256'"):
        store.verify(shipped)
    assert publish.main(["verify"]) == 2


def test_a_shipped_folder_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    """Extra fault: refresh trained for hours in a temporary folder, then failed to write the shipped
    folder and deleted the temporary folder with the training."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(tmp_path / "afile" / "shipped"))
    monkeypatch.setattr(publish, "train_fresh", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(QinnError, match=r"shipped-models folder .*afile/shipped.*set QINN_SHIPPED_DIR to a writable folder"):
        publish.refresh({"a": [tiny(5)]}, progress=False, log=quiet)


def test_a_shipped_dir_without_a_manifest_is_said(tmp_path, monkeypatch):
    """Extra fault: QINN_SHIPPED_DIR naming an empty (or mistyped) folder made every notebook train
    silently."""
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(tmp_path / "typo"))
    with pytest.warns(UserWarning, match=r"no shipped models: .*typo holds no manifest.json"):
        assert store.find(tiny(5)) is None


def test_an_interrupted_copy_of_a_shipped_journal_leaves_no_partial_journal(tmp_path, monkeypatch):
    """Extra fault: copying the shipped search journal to build/search wrote in place; interrupted,
    it left a partial journal there, which the torn-tail repair then reads as a shorter study."""
    src = tmp_path / "shipped" / "search" / "s.journal"
    src.parent.mkdir(parents=True)
    src.write_bytes(b'{"op_code": 0}\n' * 1000)
    entry = {"file": "search/s.journal", "sha256": store.file_sha256(src), "folder": str(tmp_path / "shipped")}

    def half(*args, **kwargs):
        fsrc, fdst = args[:2]
        if isinstance(fsrc, (str, os.PathLike)):
            Path(fdst).write_bytes(Path(fsrc).read_bytes()[:100])
        else:
            fdst.write(fsrc.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", half)
    monkeypatch.setattr(shutil, "copyfileobj", half)
    dest = tmp_path / "build" / "search" / "s.journal"
    with pytest.raises(QinnError, match="No space left on device"):
        store.copy_search(entry, dest)
    assert not dest.exists() and not list(dest.parent.glob(".*"))
