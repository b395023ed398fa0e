"""How errors reach the user: the base class of every error a user can act on, and the one wrapper
all command lines (``python -m qinn_lib.reports / shipped / runs / bench / events``) run through.

A library error a user can fix (a bad parameter, a corrupted file, a locked run folder, a full
disk) is a :class:`QinnError` whose message names the file, field or parameter and says what to do.
At the command line, :func:`run_cli` turns it into exactly one line on stderr and exit status 2;
Ctrl-C becomes one line and status 130; SIGTERM (what ``timeout`` and batch systems send) is
treated like Ctrl-C (the same cleanup runs, :class:`Terminated`) and gives status 143; anything
else is a bug: one line naming the exception and status 1. ``--debug`` adds the full traceback in
every case.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

#: Exit statuses of the command lines.
EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd program
EXIT_TERMINATED = 143  # 128 + SIGTERM


class QinnError(Exception):
    """An error the user can act on; the message names the file, field or parameter."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so that everything that cleans up after a Ctrl-C (a
    partly executed notebook kept, temporaries removed, a checkpoint kept) does so after SIGTERM too."""


def _raise_terminated(signum, frame) -> None:
    # One-shot: a second SIGTERM (a batch system's reminder) must not interrupt the cleanup the
    # first one started; SIGKILL still ends the process at once.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """Inside the block, Ctrl-C (SIGINT) raises KeyboardInterrupt and SIGTERM raises
    :class:`Terminated`; the previous handlers are restored afterwards. SIGINT is set explicitly:
    a process started in the background by a non-interactive shell (``cmd &`` in a script, a CI
    step) inherits SIGINT *ignored*, and then an explicit ``kill -INT`` would do nothing at all."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def one_line(err: BaseException) -> str:
    """The exception's message on one line (multi-line messages are joined with ' | ')."""
    text = " | ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def _user_errors() -> tuple[type[BaseException], ...]:
    # OSError: a file the user named cannot be read or written (permissions, full disk, a folder
    # where a file should be); its message names the file. filelock's Timeout: another process
    # holds a lock we asked for with a time limit (the library normally rewraps it).
    from filelock import Timeout

    return (QinnError, OSError, Timeout)


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback as well as the one-line message")


def run_cli(body: Callable[[], int | None], *, prog: str, debug: bool = False,
            interrupted: str = "") -> int:
    """Run a command line's ``body`` and return its exit status.

    ``interrupted`` is said after a Ctrl-C or a SIGTERM (e.g. what was kept and how to resume)."""
    try:
        with interrupt_handlers():
            status = body()
        return 0 if status is None else int(status)
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exc()
        how = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"{prog}: {how}" + (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
        return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED
    except _user_errors() as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: say so, but still in one line
        if debug:
            traceback.print_exc()
        hint = "" if debug else "; re-run with --debug for the traceback"
        print(f"{prog}: internal error: {type(err).__name__}: {one_line(err)}{hint}", file=sys.stderr)
        return EXIT_BUG
