"""Artifact directories: atomic writes, a manifest with checksums, verified loading.

Every artifact graphrec writes (graph, model, export) is a directory holding
``manifest.json`` plus plain columnar/tensor files. This module is the one place
that knows how such a directory is written and checked:

* :func:`atomic_dir` yields a temporary sibling directory and renames it into
  place only when the ``with`` block finishes without an exception, so a crash
  never leaves a half-written artifact at the destination.
* :func:`write_manifest` records format name and version, sha256 and size of
  every file, library versions and whatever metadata the caller adds.
* :func:`read_manifest` checks the format, the version and every checksum and
  raises :class:`ArtifactError` naming the file and what is wrong.

Nothing here unpickles anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

MANIFEST = "manifest.json"

__all__ = [
    "MANIFEST",
    "ArtifactError",
    "atomic_dir",
    "atomic_file",
    "library_versions",
    "read_manifest",
    "sha256_file",
    "write_manifest",
    "to_jsonable",
]


class ArtifactError(Exception):
    """An artifact directory is missing, incomplete, of the wrong format or corrupt."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (``"absent"`` when not installed)."""
    found = {}
    for name in names or ("numpy", "pandas", "pyarrow", "scipy", "torch", "torch_geometric"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples into JSON-serialisable values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@contextlib.contextmanager
def atomic_dir(destination: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory atomically.

    Yields a fresh temporary directory next to ``destination``; when the block
    exits cleanly the temporary directory replaces ``destination`` by rename.
    On any exception the temporary directory is removed and ``destination`` is
    left exactly as it was.

    Args:
        destination: the final directory path.
        overwrite: replace an existing ``destination``. When false an existing
            non-empty destination raises :class:`FileExistsError` before any work.

    Raises:
        FileExistsError: ``destination`` exists, is non-empty and ``overwrite`` is false.
    """
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise FileExistsError(f"{destination} exists and is not a directory")
    if destination.exists() and any(destination.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{destination} already exists and is not empty; choose another path or pass overwrite"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.tmp-", dir=destination.parent))
    try:
        yield tmp
        if destination.exists():
            # Two renames keep the window without a valid artifact as short as possible.
            old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
            os.replace(destination, old)
            os.replace(tmp, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on success."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{destination.name}.tmp-", dir=destination.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_manifest(
    directory: str | os.PathLike,
    *,
    format: str,
    format_version: int,
    metadata: dict[str, Any] | None = None,
    libraries: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Checksum every file under ``directory`` and write ``manifest.json``.

    Args:
        directory: the (temporary) artifact directory, fully written except the manifest.
        format: artifact kind, e.g. ``"graphrec.graph"``.
        format_version: integer bumped on incompatible layout changes.
        metadata: extra JSON-serialisable keys stored at the top level.
        libraries: distribution names whose versions are recorded.

    Returns:
        The manifest as written.
    """
    directory = Path(directory)
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": format,
        "format_version": format_version,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions(*libraries),
        **to_jsonable(metadata or {}),
        "files": files,
    }
    with open(directory / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=False)
        handle.write("\n")
    return manifest


def read_manifest(
    directory: str | os.PathLike,
    *,
    format: str,
    max_version: int,
    verify: bool = True,
) -> dict[str, Any]:
    """Read and check an artifact's manifest.

    Args:
        directory: the artifact directory.
        format: the expected ``format`` value.
        max_version: the newest ``format_version`` this code can read.
        verify: recompute the sha256 of every listed file.

    Raises:
        ArtifactError: naming the directory or file and what is wrong (missing
            directory or manifest, wrong format, newer version, missing file,
            size or checksum mismatch).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such artifact directory")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{directory}: no {MANIFEST}; this is not a {format} artifact or it was not written completely"
        )
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    found = manifest.get("format")
    if found != format:
        raise ArtifactError(f"{manifest_path}: format is {found!r}, expected {format!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise ArtifactError(
            f"{manifest_path}: format_version {version!r} is newer than this graphrec reads "
            f"(<= {max_version}); upgrade graphrec"
        )
    if verify:
        for rel, info in manifest.get("files", {}).items():
            path = directory / rel
            if not path.is_file():
                raise ArtifactError(f"{directory}: file {rel} listed in {MANIFEST} is missing")
            size = path.stat().st_size
            if size != info.get("bytes"):
                raise ArtifactError(
                    f"{path}: size {size} bytes differs from the manifest's {info.get('bytes')}; "
                    "the file was modified or truncated"
                )
            if sha256_file(path) != info.get("sha256"):
                raise ArtifactError(f"{path}: sha256 checksum mismatch; the file was modified or corrupted")
    return manifest
