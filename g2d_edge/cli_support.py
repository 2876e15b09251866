"""One error and exit-status convention for the three command lines, `g2d`, `g2d-train` and `g2d-export`:

- 0: done;
- 1 (`EXIT_ERROR`): an error the user can act on (`G2DError`), printed as one line `PROG: error: MESSAGE` on stderr,
  without a traceback (`--verbose` adds it);
- 2 (`EXIT_USAGE`): bad usage (argparse's own exit, also `PROG: error: ...`);
- 130 (`EXIT_INTERRUPTED`): interrupted with Ctrl-C.
"""
from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Any, Callable, Iterator, Optional, Tuple, Type

from .errors import G2DError
from .text import printable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def run_command(prog: str, command: Callable[[], int], *, verbose: bool = False,
                errors: Tuple[Type[BaseException], ...] = (G2DError,),
                interrupted: str = "interrupted") -> int:
    """Run `command` and return its exit status, turning the `errors` the user can act on into status 1 with one
    line on stderr (a traceback too when `verbose`) and Ctrl-C into status 130 with the line `interrupted`."""
    try:
        return command()
    except errors as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"{prog}: error: {printable(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


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
