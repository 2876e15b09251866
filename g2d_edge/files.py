"""Writing files safely: atomic replacement, their temporary files, and an inter-process lock.

One place for these idioms (galleries, model sidecars, engines, checkpoints, caches, configs and benchmark results
all use them):

- `atomic_write(target, write)` (and `atomic_write_bytes`, `atomic_write_text`, `atomic_copy`) writes through a temporary file in the same folder (`.<name>.XXXXXXXX.tmp`),
  flushes and fsyncs it, then `os.replace`s it over `target`: readers only ever see the old or the complete new
  file, and a crash or a full disk leaves the old one intact.
- `temp_files_of(target)` finds the temporary files `atomic_write` leaves behind for `target` when its process is
  killed mid-write; `remove_temp_files(target)` deletes them (call it only while no writer can be active, e.g. while
  holding `exclusive_lock` of the same file).
- `exclusive_lock(lock_file, timeout)` holds an exclusive `fcntl.flock` on a small lock file, waiting at most
  `timeout` seconds (`LockTimeout` after that). The lock file itself stays in place: deleting lock files races with
  processes waiting on them.
- `regular_file_problem(path)` says why a path cannot be read as a regular file (missing, a folder, a FIFO ...):
  opening a FIFO or a device blocks or never ends, so readers check first.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Union

try:  # POSIX; on other systems the lock is a no-op (logged once)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Suffix of every temporary file `atomic_write` creates.
TEMP_SUFFIX = ".tmp"
#: How often a waiting `exclusive_lock` retries, in seconds.
LOCK_POLL_S = 0.02

_warned_no_flock = False


class LockTimeout(OSError):
    """`exclusive_lock` could not take the lock within its timeout (another process holds it)."""


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def _new_file_mode(target: Path) -> int:
    """The permissions `target` gets: those it has, or for a new file what `open()` would give (0o666 minus the
    umask) — not `mkstemp`'s private 0o600, which would hide exported models and galleries from other users."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(target: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace `target` with what `write(fh)` writes to a binary file handle, atomically.

    The parent folder is created if needed. If `write` raises (or the disk fills up), the temporary file is removed
    and `target` is left as it was. A replaced file keeps its permissions; a new one gets the umask's. Returns
    `target` as a Path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=TEMP_SUFFIX, dir=str(target.parent))
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_bytes(target: PathLike, data: bytes) -> Path:
    """`atomic_write` of a bytes object."""
    return atomic_write(target, lambda fh: fh.write(data))


def atomic_write_text(target: PathLike, text: str) -> Path:
    """`atomic_write` of a text, encoded as UTF-8."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_copy(source: PathLike, target: PathLike) -> Path:
    """Copy the file `source` to `target` through `atomic_write` (streamed, not read into memory at once)."""
    with open(source, "rb") as src:
        return atomic_write(target, lambda fh: shutil.copyfileobj(src, fh))


def temp_files_of(target: PathLike) -> List[Path]:
    """The temporary files `atomic_write` made for `target` that are still there (left by a killed writer, or being
    written right now by another process). Only names of the exact form `.<target name>.XXXXXXXX.tmp` match."""
    target = Path(target)
    pattern = re.compile(re.escape(_temp_prefix(target)) + r"[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False))


def remove_temp_files(target: PathLike) -> int:
    """Delete the temporary files of `target` (see `temp_files_of`). Returns how many were removed.

    Only safe while no other process can be writing `target`: hold its `exclusive_lock`.
    """
    removed = 0
    for tmp in temp_files_of(target):
        try:
            size = tmp.stat().st_size
            tmp.unlink()
        except OSError as exc:  # gone already, or not ours to delete: leave it
            log.debug("could not remove stale temporary file %s: %s", tmp, exc)
            continue
        removed += 1
        log.warning("removed %s (%d bytes), left by an interrupted save of %s", tmp.name, size, Path(target).name)
    return removed


@contextlib.contextmanager
def exclusive_lock(lock_file: PathLike, timeout: float) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_file` (created if missing) for the `with` block.

    Waits up to `timeout` seconds for another holder (0: try once). Raises LockTimeout when the lock stays taken,
    and OSError when the lock file cannot be created (read-only folder). Locks are per open file, so they also
    exclude threads or objects of the same process that lock the same file separately.
    """
    if fcntl is None:  # pragma: no cover - Windows
        global _warned_no_flock
        if not _warned_no_flock:
            log.warning("file locking (fcntl) is not available on this system: concurrent saves are not serialised")
            _warned_no_flock = True
        yield
        return
    lock_file = Path(lock_file)
    fd = os.open(str(lock_file), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, lock_file, timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, lock_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + max(0.0, float(timeout))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise LockTimeout(errno.EWOULDBLOCK, f"{lock_file} is locked by another process")
        time.sleep(LOCK_POLL_S)


def regular_file_problem(path: PathLike) -> Optional[str]:
    """None if `path` is an existing regular file (symlinks followed), else what it is instead:
    "not found", "a directory" or "not a regular file (a FIFO, socket or device)"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return f"not readable ({exc.strerror or exc})"
    except ValueError:  # a NUL character in the path
        return "not a valid path"
    if stat.S_ISDIR(mode):
        return "a directory"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device)"
    return None


def read_regular_file(path: PathLike) -> bytes:
    """All bytes of a regular file. Never blocks on a FIFO or reads a device for ever: the file is opened
    non-blocking and checked to be regular before anything is read.

    Raises:
        FileNotFoundError, IsADirectoryError, OSError: as `open` would; `OSError(errno.EINVAL, ...)` for a
        FIFO, socket or device. ValueError: a NUL character in the path.
    """
    fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
