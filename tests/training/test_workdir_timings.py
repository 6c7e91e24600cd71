"""Stage timings survive ``--resume``: a stage's seconds are summed over the runs that worked on it."""

from __future__ import annotations

import json
import os

import pytest

from training.pipeline.workdir import WorkDir

CONFIG = {"seed": 1}


def killed_run(path, gnn_seconds_kept: float) -> float:
    """A run that finished ``text`` in 2 s, then was killed in ``gnn`` after a checkpoint; returns the gnn start."""
    work = WorkDir(path, config=CONFIG, graph_fingerprint="g", resume=False)
    work.begin("text")
    assert work.mark_done("text", 2.0) == 2.0
    work.begin("gnn")
    since = work.state["running"]["since"]
    checkpoint = path / "gnn-checkpoints" / "fit" / "progress.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("{}")
    os.utime(checkpoint, (since + gnn_seconds_kept, since + gnn_seconds_kept))
    (path / "state.json").touch()
    os.utime(path / "state.json", (since, since))  # state.json was last written when gnn began
    return since  # no mark_done: SIGKILL


def test_resume_credits_the_interrupted_stage_with_the_time_it_kept(tmp_path):
    killed_run(tmp_path / "w", gnn_seconds_kept=30.0)
    state = json.loads((tmp_path / "w" / "state.json").read_text())
    assert state["running"]["stage"] == "gnn" and state["timings"] == {"text": 2.0}

    resumed = WorkDir(tmp_path / "w", config=CONFIG, graph_fingerprint="g", resume=True)
    assert resumed.done("text") and not resumed.done("gnn")
    assert resumed.previous_seconds == pytest.approx(32.0, abs=0.01)
    resumed.begin("gnn")
    assert resumed.mark_done("gnn", 5.0) == pytest.approx(35.0, abs=0.01)
    assert resumed.state["timings"] == pytest.approx({"text": 2.0, "gnn": 35.0}, abs=0.01)
    assert "running" not in resumed.state and resumed.state["interrupted"] == {}

    again = WorkDir(tmp_path / "w", config=CONFIG, graph_fingerprint="g", resume=True)  # nothing left to credit
    assert again.previous_seconds == pytest.approx(37.0, abs=0.01)
    assert again.state["timings"]["gnn"] == pytest.approx(35.0, abs=0.01)


def test_two_interruptions_add_up_and_a_fresh_run_forgets(tmp_path):
    killed_run(tmp_path / "w", gnn_seconds_kept=10.0)
    second = WorkDir(tmp_path / "w", config=CONFIG, graph_fingerprint="g", resume=True)
    second.begin("gnn")  # killed again, 4 s after its own start
    since = second.state["running"]["since"]
    checkpoint = tmp_path / "w" / "gnn-checkpoints" / "fit" / "progress.json"
    os.utime(checkpoint, (since + 4.0, since + 4.0))
    os.utime(tmp_path / "w" / "state.json", (since, since))
    third = WorkDir(tmp_path / "w", config=CONFIG, graph_fingerprint="g", resume=True)
    assert third.state["interrupted"] == {"gnn": pytest.approx(14.0, abs=0.01)}
    assert third.mark_done("gnn", 1.0) == pytest.approx(15.0, abs=0.01)

    fresh = WorkDir(tmp_path / "w", config=CONFIG, graph_fingerprint="g", resume=False)
    assert fresh.previous_seconds == 0 and fresh.state["timings"] == {}
