"""Issue 11 points 1, 4 and 7: ``--overwrite`` never loses the user's files; OS failures exit 2.

``--overwrite`` replaces only an artifact of the verb's own format whose manifest
lists every file in it; anything else is refused with one line and left as it was.
An output that is, holds or lies inside an input is refused; ``--out .`` too.
"""

from __future__ import annotations

import os
import shutil

import pytest

from graphrec.build import main as build
from graphrec.export import main as export
from graphrec.recommend import main as recommend
from graphrec.train import main as train
from tests.reliability import kit


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _snapshot(directory):
    return sorted((p.relative_to(directory).as_posix(), p.read_bytes()) for p in directory.rglob("*") if p.is_file())


def test_build_refuses_out_that_holds_its_input(tmp_path, capsys):
    inputs = kit.tiny_inputs(tmp_path / "X")
    before = _snapshot(tmp_path / "X")
    assert build(kit.build_args(inputs, tmp_path / "X", "--overwrite")) == 2
    assert "holds the input --interactions" in _one_line_error(capsys)
    assert _snapshot(tmp_path / "X") == before


@pytest.mark.parametrize("what", ["user files", "graph plus a user file", "another format"])
def test_build_overwrite_replaces_only_its_own_artifact(tmp_path_factory, tmp_path, capsys, what):
    inputs = kit.tiny_inputs(tmp_path / "data")
    out = tmp_path / "out"
    if what == "user files":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
    elif what == "graph plus a user file":
        shutil.copytree(kit.tiny_graph(tmp_path_factory), out)
        (out / "notes.txt").write_text("mine")
    else:
        out.mkdir()
        (out / "manifest.json").write_text('{"format": "graphrec.model", "files": {"a": {}}}')
        (out / "a").write_text("x")
    before = _snapshot(out)
    capsys.readouterr()
    assert build(kit.build_args(inputs, out, "--overwrite")) == 2
    err = _one_line_error(capsys)
    assert "is not a graphrec.graph artifact" in err and "nothing was changed" in err, err
    assert _snapshot(out) == before and kit.hidden_leftovers(out) == []


def test_build_overwrite_replaces_a_graph_artifact(tmp_path_factory, tmp_path):
    inputs = kit.tiny_inputs(tmp_path / "data")
    out = tmp_path / "graph"
    shutil.copytree(kit.tiny_graph(tmp_path_factory), out)
    assert build(kit.build_args(inputs, out)) == 2  # without --overwrite
    assert build(kit.build_args(inputs, out, "--overwrite")) == 0
    assert kit.hidden_leftovers(out) == []


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_out_without_a_name_is_a_clear_error(tmp_path, capsys, out):
    inputs = kit.tiny_inputs(tmp_path / "data")
    assert build(kit.build_args(inputs, out, "--overwrite")) == 2
    err = _one_line_error(capsys)
    assert "is not a path graphrec can write an output to" in err and "empty name" not in err, err


def test_out_inside_an_artifact_is_refused(tmp_path_factory, tmp_path, capsys):
    graph = tmp_path / "graph"
    shutil.copytree(kit.tiny_graph(tmp_path_factory), graph)
    inputs = kit.tiny_inputs(tmp_path / "data")
    capsys.readouterr()
    assert build(kit.build_args(inputs, graph / "nested")) == 2
    assert "lies inside the graphrec.graph artifact" in _one_line_error(capsys)
    assert not (graph / "nested").exists()


def test_train_refuses_replacing_its_input_or_another_format(tmp_path_factory, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(kit.tiny_model(tmp_path_factory), model)
    before = _snapshot(model)
    bert = kit.tiny_bert(tmp_path_factory)
    capsys.readouterr()  # what building the fixtures printed
    assert train(kit.train_args(model / "graph", model, bert, "--overwrite")) == 2
    assert "holds the input --graph" in _one_line_error(capsys)
    graph = tmp_path / "graph"
    shutil.copytree(kit.tiny_graph(tmp_path_factory), graph)
    assert train(kit.train_args(model / "graph", graph, bert, "--overwrite")) == 2
    assert "is not a graphrec.model artifact" in _one_line_error(capsys)
    assert _snapshot(model) == before and kit.hidden_leftovers(model) == []


def test_export_overwrite_refuses_user_files_and_replaces_an_export(tmp_path_factory, tmp_path, capsys):
    model = kit.tiny_model(tmp_path_factory)
    capsys.readouterr()
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.csv").write_text("a,b\n")
    assert export(["--model", str(model), "--out", str(out), "--overwrite"]) == 2
    assert "is not a graphrec.embeddings artifact" in _one_line_error(capsys)
    assert (out / "keep.csv").read_text() == "a,b\n"
    os.remove(out / "keep.csv")
    assert export(["--model", str(model), "--out", str(out)]) == 0
    assert export(["--model", str(model), "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert export(["--model", str(model), "--out", str(model / "graph"), "--overwrite"]) == 2
    assert "lies inside the graphrec.model artifact" in _one_line_error(capsys)


def test_recommend_refuses_a_directory_or_its_model_as_out(tmp_path_factory, tmp_path, capsys):
    model = kit.tiny_model(tmp_path_factory)
    capsys.readouterr()
    (tmp_path / "dir.parquet").mkdir()
    assert recommend(["--model", str(model), "--out", str(tmp_path / "dir.parquet"), "--quiet"]) == 2
    assert "is a directory" in _one_line_error(capsys)
    assert recommend(["--model", str(model), "--out", str(model / "recs.parquet"), "--quiet"]) == 2
    assert "lies inside" in _one_line_error(capsys)


def test_unwritable_out_exits_2_with_one_line(tmp_path_factory, tmp_path, capsys):
    inputs = kit.tiny_inputs(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert build(kit.build_args(inputs, blocker / "graph")) == 2
    assert "a-file" in _one_line_error(capsys)
    graph, bert = kit.tiny_graph(tmp_path_factory), kit.tiny_bert(tmp_path_factory)
    capsys.readouterr()
    assert train(kit.train_args(graph, blocker / "model", bert)) == 2
    assert "a-file" in _one_line_error(capsys)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert build(kit.build_args(inputs, locked / "graph")) == 2
        assert "Permission denied" in _one_line_error(capsys)
        assert train(kit.train_args(graph, locked / "model", bert)) == 2
        assert "Permission denied" in _one_line_error(capsys)
