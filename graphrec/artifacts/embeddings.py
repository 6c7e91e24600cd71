"""Embedding export: user/item/entity vectors with external ids, for systems without graphrec.

An export is a directory written atomically (temporary sibling, renamed into
place) holding, per table ``<name>`` (``users``, ``items``, ``entities``, ...):

* ``format="parquet"``: ``<name>.parquet`` with a string column ``id`` and a
  column ``vector`` of type ``fixed_size_list<float32>[d]`` (read it with
  ``df = pandas.read_parquet(path)``; ``numpy.stack(df["vector"])`` gives the
  ``[n, d]`` matrix; Spark/DuckDB see an array column).
* ``format="npy"``: ``<name>.npy`` (float32 ``[n, d]``) and ``<name>_ids.npy``
  (a numpy unicode array ``[n]``); both load with ``numpy.load(path)`` and need
  no pickle. Row ``i`` of the vectors belongs to id ``i``.

and ``manifest.json``::

    {"format": "graphrec.embeddings", "format_version": 1, ...,
     "tables": {"items": {"rows": n, "dim": d, "dtype": "float32", "normalised": false,
                          "score": "dot", "layout": "parquet-id-vector",
                          "files": {"vectors": "items.parquet", "ids": "items.parquet"},
                          "sha256": {"items.parquet": "..."}}, ...},
     "ann": {...} or null, "metadata": {...caller's...},
     "files": {"items.parquet": {"sha256": "...", "bytes": ...}, ...}}

``score`` says how a downstream system compares vectors: ``"dot"`` (inner
product, what the model ranks by) or ``"cosine"``. ``normalised`` is true when
every vector has unit length (then dot = cosine).

With ``ann="faiss"`` or ``ann="hnswlib"`` an approximate nearest-neighbor index
over the item vectors (inner product; row position = label) is written too,
and its recall@10 against exact search over a sample of query vectors (the user
vectors when exported) is recorded in ``manifest["ann"]["recall_at_10"]``.
faiss-cpu and hnswlib are optional (``pip install faiss-cpu`` / ``pip install
hnswlib``, or ``pip install graphrec[ann]``) and imported only when asked for.
"""

from __future__ import annotations

import os
import re
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kg.artifact import (
    ArtifactError,
    atomic_dir,
    check_entry,
    read_manifest,
    sha256_file,
    write_manifest,
)

__all__ = ["ANN_BACKENDS", "FORMAT", "FORMAT_VERSION", "read_embeddings", "write_embeddings"]

FORMAT = "graphrec.embeddings"
FORMAT_VERSION = 1
ANN_BACKENDS = ("faiss", "hnswlib", "none")
SCORES = ("dot", "cosine")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED = {"manifest", "ann"}
_INSTALL = {"faiss": "faiss-cpu", "hnswlib": "hnswlib"}


def _check_tables(tables: Mapping[str, tuple]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import torch  # here, not at the top: ``graphrec.export --help`` must not load torch

    if not isinstance(tables, Mapping) or not tables:
        raise ValueError("tables must be a non-empty dict {name: (ids, vectors)}")
    checked = {}
    for name, pair in tables.items():
        if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED or name.endswith("_ids"):
            raise ValueError(
                f"table name {name!r} is not usable as a file name: use letters, digits, '_', '-', '.', "
                "not starting with '.', not ending in '_ids', not 'manifest'/'ann'"
            )
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"tables[{name!r}] must be a tuple (ids, vectors)")
        ids, vectors = np.asarray(pair[0]), pair[1]
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().cpu().numpy()
        vectors = np.asarray(vectors)
        if ids.ndim != 1:
            raise ValueError(f"tables[{name!r}]: ids must be 1-d, got shape {ids.shape}")
        if ids.dtype.kind not in "OUS":
            raise TypeError(f"tables[{name!r}]: ids must be strings (external ids), got dtype {ids.dtype}")
        ids = ids.astype(str)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(
                f"tables[{name!r}]: vectors must have shape [{len(ids)}, d] (one row per id), got {vectors.shape}"
            )
        if not np.issubdtype(vectors.dtype, np.number):
            raise TypeError(f"tables[{name!r}]: vectors must be numeric, got dtype {vectors.dtype}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not np.isfinite(vectors).all():
            raise ValueError(f"tables[{name!r}]: vectors hold NaN or infinite values")
        if (ids == "").any():
            raise ValueError(f"tables[{name!r}]: {int((ids == '').sum())} empty ids")
        distinct, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"tables[{name!r}]: id {distinct[counts > 1][0]!r} appears more than once")
        checked[name] = (ids, vectors)
    return checked


