"""Issue 10 point 4 / issue 11 point 7: outputs get the umask's mode, not mkstemp's owner-only one.

Graph and model artifacts (reports included), recommendation files and export
folders: files ``0o666 & ~umask``, directories ``0o777 & ~umask``.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from eval.result import write_atomic
from graphrec.build import main as build
from graphrec.export import main as export
from graphrec.recommend import main as recommend
from graphrec.train import main as train
from kg.atomic import atomic_dir, atomic_file
from tests.reliability import kit


@contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(path):
    """``{relative path: mode}`` of ``path`` and everything under it."""
    found = {".": stat.S_IMODE(os.stat(path).st_mode)}
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                full = os.path.join(root, name)
                found[os.path.relpath(full, path)] = stat.S_IMODE(os.stat(full).st_mode)
    return found


def _assert_umask_modes(path, mask):
    for rel, mode in _modes(path).items():
        expected = (0o777 if os.path.isdir(os.path.join(path, rel)) else 0o666) & ~mask
        assert mode == expected, f"{path}/{rel}: {oct(mode)}, expected {oct(expected)}"


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_helpers_give_the_umask_mode(tmp_path, mask):
    with _umask(mask):
        with atomic_dir(tmp_path / "dir") as tmp:
            (tmp / "sub").mkdir(mode=0o700)
            (tmp / "sub" / "f").write_text("x")
            os.chmod(tmp / "sub" / "f", 0o600)  # as some libraries write
        with atomic_file(tmp_path / "file.txt", exclusive=True) as tmp:
            tmp.write_text("x")
        write_atomic(tmp_path / "report.md", b"# report")
    _assert_umask_modes(tmp_path / "dir", mask)
    _assert_umask_modes(tmp_path / "file.txt", mask)
    _assert_umask_modes(tmp_path / "report.md", mask)


def test_every_verb_output_gets_0644_and_0755_under_umask_022(tmp_path_factory, tmp_path):
    inputs = kit.tiny_inputs(tmp_path / "data")
    bert = kit.tiny_bert(tmp_path_factory)
    with _umask(0o022):
        assert build(kit.build_args(inputs, tmp_path / "graph")) == 0
        assert train(kit.train_args(tmp_path / "graph", tmp_path / "model", bert)) == 0
        model = str(tmp_path / "model")
        assert recommend(["--model", model, "--out", str(tmp_path / "recs.csv"), "--quiet", "--k", "3"]) == 0
        assert export(["--model", model, "--out", str(tmp_path / "export"), "--format", "npy"]) == 0
    for name in ("graph", "model", "recs.csv", "export"):
        _assert_umask_modes(tmp_path / name, 0o022)
    assert _modes(tmp_path / "model")["report/report.md"] == 0o644
    assert _modes(tmp_path / "model")["."] == 0o755
