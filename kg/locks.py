"""One writer per output path: an advisory lock file beside the path.

``lock_output("graphs/ml")`` holds ``graphs/.ml.lock`` for the duration of a
``with`` block. The lock is an ``fcntl.flock`` on that file, so the kernel
releases it when its holder dies, even by ``SIGKILL``: a lock left by a dead run
is simply taken over by the next one. The file holds the holder's pid and start
time, so that a second run on the same path is refused with a message that
names the first (:class:`OutputBusyError`). A clean release removes the file.

Locks are re-entrant within a process (the train entry point holds the lock of
its ``--out`` for the whole run; writing the artifact at the end takes it again).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import sys
import threading
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["OutputBusyError", "lock_output", "lock_path", "read_lock_owner"]

_held: dict[str, list] = {}  # lock file -> [fd, depth]
_guard = threading.Lock()


class OutputBusyError(RuntimeError):
    """Another running process holds the lock of the output path."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output path: ``PARENT/.NAME.lock``."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


def read_lock_owner(lock_file: str | os.PathLike) -> Optional[dict]:
    """The ``{"pid", "started"}`` recorded in a lock file, or ``None`` when unreadable."""
    try:
        with open(lock_file, encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _describe(owner: Optional[dict]) -> str:
    if not owner:
        return "another process"
    return f"pid {owner.get('pid')} (started {owner.get('started')}, running {owner.get('command', '?')})"


def _acquire(lock_file: Path, what: Path) -> int:
    """Open, flock (non-blocking) and stamp ``lock_file``; returns the descriptor."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputBusyError(
                f"{what} is in use by {_describe(read_lock_owner(lock_file))}; wait for it to finish "
                f"or stop it (the lock is {lock_file})"
            ) from None
        # The holder we waited on may have removed the file after we opened it:
        # our lock is then on a deleted inode, so start again on the new file.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stamp = {
        "pid": os.getpid(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3])),
    }
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(stamp).encode())
    return fd


@contextlib.contextmanager
def lock_output(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``path`` (re-entrant within this process).

    Args:
        path: the output file or directory (it need not exist; its parent is created).

    Yields:
        The lock file.

    Raises:
        OutputBusyError: another live process holds the lock; the message names its pid
            and start time.
        OSError: the parent directory cannot be created or written.
    """
    lock_file = lock_path(path)
    key = str(lock_file)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            _held[key] = [_acquire(lock_file, Path(path)), 1]
    try:
        yield lock_file
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                with contextlib.suppress(OSError):
                    os.unlink(lock_file)  # while still locked: see the samestat check
                os.close(entry[0])