def _write_table(directory: Path, name: str, ids: np.ndarray, vectors: np.ndarray, format: str) -> dict[str, str]:
    if format == "parquet":
        dim = vectors.shape[1]
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, dim)
        table = pa.Table.from_arrays([pa.array(ids, type=pa.string()), column], names=["id", "vector"])
        pq.write_table(table, directory / f"{name}.parquet")
        return {"vectors": f"{name}.parquet", "ids": f"{name}.parquet"}
    np.save(directory / f"{name}.npy", vectors, allow_pickle=False)
    np.save(directory / f"{name}_ids.npy", ids, allow_pickle=False)
    return {"vectors": f"{name}.npy", "ids": f"{name}_ids.npy"}


def _is_normalised(vectors: np.ndarray) -> bool:
    if not len(vectors):
        return False
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return bool(np.all(np.abs(norms - 1.0) < 1e-3))


def _import_ann(backend: str):
    try:
        if backend == "faiss":
            import faiss  # noqa: PLC0415

            return faiss
        import hnswlib  # noqa: PLC0415

        return hnswlib
    except ImportError:
        raise ImportError(
            f"ann={backend!r} needs the {_INSTALL[backend]} package, which is not installed: "
            f"pip install {_INSTALL[backend]}  (or pip install 'graphrec[ann]'), or pass ann='none'"
        ) from None


def _exact_topk(queries: np.ndarray, base: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    import torch

    base_t = torch.from_numpy(base)
    parts = []
    with torch.no_grad():
        for start in range(0, len(queries), chunk):
            scores = torch.from_numpy(queries[start : start + chunk]) @ base_t.T
            parts.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.int64)


def _build_ann(
    directory: Path,
    backend: str,
    items: np.ndarray,
    queries: np.ndarray,
    *,
    m: int,
    ef_construction: int,
    ef_search: int,
    seed: int,
) -> dict[str, Any]:
    """Build, save and measure an inner-product HNSW index over ``items``."""
    module = _import_ann(backend)
    n, dim = items.shape
    k = min(10, n)
    if backend == "faiss":
        index = module.IndexHNSWFlat(dim, m, module.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(items)
        index.hnsw.efSearch = max(ef_search, k)
        _, found = index.search(queries, k)
        file_name = "items.faiss"
        module.write_index(index, str(directory / file_name))
        load = "faiss.read_index(path); index.hnsw.efSearch = ef_search; index.search(queries, k)"
    else:
        index = module.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(n, 1), ef_construction=ef_construction, M=m, random_seed=seed)
        index.add_items(items, np.arange(n), num_threads=1)  # one thread: the graph is deterministic
        index.set_ef(max(ef_search, k))
        found, _ = index.knn_query(queries, k=k)
        file_name = "items.hnsw"
        index.save_index(str(directory / file_name))
        load = (
            f"index = hnswlib.Index(space='ip', dim={dim}); index.load_index(path); "
            "index.set_ef(ef_search); index.knn_query(queries, k)"
        )
    exact = _exact_topk(queries, items, k)
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(np.asarray(found), exact)]
    recall = float(np.sum(hits) / (k * len(exact))) if len(exact) else float("nan")
    return {
        "library": backend,
        "library_version": _metadata.version(_INSTALL[backend]),
        "file": file_name,
        "table": "items",
        "metric": "inner_product",
        "kind": "hnsw",
        "labels": "row position in the items table",
        "params": {"M": m, "ef_construction": ef_construction, "ef_search": ef_search},
        "how_to_load": load,
        "recall_at_10": recall,
        "recall_k": k,
        "recall_queries": int(len(queries)),
    }


