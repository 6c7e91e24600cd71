"""Artifact directories: atomic writes, a manifest with checksums, verified loading.

Every artifact graphrec writes (graph, model, export) is a directory holding
``manifest.json`` plus plain columnar/tensor files. This module is the one place
that knows how such a directory is written and checked:

* :func:`atomic_dir` (from :mod:`kg.atomic`) yields a temporary sibling directory
  and swaps it into place only when the ``with`` block finishes without an
  exception, so a crash never leaves a half-written or missing artifact.
* :func:`write_manifest` records format name and version, sha256 and size of
  every file, library versions and whatever metadata the caller adds.
* :func:`read_manifest` checks the format, the version, the file list (as a
  whitelist: relative entries only, every file present listed) and every
  checksum, and raises :class:`ArtifactError` naming the file and what is wrong.

Nothing here unpickles anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np

from kg.atomic import atomic_dir, atomic_file, recover

MANIFEST = "manifest.json"

__all__ = [
    "MANIFEST",
    "ArtifactError",
    "atomic_dir",
    "atomic_file",
    "check_entry",
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


def check_entry(name: Any, where: str) -> str:
    """Validate one relative file name of a manifest (a ``files`` key, a source name, ...).

    Args:
        name: the entry as found in the manifest.
        where: what it is, for the message (e.g. ``"manifest.json: files entry"``).

    Returns:
        ``name``, a normalised relative POSIX path.

    Raises:
        ArtifactError: ``name`` is not a string, is empty, absolute, holds ``..`` or ``.``
            parts, backslashes or control characters. The message quotes the entry only.
    """
    if not isinstance(name, str) or not name or len(name) > 512:
        raise ArtifactError(f"{where} {name!r} is not a file name")
    pure = PurePosixPath(name)
    parts = name.split("/")
    if pure.is_absolute() or "\\" in name or _CONTROL.search(name) or any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(
            f"{where} {name!r} is not a relative path inside the artifact; the manifest was tampered with"
        )
    return name


_CONTROL = re.compile(r"[\x00-\x1f]")


def _present_files(directory: Path) -> tuple[set[str], list[str]]:
    """Relative names of every file under ``directory`` and of every symbolic link in it."""
    files, links = set(), []
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = Path(root, name)
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink():
                links.append(rel)
            elif name in names:
                files.add(rel)
    return files, sorted(links)


def read_manifest(
    directory: str | os.PathLike,
    *,
    format: str,
    max_version: int,
    verify: bool = True,
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Read and check an artifact's manifest, as a whitelist.

    The manifest's ``files`` must be a non-empty mapping of relative paths inside
    the artifact (no absolute paths, no ``..``), must list every file present (an
    extra file is an error naming it), must include ``required``, and the artifact
    may hold no symbolic links. Callers then read files only through entries
    checked here.

    Args:
        directory: the artifact directory.
        format: the expected ``format`` value.
        max_version: the newest ``format_version`` this code can read.
        verify: recompute the sha256 of every listed file (the structure is always checked).
        required: entries the format needs (e.g. its tables).

    Raises:
        ArtifactError: naming the directory or file and what is wrong (missing
            directory or manifest, wrong format, newer version, a bad, missing,
            unlisted or required entry, size or checksum mismatch).
    """
    directory = Path(directory)
    if not directory.is_dir():
        recover(directory)  # a writer killed mid-replace leaves the previous version aside
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such artifact directory")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise ArtifactError(
            f"{directory}: no {MANIFEST}; this is not a {format} artifact or it was not written completely"
        )
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path}: not a JSON object")
    found = manifest.get("format")
    if found != format:
        raise ArtifactError(f"{manifest_path}: format is {found!r}, expected {format!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise ArtifactError(
            f"{manifest_path}: format_version {version!r} is newer than this graphrec reads "
            f"(<= {max_version}); upgrade graphrec"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{manifest_path}: the file list is missing or empty; the artifact cannot be checked")
    for rel, info in files.items():
        check_entry(rel, f"{manifest_path}: files entry")
        if rel == MANIFEST or not isinstance(info, dict):
            raise ArtifactError(f"{manifest_path}: files entry {rel!r} is malformed")
    present, links = _present_files(directory)
    if links:
        raise ArtifactError(
            f"{directory}: holds symbolic links ({', '.join(links[:5])}); an artifact holds plain files only"
        )
    missing = [rel for rel in files if rel not in present]
    if missing:
        raise ArtifactError(f"{directory}: file {missing[0]} listed in {MANIFEST} is missing")
    extra = sorted(present - set(files) - {MANIFEST})
    if extra:
        raise ArtifactError(
            f"{directory}: holds {len(extra)} file(s) its {MANIFEST} does not list ({', '.join(extra[:5])}); "
            "an artifact may hold only what its manifest lists"
        )
    absent = [rel for rel in required if rel not in files]
    if absent:
        raise ArtifactError(f"{directory}: the manifest lists no {', '.join(absent)}; the artifact is incomplete")
    if verify:
        for rel, info in files.items():
            path = directory / rel
            size = path.stat().st_size
            if size != info.get("bytes"):
                raise ArtifactError(
                    f"{path}: size {size} bytes differs from the manifest's {info.get('bytes')}; "
                    "the file was modified or truncated"
                )
            if sha256_file(path) != info.get("sha256"):
                raise ArtifactError(f"{path}: sha256 checksum mismatch; the file was modified or corrupted")
    return manifest
