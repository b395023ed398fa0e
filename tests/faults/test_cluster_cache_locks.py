"""Faults of the compile cache, the Dask cluster and the run folders' locks (issue 24, cases 10, 12,
13, 14 and further ones found around them): each reproduces a fault found on main and pins the
fixed behaviour. Real subprocesses, real Dask clusters, real truncated files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from qinn_lib import env, paths, settings
from qinn_lib.errors import run_cli
from qinn_lib.experiments import cluster
from qinn_lib.training.checkpoints import CHECKPOINT_NAME, LOCK_NAME, CheckpointError, RunFolderLocked
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.loop import train

distributed = pytest.importorskip("distributed")

PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
for _name in env.VARIABLES:  # the children see only what a test sets
    ENV.pop(_name, None)


# -- case 10: a truncated compile-cache entry must not change a run's numbers -----------------------
#: A short seeded training whose step goes through qinn_lib.compiling.compiled (the real inductor,
#: a graph small enough to compile cold in ~15 s); prints the weights' bytes and the warnings.
_TRAIN = textwrap.dedent("""
    import json, sys, warnings
    import torch
    from qinn_lib.compiling import compiled

    torch.manual_seed(0)
    torch.set_num_threads(1)
    w = torch.nn.Parameter(torch.randn(8, 8))
    opt = torch.optim.Adam([w], lr=0.05)

    def step(x):
        y = torch.tanh(x @ w).sin() * 1.7
        return (y.exp().log1p() ** 2).mean()

    f = compiled(step, label="toy step")
    g = torch.Generator().manual_seed(1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(30):
            opt.zero_grad()
            f(torch.randn(16, 8, generator=g)).backward()
            opt.step()
    print(json.dumps({"weights": w.detach().numpy().tobytes().hex(), "compiled": f.is_compiled(),
                      "warnings": [str(m.message) for m in seen if "compile" in str(m.message)]}))
""")


def _train_toy(cache: Path) -> dict:
    out = subprocess.run([PYTHON, "-c", _TRAIN], env={**ENV, "TORCHINDUCTOR_CACHE_DIR": str(cache)},
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clean_cache(tmp_path_factory):
    """A compile cache filled by one clean (cold) run, and that run's weights."""
    cache = tmp_path_factory.mktemp("compile") / "cache"
    ref = _train_toy(cache)
    assert ref["compiled"] and not ref["warnings"], ref
    return cache, ref


def _truncated_copy(src: Path, dst: Path, suffix: str) -> int:
    shutil.copytree(src, dst)
    files = [p for p in dst.rglob(f"*{suffix}") if p.is_file()]
    for p in files:
        os.truncate(p, p.stat().st_size // 2)  # what a crash or a full disk mid-copy leaves
    return len(files)


@pytest.mark.parametrize("suffix", [".py", ".so"])
def test_truncated_compile_cache_entry_gives_the_same_weights(clean_cache, tmp_path, suffix):
    """Case 10: truncated generated modules (.py) or kernel libraries (.so, the CPU-ISA probes among
    them) made the compile fail and the step fall back to eager: same seed, other weights (here
    ~1e-7 after 30 steps; 4e-3 after a real training). Now the corrupt entries are removed and the
    graph compiled again: bit-identical weights, one warning naming the cache."""
    cache, ref = clean_cache
    n = _truncated_copy(cache, tmp_path / "cache", suffix)
    assert n > 0, f"no {suffix} file in the compile cache"
    got = _train_toy(tmp_path / "cache")
    assert got["compiled"], got["warnings"]
    assert got["weights"] == ref["weights"], "the weights depend on the compile cache's state"
    assert len(got["warnings"]) == 1 and str(tmp_path / "cache") in got["warnings"][0], got["warnings"]


def test_corrupt_entries_are_found_without_loading_them(tmp_path):
    from qinn_lib import compile_cache

    lib = Path(torch.__file__).parent / "lib"
    so = min((p for p in lib.glob("*.so*") if p.is_file()), key=lambda p: p.stat().st_size)
    (tmp_path / "ab").mkdir()
    good, short = tmp_path / "ab" / "good.so", tmp_path / "ab" / "short.so"
    shutil.copy(so, good)
    short.write_bytes(so.read_bytes()[: so.stat().st_size // 2])
    (tmp_path / "ab" / "ok.py").write_text("def call(args):\n    return args\n")
    (tmp_path / "ab" / "cut.py").write_text("def call(args):\n    return (args\n")
    (tmp_path / "ab" / "kernel.cpp").write_text('extern "C" void kernel() {\n  int a = 1;\n')  # no .so: rebuilt next
    (tmp_path / "ab" / "built.cpp").write_text("void f() {\n")  # its library exists: never read again
    shutil.copy(so, tmp_path / "ab" / "built.so")
    (tmp_path / "fxgraph" / "x").mkdir(parents=True)
    import pickle

    blob = pickle.dumps({"graph": list(range(1000))})
    (tmp_path / "fxgraph" / "x" / "entry").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "fxgraph" / "x" / "whole").write_bytes(blob)
    (tmp_path / "fxgraph" / "x" / ".tmp-being-written").write_bytes(b"\x80")
    quick = {p.name for p in compile_cache.corrupt_entries(tmp_path)}
    assert quick == {"short.so", "kernel.cpp"}, quick
    thorough = {p.name for p in compile_cache.corrupt_entries(tmp_path, thorough=True)}
    assert thorough == {"short.so", "kernel.cpp", "cut.py", "entry"}, thorough
    assert {p.name for p in compile_cache.repair(tmp_path, thorough=True)} == thorough
    assert compile_cache.corrupt_entries(tmp_path, thorough=True) == [] and good.exists()


# -- case 12: user errors fail once with one line; a job killing its workers is one line --------------
_CLI = textwrap.dedent("""
    import os, signal, sys
    from qinn_lib.errors import run_cli
    from qinn_lib.experiments import cluster
    from qinn_lib.training.checkpoints import CheckpointError

    CALLS = "{calls}"

    def user_error(x):
        with open(CALLS, "a") as fh:
            fh.write("call\\n")
        raise CheckpointError(f"checkpoint /runs/{{x}}/checkpoint.pt is corrupted; delete it to start afresh")

    def dies(x):
        os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        fn = user_error if sys.argv[1] == "user" else dies
        sys.exit(run_cli(lambda: cluster.map_jobs(fn, [(7,)], keys=["qinn-seeds-7"]), prog="qinn"))
""")


def _cli(tmp_path: Path, which: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(_CLI.format(calls=tmp_path / "calls.txt"))
    env_ = {**ENV, "QINN_DASK_TIMEOUT": "30"}
    return subprocess.run([PYTHON, str(script), which], env=env_, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_user_error_in_a_dask_job_fails_once_with_one_line(tmp_path):
    """Case 12: a job raising a QinnError ran three times (retries=2) and the workers printed three
    "Compute Failed" dumps; now it runs once and the command prints one line."""
    out = _cli(tmp_path, "user")
    assert out.returncode == 2, out.stderr
    assert (tmp_path / "calls.txt").read_text().count("call") == 1, "a user error was retried"
    assert out.stderr.strip() == ("qinn: error: checkpoint /runs/7/checkpoint.pt is corrupted; delete it to "
                                  "start afresh"), out.stderr


def test_job_whose_workers_keep_dying_is_one_line_naming_it(tmp_path):
    """Case 12: KilledWorker ended in "internal error" (exit 1) after a scheduler log line; now one
    line naming the job, the worker and what to do, exit 2, and the process ends promptly."""
    t0 = time.perf_counter()
    out = _cli(tmp_path, "dies")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "job 'qinn-seeds-7'" in lines[0] and "died 4 times" in lines[0], out.stderr
    assert "tcp://127.0.0.1:" in lines[0] and "run again to resume" in lines[0]
    assert "internal error" not in out.stderr
    assert time.perf_counter() - t0 < 90


@pytest.mark.xfail(strict=False, reason="known open, rarer since session 11's ordered shutdown: under heavy load (a "
                   "concurrent test run, load average ~9 on 2 cores) distributed still printed a line after ours once "
                   "in 5 runs; alone it passed 3 of 3")
def test_job_whose_workers_keep_dying_prints_nothing_after_its_line(tmp_path):
    """Case 12: in about half the runs on a loaded two-core machine, a worker its nanny was
    restarting when the cluster closed printed distributed's 30-line "ConnectionPool is closed"
    traceback after our line (qinn_lib.experiments.dask_worker says why). A race: the test below
    reproduces its cause deterministically."""
    out = _cli(tmp_path, "dies")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("worker_class", ["distributed", "embedded"])
def test_worker_closed_during_its_registration_closes_once(worker_class):
    """The cause of the race above, made deterministic: a worker stopped by its nanny while it was
    registering closes completely, the scheduler's late reply sets it running, and its process
    closes it again on the way out. distributed's Worker then raises "ConnectionPool is closed"
    (multiprocessing printed it); the embedded cluster's worker has nothing left to close."""
    from distributed.core import Status

    from qinn_lib.experiments.dask_worker import OnceClosedWorker

    cls = distributed.Worker if worker_class == "distributed" else OnceClosedWorker

    async def close_twice():
        async with distributed.Scheduler(dashboard_address=":0", port=0) as s:
            w = cls(s.address, nanny="tcp://127.0.0.1:9", nthreads=1, dashboard=False)
            await w
            await w.close(nanny=False, reason="nanny-close")  # the nanny's stop, mid-registration
            w.status = Status.running  # what the registration's late reply does
            try:
                return await w.close()  # the worker process's own close on its way out
            except RuntimeError as exc:
                return exc

    got = asyncio.run(close_twice())
    if worker_class == "distributed":
        assert isinstance(got, RuntimeError) and "ConnectionPool is closed" in str(got), (
            f"distributed's Worker no longer fails here ({got!r}): OnceClosedWorker may be unneeded")
    else:
        assert got is None


# -- case 11 (Ctrl-C at a terminal reaches the whole process group): the workers never see it -------
_MASK = textwrap.dedent("""
    from qinn_lib.experiments import cluster

    def blocked_signals():
        status = open("/proc/self/status").read()
        return int(status.split("SigBlk:")[1].split()[0], 16)

    if __name__ == "__main__":
        print(cluster.map_jobs(blocked_signals, [()])[0], flush=True)
        cluster.close_default_client()
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads a worker's signal mask in /proc")
def test_embedded_workers_never_see_a_ctrl_c(tmp_path):
    """Workers in the command's process group took the terminal's SIGINT: starting ones printed
    KeyboardInterrupt tracebacks, and killed ones left semaphores the resource_tracker warned about."""
    (tmp_path / "s.py").write_text(_MASK)
    out = subprocess.run([PYTHON, str(tmp_path / "s.py")], env=ENV, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    mask = int(out.stdout.strip().splitlines()[-1])
    assert mask & (1 << (signal.SIGINT - 1)), f"SIGINT not blocked in the worker (SigBlk {mask:#x})"
    assert out.stderr.strip() == "", out.stderr


_HELD = textwrap.dedent("""
    import signal
    import sys
    from qinn_lib.experiments import cluster

    # A terminal's Python has Python's own SIGINT handler; a command started in the background by a
    # non-interactive shell inherits SIGINT ignored (Python then installs none), as CI's runner does.
    signal.signal(signal.SIGINT, signal.default_int_handler if sys.argv[1] == "terminal" else signal.SIG_IGN)
    before = signal.getsignal(signal.SIGINT)
    reached = []
    try:
        with cluster._sigint_held_back():
            signal.raise_signal(signal.SIGINT)
            reached.append("the start went on")
    except KeyboardInterrupt:
        print("raised after", reached, signal.getsignal(signal.SIGINT) is before, flush=True)
    else:
        print("never raised", reached, signal.getsignal(signal.SIGINT) is before, flush=True)
""")


@pytest.mark.parametrize("sigint, expected", [("terminal", "raised after ['the start went on'] True"),
                                              ("ignored", "never raised ['the start went on'] True")])
def test_ctrl_c_while_the_embedded_cluster_starts_is_raised_once_it_is_up(tmp_path, sigint, expected):
    """A Ctrl-C that cut the cluster's start short left nannies half-started, and distributed's own
    exit hook printed an AssertionError traceback; now it is held back, then raised.

    In a fresh interpreter, as a command meets it: inside the test process the SIGINT handler is
    whatever the test run inherited: CI starts it with SIGINT ignored, and this test, run in the
    test process, failed there (no KeyboardInterrupt: an ignored Ctrl-C stays ignored, correctly).
    Both starts are tried; with SIGINT ignored the held-back signal is dropped and the disposition
    left as it was."""
    (tmp_path / "held.py").write_text(_HELD)
    out = subprocess.run([PYTHON, str(tmp_path / "held.py"), sigint], env=ENV, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == expected, out.stdout + out.stderr[-2000:]


# -- case 13 and the rule: every network wait has a timeout and names the address ---------------------
@pytest.fixture
def no_worker_scheduler():
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL) as lc:
        yield lc.scheduler_address


def _in_thread(fn, seconds: float):
    """``fn()`` in a daemon thread: (finished, returned or raised) after at most ``seconds``."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["value"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive(), box.get("value")


def test_scheduler_without_workers_is_not_waited_for_forever(no_worker_scheduler, monkeypatch):
    """Case 13: a scheduler with no worker took the jobs and waited forever; now get_client waits
    QINN_DASK_TIMEOUT seconds for a worker and says so, naming the address and the variable."""
    monkeypatch.setenv(cluster.WORKER_TIMEOUT_ENV, "2")
    finished, value = _in_thread(lambda: cluster.map_jobs(pow, [(2, 3)], client=no_worker_scheduler), 30)
    assert finished, "map_jobs still waiting for a worker after 30 s"
    assert isinstance(value, cluster.ClusterError), value
    assert no_worker_scheduler in str(value) and cluster.WORKER_TIMEOUT_ENV in str(value)
    assert "no worker after 2 s" in str(value)


def test_workers_lost_mid_run_end_the_wait_with_a_message(monkeypatch):
    """Further fault: every worker gone while a job waits (a batch system ends them) hung forever;
    now the wait ends after QINN_DASK_TIMEOUT seconds with the scheduler's address."""
    monkeypatch.setenv(cluster.WORKER_TIMEOUT_ENV, "2")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL) as lc, \
            distributed.Client(lc) as client:
        def retire_soon():
            time.sleep(1.0)
            lc.scale(0)

        threading.Thread(target=retire_soon, daemon=True).start()
        finished, value = _in_thread(lambda: cluster.map_jobs(time.sleep, [(3,), (60,)], client=client), 40)
    assert finished, "map_jobs still waiting after its workers were gone for 40 s"
    assert isinstance(value, cluster.ClusterError) and lc.scheduler_address in str(value), value
    assert "no worker for 2 s" in str(value)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_bad_worker_timeout_is_refused_when_the_command_starts(monkeypatch, value):
    """QINN_DASK_TIMEOUT is validated with the other variables, before any work."""
    monkeypatch.setenv(cluster.WORKER_TIMEOUT_ENV, value)
    with pytest.raises(env.EnvError, match=f"QINN_DASK_TIMEOUT={value!r}: must be a number of seconds > 0"):
        settings.check_environment()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:abc", "bogus://127.0.0.1:8786"])
def test_malformed_scheduler_address_is_one_clear_error(address):
    """Further fault: a non-numeric port or an unknown protocol raised a bare ValueError ("internal
    error"); a port out of range waited the whole connect timeout, then said no scheduler answered.
    Now at once a ClusterError naming the address as not usable."""
    t0 = time.perf_counter()
    finished, value = _in_thread(lambda: cluster.get_client(address, timeout=5), 30)
    assert finished and isinstance(value, cluster.ClusterError), repr(value)
    assert f"address {address!r} is not usable" in str(value), value
    assert time.perf_counter() - t0 < 4, "a malformed address was waited for"


def test_malformed_scheduler_address_from_the_environment_is_refused(monkeypatch):
    """Further fault: the library read QINN_DASK_SCHEDULER unparsed (only commands checked it)."""
    monkeypatch.setenv(cluster.SCHEDULER_ENV, "not an address")
    with pytest.raises(env.EnvError, match="QINN_DASK_SCHEDULER='not an address'"):
        cluster.get_client(timeout=2)


def test_embedded_cluster_prints_nothing_when_port_8787_is_taken(tmp_path):
    """Further fault: a second embedded cluster on the machine (port 8787 taken) printed a four-line
    "Port 8787 is already in use" warning in every notebook and command."""
    import socket

    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by someone else: the same situation
        code = ("from qinn_lib.experiments import cluster\n"
                "if __name__ == '__main__':\n"
                "    print(cluster.map_jobs(pow, [(2, 5)]), flush=True)\n"
                "    cluster.close_default_client()\n")
        (tmp_path / "s.py").write_text(code)
        out = subprocess.run([PYTHON, str(tmp_path / "s.py")], env=ENV, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "[32]", out.stderr
    assert "8787" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_script_without_main_guard_gets_one_line_saying_so(tmp_path):
    """Further fault: a script training on the embedded cluster without `if __name__ == "__main__":`
    printed two multiprocessing tracebacks and "internal error: RuntimeError: Nanny failed to start"."""
    code = ("import sys\nfrom qinn_lib.errors import run_cli\nfrom qinn_lib.experiments import cluster\n"
            "sys.exit(run_cli(lambda: cluster.map_jobs(pow, [(2, 5)]), prog='qinn'))\n")
    (tmp_path / "s.py").write_text(code)
    out = subprocess.run([PYTHON, str(tmp_path / "s.py")], env=ENV, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith("qinn: error: cannot start the local Dask cluster")
    assert 'if __name__ == "__main__":' in out.stderr


# -- case 14: reading a finished run needs no exclusive lock ------------------------------------------
class _Objective:
    """A least-squares objective of the trainer's protocol (no Pythia data, no circuit)."""

    def __call__(self, model, x, generator):
        return {"loss": ((model(x) - x.flip(1)) ** 2).mean()}

    def evaluate(self, model, x, generator):
        with torch.no_grad():
            return self(model, x, generator)


def _tiny_run(run_dir: Path, **kw):
    cfg = QINNRunConfig(profile="quick", n_events=1_000, epochs=2, batch_size=32, seed=3)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    x = torch.rand(256, 3, generator=torch.Generator().manual_seed(0))
    return model, train(model, _Objective(), x[:192], x[192:], cfg, run_dir=run_dir, data_fingerprint="toy",
                        progress=False, **kw)


_HOLD = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("holding", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def lock_held_elsewhere():
    procs = []

    def hold(path: Path):
        p = subprocess.Popen([PYTHON, "-c", _HOLD, str(path)], env=ENV, stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "holding"
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def test_finished_run_reloads_while_another_process_holds_its_lock(tmp_path, lock_held_elsewhere):
    """Case 14: reloading a finished run while another process held its lock was refused at once
    (RunFolderLocked, lock timeout 0); a finished run is only read, so it now reloads."""
    model, first = _tiny_run(tmp_path / "run")
    lock_held_elsewhere(tmp_path / "run" / LOCK_NAME)
    again_model, again = _tiny_run(tmp_path / "run")
    assert again.epochs_run == 0 and len(again.history) == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, again_model.state_dict()[k])


def test_unfinished_run_trained_elsewhere_is_still_refused_at_once(tmp_path, lock_held_elsewhere):
    """Further fault tried: two processes training the same unfinished run. The second stops at once
    naming the folder (unchanged, pinned here), and the first one's checkpoint is untouched."""
    _tiny_run(tmp_path / "run", stop_after_epoch=1)
    ckpt = (tmp_path / "run" / CHECKPOINT_NAME).read_bytes()
    lock_held_elsewhere(tmp_path / "run" / LOCK_NAME)
    t0 = time.perf_counter()
    with pytest.raises(RunFolderLocked, match=str(tmp_path / "run")):
        _tiny_run(tmp_path / "run")
    assert time.perf_counter() - t0 < 10
    assert (tmp_path / "run" / CHECKPOINT_NAME).read_bytes() == ckpt


def test_finished_run_in_a_read_only_folder_reloads(tmp_path):
    """Further fault tried: a finished run on a read-only file system (here a read-only folder;
    root ignores permissions, so this test is skipped as root). Reloads, writes nothing."""
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    _tiny_run(tmp_path / "run")
    os.chmod(tmp_path / "run", 0o555)
    try:
        _, again = _tiny_run(tmp_path / "run")
    finally:
        os.chmod(tmp_path / "run", 0o755)
    assert again.epochs_run == 0


def test_corrupted_finished_run_is_still_a_clear_error_without_the_lock(tmp_path, lock_held_elsewhere):
    """Not taking the lock for a finished run must not skip its checks: a flipped byte is still refused."""
    _tiny_run(tmp_path / "run")
    ckpt = tmp_path / "run" / CHECKPOINT_NAME
    blob = bytearray(ckpt.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(blob))
    lock_held_elsewhere(tmp_path / "run" / LOCK_NAME)
    with pytest.raises(CheckpointError, match="sha256"):
        _tiny_run(tmp_path / "run")


def test_run_cli_prints_cluster_errors_in_one_line(capsys):
    def body():
        raise cluster.ClusterError("the Dask scheduler at tcp://h:1 has no worker after 2 s; start one")

    assert run_cli(body, prog="qinn") == 2
    assert capsys.readouterr().err.count("\n") == 1


