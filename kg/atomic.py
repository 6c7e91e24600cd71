"""Crash-safe replacement of output files and directories, and recovery after a kill.

Every output graphrec writes goes through a hidden sibling and a rename:

* :func:`atomic_dir` writes a directory as ``PARENT/.NAME.tmp-PID-XXXX`` and swaps
  it into place. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``, so at
  every instant ``NAME`` is either the old or the new artifact. Elsewhere (or on
  a file system without it) the old one is first renamed to ``.NAME.old-PID``;
  a kill between the two renames leaves the old artifact there, and the next
  run on the path puts it back (:func:`claim`).
* :func:`atomic_file` does the same for one file (a single ``os.replace``).
* Both run under the path's lock (:mod:`kg.locks`), so any ``.NAME.tmp-*``,
  ``.NAME.old-*`` or ``.NAME.del-*`` found while holding it was left by a run that
  died: :func:`claim` restores or removes them and says what it did.
* :func:`check_replaceable` is what makes ``--overwrite`` safe: an existing,
  non-empty destination is replaced only when it is recognisably an artifact of
  the expected format whose manifest lists every file it holds.

Directories and files are created with ``0o777``/``0o666`` masked by the umask,
like any other program's output (not the ``0o700``/``0o600`` of ``mkdtemp``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator, Optional

from kg.locks import lock_output

__all__ = [
    "atomic_dir",
    "atomic_file",
    "check_output_name",
    "check_replaceable",
    "claim",
    "discard",
    "leftovers",
    "recover",
    "umask",
]

_LEFTOVER_TAGS = (".tmp-", ".old-", ".del-")


def check_output_name(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path`, refusing ``.``, ``..``, ``/`` and empty names.

    Raises:
        ValueError: the path has no name of its own to write under.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(
            f"{str(path)!r} is not a path graphrec can write an output to: name a new file or "
            "directory inside it (e.g. out/model) instead"
        )
    return path


def leftovers(destination: str | os.PathLike) -> list[Path]:
    """Hidden siblings ``.NAME.tmp-*``, ``.NAME.old-*``, ``.NAME.del-*`` of ``destination``."""
    destination = Path(destination)
    prefixes = tuple(f".{destination.name}{tag}" for tag in _LEFTOVER_TAGS)
    try:
        names = os.listdir(destination.parent)
    except FileNotFoundError:
        return []
    return sorted(destination.parent / n for n in names if n.startswith(prefixes))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _recover_locked(destination: Path) -> list[str]:
    """Restore/remove leftovers of dead runs; the caller holds the lock of ``destination``."""
    notes = []
    found = leftovers(destination)
    if not os.path.lexists(destination):
        backups = sorted((p for p in found if f".{destination.name}.old-" in p.name), key=lambda p: p.stat().st_mtime)
        if backups:
            os.rename(backups[-1], destination)
            found.remove(backups[-1])
            notes.append(
                f"{destination}: restored the previous version left by an interrupted run ({backups[-1].name})"
            )
    for path in found:
        _remove(path)
    if found:
        names = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        notes.append(f"{destination}: removed {len(found)} leftover(s) of interrupted runs ({names})")
    return notes


@contextlib.contextmanager
def claim(destination: str | os.PathLike) -> Iterator[list[str]]:
    """Hold the lock of ``destination`` and clean up after runs that died on it.

    Yields:
        One note per recovery action (a backup restored, leftovers removed); empty
        when there was nothing to do. Entry points print them.

    Raises:
        kg.locks.OutputBusyError: another live process writes ``destination``.
        ValueError: ``destination`` has no name (``.``, ``..``, ``/``).
        OSError: the parent directory cannot be created or written.
    """
    destination = check_output_name(destination)
    with lock_output(destination):
        yield _recover_locked(destination)


def recover(destination: str | os.PathLike) -> list[str]:
    """Run :func:`claim`'s recovery unless another process holds the lock (then do nothing).

    Readers call this when an artifact is missing, so that a model whose writer was
    killed mid-replace is found again by the next ``recommend``.
    """
    from kg.locks import OutputBusyError

    if not leftovers(destination):  # nothing to do: take no lock, create nothing
        return []
    try:
        with claim(destination) as notes:
            return notes
    except (OutputBusyError, OSError, ValueError):
        return []


def discard(path: str | os.PathLike) -> None:
    """Remove a directory or file so that a kill midway leaves only a recognised leftover.

    It is first renamed to a hidden ``.NAME.del-*`` sibling (which the next
    :func:`claim` of ``path`` removes), then deleted.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    trash = _hidden_sibling(path, ".del-")
    os.rename(path, trash)
    _remove(trash)


