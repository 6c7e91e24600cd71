"""Issue 11 point 5: the manifest check is a whitelist that cannot be bypassed.

Entries must be relative paths inside the artifact, the list must cover every file
present and may not be empty, sources load only through checked entries, the
encoder's weights load from safetensors only, and no message tells anything about
a file outside the artifact.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from graphrec.artifacts.model import load_model
from kg import ArtifactError, load_graph
from kg.artifact import sha256_file
from tests.reliability import kit


def _copy(source, destination):
    shutil.copytree(source, destination)
    return destination


def _edit_manifest(directory, change):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _list_file(manifest, directory, rel):
    manifest["files"][rel] = {"sha256": sha256_file(directory / rel), "bytes": (directory / rel).stat().st_size}


@pytest.fixture
def graph(tmp_path_factory, tmp_path):
    return _copy(kit.tiny_graph(tmp_path_factory), tmp_path / "graph")


@pytest.fixture
def model(tmp_path_factory, tmp_path):
    return _copy(kit.tiny_model(tmp_path_factory), tmp_path / "model")


def test_absolute_entry_is_refused_without_reading_the_outside_file(graph, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x" * 12345)
    _edit_manifest(graph, lambda m: m["files"].update({str(secret): {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(ArtifactError, match="not a relative path inside the artifact") as info:
        load_graph(graph)
    assert "12345" not in str(info.value)


@pytest.mark.parametrize("entry", ["../secret.txt", "a/../../secret.txt", "./users.parquet", "a//b", "a\\b"])
def test_entries_leaving_the_artifact_are_refused(graph, tmp_path, entry):
    (tmp_path / "secret.txt").write_text("y" * 4321)
    _edit_manifest(graph, lambda m: m["files"].update({entry: {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(ArtifactError, match="not a relative path inside the artifact") as info:
        load_graph(graph)
    assert "4321" not in str(info.value)


@pytest.mark.parametrize("files", [{}, None, [], "x"])
def test_empty_or_missing_file_list_is_an_error_not_a_free_pass(graph, files):
    with open(graph / "users.parquet", "r+b") as handle:  # a corruption nothing else would catch
        handle.seek(10)
        handle.write(b"\xff\xff")
    _edit_manifest(graph, lambda m: m.__setitem__("files", files) if files is not None else m.pop("files"))
    with pytest.raises(ArtifactError, match="file list is missing or empty"):
        load_graph(graph)
    with pytest.raises(ArtifactError):
        load_graph(graph, verify=False)


def test_extra_file_is_an_error_naming_it(graph):
    (graph / "sub").mkdir()
    (graph / "sub" / "planted.parquet").write_bytes(b"PAR1")
    with pytest.raises(ArtifactError, match="does not list.*sub/planted.parquet"):
        load_graph(graph)


def test_symlink_is_refused_even_with_a_matching_checksum(graph, tmp_path):
    outside = tmp_path / "users-outside.parquet"
    shutil.move(graph / "users.parquet", outside)
    os.symlink(outside, graph / "users.parquet")
    with pytest.raises(ArtifactError, match="symbolic links"):
        load_graph(graph)


def test_required_entry_missing_is_an_error(graph):
    os.remove(graph / "items.parquet")
    _edit_manifest(graph, lambda m: m["files"].pop("items.parquet"))
    with pytest.raises(ArtifactError, match="lists no items.parquet"):
        load_graph(graph)


@pytest.mark.parametrize("name", ["../../outside", "/tmp/outside", "a/b", ".."])
def test_shipped_sources_outside_the_artifact_are_refused(model, tmp_path, name):
    _edit_manifest(model, lambda m: m["shipped_sources"].append(name))
    with pytest.raises(ArtifactError, match="shipped_sources entry"):
        load_model(model)


def test_shipped_source_without_listed_files_is_refused(model):
    (model / "sources" / "ghost").mkdir()
    _edit_manifest(model, lambda m: m["shipped_sources"].append("ghost"))
    with pytest.raises(ArtifactError, match="source 'ghost' needs sources/ghost/config.json"):
        load_model(model)


class _Payload:
    """Unpickling this creates a marker directory: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_encoder_weights_are_never_loaded(model, tmp_path):
    encoder = model / "sources" / "text" / "encoder"
    assert (encoder / "model.safetensors").is_file(), sorted(os.listdir(encoder))
    marker = tmp_path / "unpickled"
    os.remove(encoder / "model.safetensors")
    (encoder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))

    def relist(manifest):
        manifest["files"].pop("sources/text/encoder/model.safetensors")
        _list_file(manifest, model, "sources/text/encoder/pytorch_model.bin")

    _edit_manifest(model, relist)  # a consistent manifest: checksums cannot stop this
    loaded = load_model(model)
    with pytest.raises(ValueError, match="could not be loaded"):
        loaded.sources["text"].encoder
    assert not marker.exists()


def test_a_corrupted_model_file_is_caught(model):
    state = model / "sources" / "als" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(model)


def test_export_tables_read_only_listed_entries(tmp_path_factory, tmp_path):
    from graphrec.artifacts.embeddings import read_embeddings
    from graphrec.export import main as export

    out = tmp_path / "export"
    assert export(["--model", str(kit.tiny_model(tmp_path_factory)), "--out", str(out), "--format", "npy"]) == 0
    (tmp_path / "outside.npy").write_bytes((out / "items.npy").read_bytes())
    _edit_manifest(out, lambda m: m["tables"]["items"]["files"].update({"vectors": "../outside.npy"}))
    with pytest.raises(ArtifactError, match="table 'items' vectors file '../outside.npy' is not a relative path"):
        read_embeddings(out)
