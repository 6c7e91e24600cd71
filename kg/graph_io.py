"""Reading and writing the graph artifact: one Parquet file per table, a manifest with checksums.

:meth:`kg.graph.Graph.save` calls :func:`save_graph`; :func:`load_graph` reads an
artifact back and checks it (checksums, format version, indices, counts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kg.artifact import ArtifactError, atomic_dir, read_manifest, write_manifest
from kg.graph import FORMAT, FORMAT_VERSION, Graph

__all__ = ["load_graph", "save_graph"]

_TABLE_FILES = {
    "interactions": "interactions.parquet",
    "triples": "triples.parquet",
    "social": "social.parquet",
    "items": "items.parquet",
    "users": "users.parquet",
    "entities": "entities.parquet",
    "relations": "relations.parquet",
}


def save_graph(graph: Graph, path: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the graph artifact atomically; returns the manifest.

    The manifest holds ``format``, ``format_version``, ``counts`` and
    everything in :attr:`meta` (build config, rejected-row report, column roles).
    """
    with atomic_dir(path, overwrite=overwrite, replaces=FORMAT) as tmp:
        for name, filename in _TABLE_FILES.items():
            frame = getattr(graph, name)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, tmp / filename, compression="zstd")
        manifest = write_manifest(
            tmp,
            format=FORMAT,
            format_version=FORMAT_VERSION,
            metadata={**graph.meta, "counts": graph.counts()},
            libraries=("graphrec", "numpy", "pandas", "pyarrow", "scipy"),
        )
    return manifest


def load_graph(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Load a graph artifact written by :meth:`Graph.save` / ``python -m graphrec.build``.

    Args:
        path: the artifact directory.
        verify: check the sha256 of every file against the manifest.

    Raises:
        ArtifactError: the directory, manifest or a file is missing, of another
            format or version, or fails its checksum; the message names the file.
    """
    path = Path(path)
    manifest = read_manifest(
        path, format=FORMAT, max_version=FORMAT_VERSION, verify=verify, required=_TABLE_FILES.values()
    )
    tables = {}
    for name, filename in _TABLE_FILES.items():
        try:
            tables[name] = pq.read_table(path / filename).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise ArtifactError(f"{path / filename}: unreadable Parquet ({exc})") from None
    meta = {k: v for k, v in manifest.items() if k not in ("files",)}
    try:
        graph = Graph(**tables, meta=meta)
    except ValueError as exc:
        raise ArtifactError(f"{path}: inconsistent graph ({exc})") from None
    recorded = manifest.get("counts", {})
    actual = graph.counts()
    diff = {k: (recorded[k], actual[k]) for k in actual if k in recorded and recorded[k] != actual[k]}
    if diff:
        raise ArtifactError(f"{path}: counts differ from the manifest (recorded, found): {diff}")
    return graph
