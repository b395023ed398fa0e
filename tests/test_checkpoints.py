"""Checkpoint integrity (sha256 beside every checkpoint), write failures, and the run-folder lock
and writability check (qinn_lib.training.checkpoints, used by qinn_lib.training.loop)."""

import errno
import os
import shutil
import threading

import pytest
import torch
from test_train import AffineFlow, make_cfg, make_data, objective_for, run

from qinn_lib import atomic
from qinn_lib.atomic import WriteError
from qinn_lib.training import checkpoints
from qinn_lib.training.checkpoints import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunFolderLocked,
    load_checkpoint,
    load_trained,
    save_checkpoint,
)
from qinn_lib.training.loop import train


def _flip_a_weight_byte(path, model):
    blob = bytearray(path.read_bytes())
    weights = model.log_scale.detach().numpy().tobytes()
    at = blob.find(weights)
    assert at > 0, "the weight's bytes are stored verbatim in the zip"
    blob[at + 1] ^= 0x01  # one bit of one float: the file still loads, with a wrong weight
    path.write_bytes(bytes(blob))


def test_a_flipped_byte_inside_a_weight_is_refused_naming_the_file(tmp_path):
    model, result = run(tmp_path)  # a finished run
    path = result.checkpoint
    _flip_a_weight_byte(path, model)
    # torch itself loads the damaged file without complaint: the fault this guards against
    assert torch.load(path, weights_only=True)["epoch"] == 3
    with pytest.raises(CheckpointError, match=rf"{path} does not match the sha256 recorded in checkpoint.pt.sha256"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_trained(AffineFlow(), path)
    with pytest.raises(CheckpointError, match="sha256"):  # a finished run is not reloaded from it either
        run(tmp_path)


def test_sha256_file_is_sha256sum_compatible(tmp_path):
    import hashlib

    _, result = run(tmp_path, stop_after_epoch=1)
    line = checkpoints.digest_path(result.checkpoint).read_text()
    assert line == f"{hashlib.sha256(result.checkpoint.read_bytes()).hexdigest()}  {CHECKPOINT_NAME}\n"


def test_checkpoint_without_sha256_file_is_checked_by_its_zip_crcs(tmp_path):
    """Checkpoints written before hashes were stored still load; a flipped weight byte in one is
    caught by the zip entry's CRC-32."""
    _, result = run(tmp_path, stop_after_epoch=1)
    path = result.checkpoint
    checkpoints.digest_path(path).unlink()
    assert load_checkpoint(path)["epoch"] == 1
    model, _ = run(tmp_path)  # resumes, and writes the sha256 from now on
    assert checkpoints.digest_path(path).is_file()
    checkpoints.digest_path(path).unlink()
    _flip_a_weight_byte(path, model)
    with pytest.raises(CheckpointError, match=rf"{path} is corrupted \(CRC mismatch"):
        load_checkpoint(path)


def test_a_crash_between_hash_and_file_leaves_a_loadable_pair(tmp_path, monkeypatch):
    """The new hash is recorded before the file is replaced: a crash in between leaves the old file,
    which must still verify."""
    _, result = run(tmp_path, stop_after_epoch=1)
    path = result.checkpoint
    before = path.read_bytes()
    real = atomic.atomic_write

    def crash_on_checkpoint(target, write):
        if str(target).endswith(CHECKPOINT_NAME):
            raise KeyboardInterrupt  # the process dies right here
        return real(target, write)

    monkeypatch.setattr(checkpoints, "atomic_write", crash_on_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    monkeypatch.setattr(checkpoints, "atomic_write", real)
    assert path.read_bytes() == before
    assert len(checkpoints.digest_path(path).read_text().splitlines()) == 2  # new and current hash
    assert load_checkpoint(path)["epoch"] == 1
    assert run(tmp_path)[1].epochs_run == 2  # and the run resumes from it


def _disk_full_after(monkeypatch, n_ok: int):
    """os.fdopen whose files fail with ENOSPC on write, after ``n_ok`` files were written fine."""
    real = os.fdopen
    count = {"n": 0}

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def fdopen(fd, *args, **kwargs):
        fh = real(fd, *args, **kwargs)
        count["n"] += 1
        return fh if count["n"] <= n_ok else Full(fh)

    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("n_ok", [0, 1])  # the sha256 file or the checkpoint itself hits the full disk
def test_disk_full_while_checkpointing_is_one_error_naming_the_file(tmp_path, monkeypatch, n_ok):
    _, first = run(tmp_path, stop_after_epoch=1)
    path = first.checkpoint
    before = path.read_bytes()
    _disk_full_after(monkeypatch, n_ok)
    with pytest.raises(CheckpointError) as info:
        run(tmp_path)
    monkeypatch.undo()
    msg = str(info.value)
    assert msg.startswith(f"cannot write checkpoint {path}: No space left on device; the previous checkpoint is intact")
    assert "\n" not in msg and info.value.__cause__ is None and info.value.__suppress_context__
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "no temporary left behind"


def test_read_only_run_folder_is_found_before_the_first_epoch(tmp_path, monkeypatch):
    calls = []
    obj = objective_for(make_cfg())

    def counting(model, x, generator):
        calls.append(1)
        return obj(model, x, generator)

    counting.evaluate = obj.evaluate
    real = atomic.create_sibling_temp

    def read_only(path, suffix=".tmp"):
        if (tmp_path / "runs") in path.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, suffix)

    monkeypatch.setattr(atomic, "create_sibling_temp", read_only)
    train_x, val_x = make_data()
    with pytest.raises(WriteError, match=rf"cannot write in the run folder {tmp_path / 'runs' / 'r'}: Permission denied; "
                                         "set QINN_RUNS_DIR"):
        train(AffineFlow(), counting, train_x, val_x, make_cfg(), run_dir=tmp_path / "runs" / "r",
              data_fingerprint="d", progress=False)
    assert calls == [], "nothing was computed"


def test_a_finished_run_in_a_read_only_folder_still_reloads(tmp_path, monkeypatch):
    model, result = run(tmp_path)
    monkeypatch.setattr(atomic, "create_sibling_temp",
                        lambda *a, **k: (_ for _ in ()).throw(PermissionError(errno.EROFS, "Read-only file system")))
    again, reloaded = run(tmp_path)
    assert reloaded.epochs_run == 0 and torch.equal(again.log_scale, model.log_scale)


def test_runs_folder_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    train_x, val_x = make_data()
    with pytest.raises(WriteError, match=r"run folder .*runs/r: Not a directory"):
        train(AffineFlow(), objective_for(make_cfg()), train_x, val_x, make_cfg(), run_dir=tmp_path / "runs" / "r",
              data_fingerprint="d", progress=False)


def test_a_second_trainer_of_the_same_run_folder_is_refused(tmp_path):
    """While one process (here: a thread, which holds its own lock handle) trains a run folder,
    another training of that folder stops at once, naming it; afterwards it reloads the result."""
    started, release = threading.Event(), threading.Event()
    cfg = make_cfg()
    inner = objective_for(cfg)

    def slow(model, x, generator):
        started.set()
        release.wait(30)
        return inner(model, x, generator)

    slow.evaluate = inner.evaluate
    train_x, val_x = make_data()
    errors = []

    def first():
        try:
            train(AffineFlow(), slow, train_x, val_x, cfg, run_dir=tmp_path / "run", data_fingerprint="d", progress=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    assert started.wait(30)
    try:
        with pytest.raises(RunFolderLocked, match=rf"run folder {tmp_path / 'run'} is being trained by another process"):
            train(AffineFlow(), inner, train_x, val_x, cfg, run_dir=tmp_path / "run", data_fingerprint="d", progress=False)
    finally:
        release.set()
        t.join(60)
    assert not errors
    assert train(AffineFlow(), inner, train_x, val_x, cfg, run_dir=tmp_path / "run", data_fingerprint="d",
                 progress=False).epochs_run == 0


def test_a_checkpoint_of_another_model_kind_is_refused(tmp_path):
    from qinn_lib.training.config import INNRunConfig

    _, result = run(tmp_path)  # a QINN-config run
    inn_dir = tmp_path / "inn"
    inn_dir.mkdir()
    for p in (result.checkpoint, checkpoints.digest_path(result.checkpoint)):
        shutil.copy(p, inn_dir / p.name)
    with pytest.raises(CheckpointError, match=r"belongs to a 'qinn' run, not a 'inn' run"):
        load_checkpoint(inn_dir / CHECKPOINT_NAME, expected_cfg=INNRunConfig(profile="quick"))


def test_a_checkpoint_path_that_is_a_folder(tmp_path):
    (tmp_path / CHECKPOINT_NAME).mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)


def test_save_then_load_round_trip_keeps_one_hash(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    for epoch in (1, 2):
        save_checkpoint(path, {"epoch": epoch})
        assert len(checkpoints.digest_path(path).read_text().splitlines()) == 1
    assert torch.load(path, weights_only=True) == {"epoch": 2}


def test_a_lock_left_by_a_killed_trainer_does_not_block(tmp_path):
    """kill -9 of a training process: the kernel releases its lock, so the run simply resumes."""
    import signal
    import subprocess
    import sys

    run(tmp_path, stop_after_epoch=1)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time, filelock; "
                               f"lock = filelock.FileLock({str(tmp_path / 'run' / '.lock')!r}); lock.acquire(); "
                               "print('locked', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderLocked):
            run(tmp_path)
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert run(tmp_path)[1].epochs_run == 2


def test_an_unreadable_sha256_file_is_named(tmp_path):
    _, result = run(tmp_path, stop_after_epoch=1)
    checkpoints.digest_path(result.checkpoint).write_text("not a hash\n")
    with pytest.raises(CheckpointError, match=r"the checksum file checkpoint.pt.sha256 beside checkpoint .* is unreadable"):
        load_checkpoint(result.checkpoint)
