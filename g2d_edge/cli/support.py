"""One error and exit-status convention for the three command lines, `g2d`, `g2d-train` and `g2d-export`:

- 0: done;
- 1 (`EXIT_ERROR`): an error the user can act on (`G2DError`), printed as one line `PROG: error: MESSAGE` on stderr,
  without a traceback (`--verbose` adds it);
- 2 (`EXIT_USAGE`): bad usage (argparse's own exit, also `PROG: error: ...`);
- 130 (`EXIT_INTERRUPTED`): interrupted with Ctrl-C;
- 141 (`EXIT_BROKEN_PIPE`): the reader of stdout went away (`g2d gallery list | head -1`): no traceback, no
  message, the status a shell shows for a tool ended by SIGPIPE (`yes | head -1`);
- 143 (`EXIT_TERMINATED`): stopped by SIGTERM (`g2d`; with `handle_sigterm`), after the same clean-up as Ctrl-C:
  a video being written keeps the frames written so far.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Iterator, Optional, Tuple, Type

from ..errors import G2DError
from ..text import printable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread, so `finally` blocks and context managers run as for Ctrl-C."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into a `Terminated` exception for the `with` block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(prog: str, command: Callable[[], int], *, verbose: bool = False,
                errors: Tuple[Type[BaseException], ...] = (G2DError,),
                interrupted: str = "interrupted", handle_sigterm: bool = False) -> int:
    """Run `command` and return its exit status, turning the `errors` the user can act on into status 1 with one
    line on stderr (a traceback too when `verbose`) and Ctrl-C into status 130 with the line `interrupted`;
    with `handle_sigterm`, SIGTERM into status 143 after the same clean-up."""
    try:
        with sigterm_raises() if handle_sigterm else contextlib.nullcontext():
            status = command()
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
            return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except errors as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"{prog}: error: {printable(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that what is still buffered for a closed pipe goes nowhere instead
    of raising BrokenPipeError again when Python flushes stdout on exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (tests, embedded interpreters)
        pass


@contextlib.contextmanager
def progress(total: int, desc: str, unit: str = "it") -> Iterator[Optional[Any]]:
    """A tqdm progress bar on stderr for `total` steps, only when stderr is a terminal and tqdm is installed (the
    [serve] and [train] extras bring it); else None. Print lines beside it with `say(bar, line)`."""
    if total < 2 or not sys.stderr.isatty():
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def say(bar: Optional[Any], line: str) -> None:
    """Print `line` on stdout, above the progress bar when one is shown."""
    if bar is None:
        print(line, flush=True)
    else:
        bar.write(line, file=sys.stdout)
