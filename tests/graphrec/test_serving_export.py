"""Embedding export: layouts, manifest, checksums, atomicity, optional ANN indexes."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pandas as pd
import pytest

from graphrec.artifacts.embeddings import read_embeddings, write_embeddings
from kg.artifact import ArtifactError, sha256_file


def make_tables(seed: int = 0, n_users: int = 300, n_items: int = 500, dim: int = 16):
    rng = np.random.default_rng(seed)
    entities = rng.normal(size=(7, dim))
    return {
        "users": (np.array([f"u{i}" for i in range(n_users)]), rng.normal(size=(n_users, dim)).astype(np.float32)),
        "items": (np.array([f"item,{i}" for i in range(n_items)]), rng.normal(size=(n_items, dim)).astype(np.float32)),
        "entities": (
            np.array(["genre=rock", "genre=jazz", "créateur", "a b", "x\ny", "7", "NA"]),
            entities / np.linalg.norm(entities, axis=1, keepdims=True),
        ),
    }


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_round_trip_and_manifest(tmp_path, fmt):
    tables = make_tables()
    out = tmp_path / "export"
    manifest = write_embeddings(out, tables, format=fmt, metadata={"model": "lightgcn", "epochs": 3})
    loaded = read_embeddings(out)
    assert set(loaded) == {"users", "items", "entities"}
    for name, (ids, vectors) in tables.items():
        assert loaded[name][0].tolist() == ids.tolist()
        np.testing.assert_array_equal(loaded[name][1], vectors.astype(np.float32))
        assert loaded[name][1].dtype == np.float32

    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["format"] == "graphrec.embeddings" and on_disk["format_version"] == 1
    assert on_disk["metadata"] == {"model": "lightgcn", "epochs": 3}
    assert on_disk["ann"] is None
    entry = on_disk["tables"]["items"]
    assert (entry["rows"], entry["dim"], entry["dtype"], entry["score"]) == (500, 16, "float32", "dot")
    assert entry["normalised"] is False and on_disk["tables"]["entities"]["normalised"] is True
    for table in on_disk["tables"].values():
        for file_name, digest in table["sha256"].items():
            assert sha256_file(out / file_name) == digest == on_disk["files"][file_name]["sha256"]
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary directory left


def test_parquet_readable_with_pandas_alone(tmp_path):
    tables = make_tables()
    write_embeddings(tmp_path / "e", tables, format="parquet")
    frame = pd.read_parquet(tmp_path / "e" / "items.parquet")
    assert list(frame.columns) == ["id", "vector"]
    assert frame["id"].tolist() == tables["items"][0].tolist()
    np.testing.assert_array_equal(np.stack(frame["vector"].to_numpy()).astype(np.float32), tables["items"][1])


def test_npy_readable_with_numpy_alone(tmp_path):
    tables = make_tables()
    write_embeddings(tmp_path / "e", tables, format="npy")
    vectors = np.load(tmp_path / "e" / "entities.npy")  # allow_pickle=False is numpy's default
    ids = np.load(tmp_path / "e" / "entities_ids.npy")
    assert vectors.dtype == np.float32 and vectors.shape == (7, 16)
    assert ids.tolist() == tables["entities"][0].tolist()


def test_refuses_to_overwrite_and_failure_leaves_nothing(tmp_path):
    tables = make_tables()
    out = tmp_path / "e"
    write_embeddings(out, tables)
    with pytest.raises(FileExistsError, match="not empty"):
        write_embeddings(out, tables)
    write_embeddings(out, {"items": tables["items"]}, overwrite=True)
    assert set(read_embeddings(out)) == {"items"}
    bad = dict(tables, items=(tables["items"][0], np.full((500, 16), np.nan, np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        write_embeddings(tmp_path / "f", bad)
    assert sorted(os.listdir(tmp_path)) == ["e"]


def test_checksum_mismatch_is_reported(tmp_path):
    write_embeddings(tmp_path / "e", make_tables(), format="npy")
    vectors = np.load(tmp_path / "e" / "users.npy")
    vectors[0, 0] += 1.0
    np.save(tmp_path / "e" / "users.npy", vectors)
    with pytest.raises(ArtifactError, match="users.npy: sha256 checksum mismatch"):
        read_embeddings(tmp_path / "e")


def test_bad_input(tmp_path):
    tables = make_tables()
    ids, vectors = tables["items"]
    cases = [
        ({"items": (ids, vectors[:-1])}, {}, ValueError, r"must have shape \[500, d\]"),
        ({"items": (np.array(["a"] * 500), vectors)}, {}, ValueError, "appears more than once"),
        ({"../x": (ids, vectors)}, {}, ValueError, "not usable as a file name"),
        ({"items": (np.arange(500), vectors)}, {}, TypeError, "must be strings"),
        ({"items": (ids, vectors)}, {"format": "csv"}, ValueError, "format must be"),
        ({"items": (ids, vectors)}, {"ann": "annoy"}, ValueError, "ann must be one of"),
        ({"users": tables["users"]}, {"ann": "hnswlib"}, ValueError, "lacks"),
        ({}, {}, ValueError, "non-empty"),
    ]
    for given, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            write_embeddings(tmp_path / "bad", given, **kwargs)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_ann_index_and_recall(tmp_path, backend):
    module = pytest.importorskip("faiss" if backend == "faiss" else "hnswlib")
    tables = make_tables()
    out = tmp_path / "e"
    manifest = write_embeddings(out, tables, ann=backend, ann_sample=100)
    ann = manifest["ann"]
    assert ann["library"] == backend and ann["queries_table"] == "users" and ann["recall_queries"] == 100
    assert ann["recall_at_10"] >= 0.9
    assert ann["file"] in manifest["files"] and sha256_file(out / ann["file"]) == ann["sha256"]
    read_embeddings(out)  # the index file is checksummed too

    # A downstream system loads the index with the library alone and gets item row positions.
    users, items = tables["users"][1][:5], tables["items"][1]
    if backend == "faiss":
        index = module.read_index(str(out / ann["file"]))
        index.hnsw.efSearch = 128
        _, found = index.search(users, 10)
    else:
        index = module.Index(space="ip", dim=16)
        index.load_index(str(out / ann["file"]))
        index.set_ef(128)
        found, _ = index.knn_query(users, k=10)
    exact = np.argsort(-(users @ items.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact.tolist())])
    assert overlap >= 0.9


def test_missing_ann_library_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        write_embeddings(tmp_path / "e", make_tables(), ann="faiss")
    assert not (tmp_path / "e").exists()