def write_embeddings(
    out_dir: str | os.PathLike,
    tables: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    format: str = "parquet",
    metadata: Optional[Mapping[str, Any]] = None,
    ann: str = "none",
    score: str = "dot",
    overwrite: bool = False,
    ann_queries: Optional[str] = None,
    ann_sample: int = 1000,
    ann_m: int = 32,
    ann_ef_construction: int = 200,
    ann_ef_search: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """Write embedding tables (and optionally an ANN index) into an export directory.

    Args:
        out_dir: destination directory; written atomically.
        tables: ``{name: (ids [n] str, vectors [n, d])}``, e.g. ``users``, ``items``,
            ``entities``. Vectors are stored as float32.
        format: ``"parquet"`` (one ``<name>.parquet`` with ``id``, ``vector``) or
            ``"npy"`` (``<name>.npy`` + ``<name>_ids.npy``).
        metadata: JSON-serialisable facts to keep under ``manifest["metadata"]``
            (model name, training config, ...).
        ann: ``"faiss"``, ``"hnswlib"`` or ``"none"``; an index needs an ``items`` table.
        score: how vectors are meant to be compared, ``"dot"`` or ``"cosine"``;
            with ``"cosine"`` the ANN index is built over unit-length item vectors.
        overwrite: replace an existing non-empty ``out_dir``.
        ann_queries: table whose vectors are the recall queries (default
            ``users`` when present, else ``items``).
        ann_sample: at most this many query rows (a seeded random sample).
        ann_m, ann_ef_construction, ann_ef_search: HNSW parameters.
        seed: seed of the query sample and of hnswlib's level generator.

    Returns:
        The manifest as written.

    Raises:
        ValueError: bad table names, ids or vectors, unknown ``format``/``ann``/``score``,
            ANN without an ``items`` table, or an unknown ``ann_queries`` table.
        TypeError: non-string ids or non-numeric vectors.
        ImportError: the ANN library asked for is not installed (the message says what to install).
        FileExistsError: ``out_dir`` exists and is not empty, without ``overwrite``.
    """
    if format not in ("parquet", "npy"):
        raise ValueError(f"format must be 'parquet' or 'npy', got {format!r}")
    if ann not in ANN_BACKENDS:
        raise ValueError(f"ann must be one of {ANN_BACKENDS}, got {ann!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    checked = _check_tables(tables)
    if ann != "none":
        if "items" not in checked:
            raise ValueError(f"ann={ann!r} indexes the 'items' table, which tables lacks ({sorted(checked)})")
        if ann_queries is None:
            ann_queries = "users" if "users" in checked else "items"
        if ann_queries not in checked:
            raise ValueError(f"ann_queries={ann_queries!r} is not one of the tables {sorted(checked)}")
        if checked[ann_queries][1].shape[1] != checked["items"][1].shape[1]:
            raise ValueError(
                f"ann_queries table {ann_queries!r} has dim {checked[ann_queries][1].shape[1]}, "
                f"items has {checked['items'][1].shape[1]}"
            )
        _import_ann(ann)  # fail before writing anything

    with atomic_dir(out_dir, overwrite=overwrite, replaces=FORMAT) as tmp:
        entries = {}
        for name, (ids, vectors) in checked.items():
            files = _write_table(tmp, name, ids, vectors, format)
            entries[name] = {
                "rows": int(vectors.shape[0]),
                "dim": int(vectors.shape[1]),
                "dtype": "float32",
                "normalised": _is_normalised(vectors),
                "score": score,
                "layout": "parquet-id-vector" if format == "parquet" else "npy-vectors+npy-ids",
                "files": files,
                "sha256": {f: sha256_file(tmp / f) for f in sorted(set(files.values()))},
            }
        ann_entry = None
        if ann != "none":
            items = checked["items"][1]
            queries = checked[ann_queries][1]
            rng = np.random.default_rng(seed)
            if len(queries) > ann_sample:
                queries = queries[np.sort(rng.choice(len(queries), ann_sample, replace=False))]
            if score == "cosine":
                items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
                queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
            ann_entry = _build_ann(
                tmp,
                ann,
                np.ascontiguousarray(items, dtype=np.float32),
                np.ascontiguousarray(queries, dtype=np.float32),
                m=ann_m,
                ef_construction=ann_ef_construction,
                ef_search=ann_ef_search,
                seed=seed,
            )
            ann_entry["queries_table"] = ann_queries
            ann_entry["sha256"] = sha256_file(tmp / ann_entry["file"])
        manifest = write_manifest(
            tmp,
            format=FORMAT,
            format_version=FORMAT_VERSION,
            metadata={"tables": entries, "ann": ann_entry, "metadata": dict(metadata or {})},
            libraries=("numpy", "pyarrow", "torch"),
        )
    return manifest


def _read_table(
    directory: Path, name: str, entry: Mapping[str, Any], listed: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    files = entry.get("files") if isinstance(entry, Mapping) else None
    if not isinstance(files, Mapping) or "vectors" not in files:
        raise ArtifactError(f"{directory}: table {name!r} names no vectors file in the manifest")
    for role, rel in files.items():
        check_entry(rel, f"{directory}: table {name!r} {role} file")
        if rel not in listed:
            raise ArtifactError(f"{directory}: table {name!r} {role} file {rel!r} is not in the manifest's file list")
    vectors_file, ids_file = directory / files["vectors"], directory / files.get("ids", files["vectors"])
    if vectors_file.suffix == ".parquet":
        table = pq.read_table(vectors_file)
        if table.column_names[:2] != ["id", "vector"]:
            raise ArtifactError(f"{vectors_file}: expected columns id, vector; found {table.column_names}")
        ids = table.column("id").to_numpy().astype(object, copy=False)
        column = table.column("vector").combine_chunks()
        dim = int(entry.get("dim", 0))
        flat = column.flatten().to_numpy(zero_copy_only=False)
        vectors = flat.astype(np.float32, copy=False).reshape(len(ids), dim)
    else:
        vectors = np.load(vectors_file, allow_pickle=False)
        ids = np.load(ids_file, allow_pickle=False).astype(object)
    if vectors.shape != (entry.get("rows"), entry.get("dim")) or len(ids) != vectors.shape[0]:
        raise ArtifactError(
            f"{directory}: table {name!r} holds {len(ids)} ids and vectors {vectors.shape}; "
            f"the manifest says {entry.get('rows')} x {entry.get('dim')}"
        )
    return ids, vectors


def read_embeddings(out_dir: str | os.PathLike, *, verify: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load every table of an export written by :func:`write_embeddings`.

    Args:
        out_dir: the export directory.
        verify: check every file's size and sha256 against the manifest first.

    Returns:
        ``{name: (ids object array [n] of str, vectors float32 [n, d])}``.

    Raises:
        ArtifactError: not an embeddings export, a newer format version, a missing
            or modified file, or a table whose shape disagrees with the manifest.
    """
    directory = Path(out_dir)
    manifest = read_manifest(directory, format=FORMAT, max_version=FORMAT_VERSION, verify=verify)
    tables = manifest.get("tables")
    if not isinstance(tables, dict):
        raise ArtifactError(f"{directory}: manifest has no 'tables' section")
    return {name: _read_table(directory, name, entry, manifest["files"]) for name, entry in tables.items()}
