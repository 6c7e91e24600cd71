"""Issue 11 point 2: replacing an artifact is crash-safe at every instant.

A SIGKILL at any moment leaves the old or the new artifact at the path (at once
with Linux's atomic exchange; after the next run's recovery with the portable
two-rename path), intact, and the next run on the path leaves no leftovers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kg.artifact import read_manifest, write_manifest
from kg.atomic import _exchange, atomic_dir, claim, leftovers
from tests.reliability import kit

CHILD = Path(__file__).with_name("_replace_child.py")
FORMAT = "test.replace"


def _write_version(dest: Path, version: int) -> None:
    with atomic_dir(dest, overwrite=True, replaces=FORMAT) as tmp:
        (tmp / "part-00.txt").write_text(f"{version}\n")
        write_manifest(tmp, format=FORMAT, format_version=1, metadata={"version": version})


def _intact_version(dest: Path) -> int:
    manifest = read_manifest(dest, format=FORMAT, max_version=1)  # checks every sha256
    version = manifest["version"]
    for rel in manifest["files"]:
        assert (dest / rel).read_text().split()[0] == str(version), rel
    return version


def _child(dest: Path, version: int, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(dest), str(version), *flags], env=kit.ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _exchange_supported(tmp_path: Path) -> bool:
    a, b = tmp_path / "xa", tmp_path / "xb"
    a.mkdir(), b.mkdir()
    try:
        return _exchange(a, b)
    finally:
        os.rmdir(a), os.rmdir(b)


@pytest.mark.parametrize("flags", [(), ("--no-exchange",)], ids=["exchange", "two-renames"])
def test_random_kills_leave_old_or_new_and_no_leftovers(tmp_path, flags):
    rng = random.Random(11 + len(flags))
    dest = tmp_path / "artifact"
    _write_version(dest, 0)
    version = 0
    for _ in range(6):
        child = _child(dest, version + 1, *flags)
        child.stdout.readline()  # one replacement done: the child now replaces in a loop
        time.sleep(rng.uniform(0, 0.3))
        child.kill()
        out, err = child.communicate()
        assert child.returncode == -9, err[-2000:]
        with claim(dest) as notes:  # what the next run on the path does first
            found = _intact_version(dest)
            assert found >= version, (found, version, notes)
            assert leftovers(dest) == []
        version = found
        assert kit.hidden_leftovers(dest) == []


def test_kill_between_the_two_renames_is_restored_by_the_next_run(tmp_path):
    dest = tmp_path / "artifact"
    _write_version(dest, 5)
    child = _child(dest, 6, "--no-exchange", "--die-between-renames")
    _, err = child.communicate(timeout=60)
    assert child.returncode == -9, err[-2000:]
    assert not dest.exists()  # the window the exchange closes: the old one is aside
    assert any(".old-" in p.name for p in leftovers(dest))
    assert _intact_version(dest) == 5  # a reader puts it back (recover) and finds the old one
    assert kit.hidden_leftovers(dest) == []


def test_leftovers_of_a_dead_run_are_restored_or_removed_and_reported(tmp_path):
    dest = tmp_path / "artifact"
    _write_version(dest, 1)
    os.rename(dest, tmp_path / ".artifact.old-999999")
    (tmp_path / ".artifact.tmp-999999-abcd").mkdir()
    (tmp_path / ".artifact.tmp-999999-abcd" / "half.parquet").write_bytes(b"PAR1")
    (tmp_path / ".artifact.del-999999-ef01").mkdir()
    (tmp_path / ".artifactx.tmp-1-2").mkdir()  # another path's: not ours to touch
    with claim(dest) as notes:
        assert _intact_version(dest) == 1
    assert any("restored" in n for n in notes) and any("removed 2 leftover" in n for n in notes), notes
    assert sorted(os.listdir(tmp_path)) == [".artifactx.tmp-1-2", "artifact"]


def test_readers_always_see_a_complete_artifact_during_replacement(tmp_path):
    if not _exchange_supported(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here: the two-rename path has a gap")
    dest = tmp_path / "artifact"
    _write_version(dest, 0)
    child = _child(dest, 1)
    seen, polls, deadline = set(), 0, time.monotonic() + 20
    try:
        while len(seen) < 5 and time.monotonic() < deadline:
            with open(dest / "manifest.json", encoding="utf-8") as handle:  # never missing
                seen.add(json.load(handle)["version"])
            polls += 1
    finally:
        child.kill()
        child.communicate()
    assert len(seen) >= 3, (seen, polls)


# -- the verbs, killed at a random moment after they took the output's lock ----------------------


def test_killed_build_leaves_old_or_new_graph_and_next_build_cleans_up(tmp_path_factory, tmp_path):
    from graphrec.build import main as build
    from kg import load_graph

    graph = kit.tiny_graph(tmp_path_factory)
    inputs = kit.tiny_inputs(tmp_path / "data")
    out = tmp_path / "graph"
    assert build(kit.build_args(inputs, out)) == 0
    rng = random.Random(3)
    for _ in range(2):
        kit.kill_after_start(kit.verb("build", *kit.build_args(inputs, out, "--overwrite")), out, rng, 1.0)
        assert load_graph(out).num_users == load_graph(graph).num_users  # old or new, intact
        assert build(kit.build_args(inputs, out, "--overwrite")) == 0  # the next run
        assert kit.hidden_leftovers(out) == []


def test_killed_train_leaves_old_or_new_model_and_next_train_cleans_up(tmp_path_factory, tmp_path):
    from graphrec.artifacts.model import load_model
    from graphrec.train import main as train

    graph, bert = kit.tiny_graph(tmp_path_factory), kit.tiny_bert(tmp_path_factory)
    out = tmp_path / "model"
    args = kit.train_args(graph, out, bert, "--overwrite")
    assert train(args) == 0
    kit.kill_after_start(kit.verb("train", *args), out, random.Random(5), 3.0)
    load_model(out)  # old or new, intact
    assert train(args) == 0  # the next run
    load_model(out)
    assert kit.hidden_leftovers(out) == [] and not out.with_name("model.work").exists()
    assert kit.hidden_leftovers(out.with_name("model.work")) == []


def test_killed_recommend_leaves_old_or_new_file_and_next_run_cleans_up(tmp_path_factory, tmp_path):
    from graphrec.recommend import main as recommend

    model = kit.tiny_model(tmp_path_factory)
    out = tmp_path / "recs.parquet"
    args = ["--model", str(model), "--out", str(out), "--k", "5", "--quiet", "--batch-size", "16"]
    assert recommend(args) == 0
    expected = pd.read_parquet(out)
    kit.kill_after_start(kit.verb("recommend", *args), out, random.Random(9), 1.5)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)  # the old file, whole
    assert recommend(args) == 0  # the next run
    assert kit.hidden_leftovers(out) == []


def test_loading_a_missing_artifact_creates_nothing(tmp_path):
    from kg import ArtifactError, load_graph

    with pytest.raises(ArtifactError, match="no such artifact directory"):
        load_graph(tmp_path / "nowhere" / "graph")
    assert os.listdir(tmp_path) == []