def _not_an_artifact(directory: Path, format: str) -> Optional[str]:
    """Why ``directory`` is not a complete ``format`` artifact, or ``None`` when it is."""
    try:
        with open(directory / "manifest.json", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return "it has no manifest.json"
    except (OSError, ValueError):
        return "its manifest.json is unreadable"
    if not isinstance(manifest, dict) or manifest.get("format") != format:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        return f"its manifest says format {found!r}"
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        return "its manifest lists no files"
    extra = []
    for root, dirs, files in os.walk(directory):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = Path(root, name).relative_to(directory).as_posix()
            if rel != "manifest.json" and rel not in listed:
                extra.append(rel)
    if extra:
        shown = ", ".join(sorted(extra)[:5]) + (", ..." if len(extra) > 5 else "")
        return f"it holds {len(extra)} file(s) its manifest does not list: {shown}"
    return None


def check_replaceable(destination: str | os.PathLike, *, overwrite: bool, replaces: Optional[str] = None) -> None:
    """Refuse to write over anything at ``destination`` that is not ours to replace.

    Args:
        destination: the output directory.
        overwrite: whether the user allowed replacing an existing output.
        replaces: the artifact format that may be replaced (e.g. ``"graphrec.graph"``);
            ``None`` lets ``overwrite`` replace any directory (internal outputs).

    Raises:
        FileExistsError: ``destination`` is a file or a link; or it is a non-empty
            directory and ``overwrite`` is false; or it is not a ``replaces`` artifact
            whose manifest covers every file in it.
    """
    destination = Path(destination)
    if not os.path.lexists(destination):
        return
    if destination.is_symlink() or not destination.is_dir():
        raise FileExistsError(f"{destination} exists and is not a directory; choose another output path")
    if not any(destination.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{destination} already exists and is not empty; pass --overwrite to replace it")
    if replaces is not None:
        problem = _not_an_artifact(destination, replaces)
        if problem:
            raise FileExistsError(
                f"{destination} is not a {replaces} artifact ({problem}); --overwrite replaces only that, "
                "so nothing was changed: remove it yourself or choose another output path"
            )


def _hidden_sibling(destination: Path, tag: str, unique: bool = True) -> Path:
    suffix = f"{os.getpid()}-{secrets.token_hex(4)}" if unique else str(os.getpid())
    return destination.with_name(f".{destination.name}{tag}{suffix}")


def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); ``False`` when unsupported."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def umask() -> int:
    """The process's umask (read without changing it where ``/proc`` allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _give_umask_modes(root: Path) -> None:
    """``0o777``/``0o666`` masked by the umask on ``root`` and everything under it.

    Libraries write some files owner-only (``0o600``); outputs are for other
    programs and people as much as for their writer.
    """
    mask = umask()
    if not root.is_dir():
        os.chmod(root, 0o666 & ~mask)
        return
    os.chmod(root, 0o777 & ~mask)
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(directory, name), 0o777 & ~mask)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


def _swap_in(tmp: Path, destination: Path) -> None:
    """Put the finished ``tmp`` at ``destination``; the old one (if any) is removed after."""
    if not os.path.lexists(destination):
        os.rename(tmp, destination)
        return
    if _exchange(tmp, destination):
        _remove(tmp)  # now holds the old artifact
        return
    old = _hidden_sibling(destination, ".old-", unique=False)
    os.rename(destination, old)
    os.rename(tmp, destination)
    trash = _hidden_sibling(destination, ".del-")
    os.rename(old, trash)  # from here on a kill leaves garbage, never a half-deleted backup
    _remove(trash)


@contextlib.contextmanager
def atomic_dir(
    destination: str | os.PathLike, *, overwrite: bool = False, replaces: Optional[str] = None
) -> Iterator[Path]:
    """Write a directory atomically and crash-safely.

    Yields a fresh hidden directory next to ``destination``; when the block exits
    cleanly it replaces ``destination`` (see the module docstring). On any
    exception it is removed and ``destination`` is left exactly as it was. The
    whole block runs under ``destination``'s lock, after :func:`claim`'s recovery.

    Args:
        destination: the final directory path.
        overwrite: replace an existing non-empty ``destination``.
        replaces: only replace an artifact of this format (see :func:`check_replaceable`).

    Raises:
        FileExistsError: see :func:`check_replaceable`; raised before any work.
        kg.locks.OutputBusyError: another process is writing ``destination``.
    """
    with claim(destination):
        destination = Path(destination)
        check_replaceable(destination, overwrite=overwrite, replaces=replaces)
        tmp = _hidden_sibling(destination, ".tmp-")
        os.mkdir(tmp, 0o777)
        try:
            yield tmp
        except BaseException:
            _remove(tmp)
            raise
        try:
            _give_umask_modes(tmp)
            _swap_in(tmp, destination)
        except BaseException:
            if os.path.lexists(tmp) and os.path.lexists(destination):
                _remove(tmp)
            raise


@contextlib.contextmanager
def atomic_file(destination: str | os.PathLike, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on success.

    Args:
        destination: the final file path.
        exclusive: hold ``destination``'s lock and clean up leftovers of dead runs
            first (outputs a user names; internal checkpoint files skip it).

    Raises:
        IsADirectoryError: ``exclusive`` and ``destination`` is a directory.
        kg.locks.OutputBusyError: ``exclusive`` and another process writes ``destination``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with claim(destination) if exclusive else contextlib.nullcontext():
        if exclusive and destination.is_dir():
            raise IsADirectoryError(f"{destination} is a directory; name a file to write")
        tmp = _hidden_sibling(destination, ".tmp-")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            yield tmp
            _give_umask_modes(tmp)
            os.replace(tmp, destination)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
