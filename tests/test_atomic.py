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
