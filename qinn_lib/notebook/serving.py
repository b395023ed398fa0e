"""Serving the app (:mod:`qinn_lib.notebook.app`) with Voila: the command line, and a server
for the duration of a block (the browser tests and the book's stills use it)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from qinn_lib import paths
from qinn_lib.errors import QinnError

NOTEBOOK = "explore.ipynb"


class AppError(QinnError):
    """The app cannot start; the message names the file, the port or the missing package."""


def notebook_path() -> Path:
    return paths.notebooks_dir() / NOTEBOOK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voila_command(port: int, *, ip: str = "127.0.0.1", browser: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``voila`` command line serving the app (preheated kernel, as ``voila.json`` says)."""
    exe = Path(sys.executable).with_name("voila")
    voila = str(exe) if exe.exists() else shutil.which("voila")
    if voila is None:
        raise AppError("the app needs voila: pip install -e '.[app]'")
    cmd = [voila, str(notebook_path()), f"--port={port}", f"--Voila.ip={ip}",
           "--preheat_kernel=True", "--pool_size=1", "--VoilaKernelManager.fill_delay=0"]
    if not browser:
        cmd.append("--no-browser")
    return cmd + list(extra)


def wait_until_up(port: int, proc: subprocess.Popen | None = None, *, timeout: float = 120.0) -> float:
    """Seconds until the server accepts connections on ``port``; :class:`AppError` if it exits or
    ``timeout`` passes. Only a TCP connection: a page request would take (or start) a kernel."""
    start = time.monotonic()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return time.monotonic() - start
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise AppError(f"voila exited with status {proc.returncode} before listening on port {port}") from None
            if time.monotonic() - start > timeout:
                raise AppError(f"voila did not listen on port {port} within {timeout:.0f} s") from None
            time.sleep(0.3)


@contextlib.contextmanager
def serve(*, port: int | None = None, env: dict | None = None, log: Path | None = None,
          timeout: float = 120.0) -> Iterator[dict]:
    """Voila serving the app on 127.0.0.1 for the block: yields ``url``, ``port``, ``proc`` and
    ``seconds`` (until the server answered). The server is stopped afterwards."""
    port = free_port() if port is None else port
    out = open(log, "w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(voila_command(port), cwd=paths.repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        seconds = wait_until_up(port, proc, timeout=timeout)
        yield {"url": url, "port": port, "proc": proc, "seconds": seconds}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            out.close()
