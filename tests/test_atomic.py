"""Atomic writes: a failure mid-write keeps the previous file and leaves no temporary behind."""

import pytest

from qinn_lib.atomic import atomic_write, atomic_write_text


def test_write_and_replace(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, lambda fh: fh.write(b"good"))

    def half_then_fail(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_new_file_gets_the_umask_mode_not_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        os.umask(0o002)
        atomic_write_text(tmp_path / "group.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "group.txt").stat().st_mode) == 0o664


def test_replaced_file_keeps_its_mode(tmp_path):
    import os
    import stat

    target = tmp_path / "shared.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_write_failure_is_a_write_error_naming_the_file(tmp_path):
    import errno

    from qinn_lib.atomic import WriteError

    target = tmp_path / "f.bin"
    atomic_write(target, lambda fh: fh.write(b"good"))

    def full(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=rf"^cannot write {target}: No space left on device$") as info:
        atomic_write(target, full)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert target.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_check_writable_names_the_folder_and_the_hint(tmp_path):
    from qinn_lib.atomic import WriteError, check_writable

    assert check_writable(tmp_path / "a" / "b", "runs folder") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == [], "the probe file is removed"
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"the figures folder .*/file is a file, not a folder; move it"):
        check_writable(tmp_path / "file", "figures folder", "move it")
    with pytest.raises(WriteError, match=r"cannot write in the runs folder .*/file/sub: Not a directory"):
        check_writable(tmp_path / "file" / "sub", "runs folder")
