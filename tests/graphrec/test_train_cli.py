"""``python -m graphrec.train`` end to end, as a user runs it: demo, artifact, evaluate, resume.

Runs on the tiny demo with a tiny random BERT (the point is the mechanics; the real
encoder is exercised in tests/training/test_text_encoder.py) and small settings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphrec.artifacts.model import load_model
from graphrec.train import main
from kg import ArtifactError
from tests.graphrec.conftest import QUICK, ROOT, run_cli, sets


def test_demo_run_writes_a_model_and_prints_the_report(demo_model):
    base, done = demo_model
    model_dir = base / "model"
    assert "graphrec training report" in done.stdout and "**hybrid**" in done.stdout
    assert "## Ablation" in done.stdout and "hybrid - sources" in done.stdout
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["format"] == "graphrec.model"
    assert set(manifest["libraries"]) >= {"torch", "transformers", "implicit", "torch_geometric"}
    assert manifest["config"]["text"]["fine_tune_steps"] == 5 and manifest["config"]["device"] == "cpu"
    assert manifest["shipped_sources"] == ["als", "ease", "gnn", "graphfilter", "itemknn", "text"]
    for path in ("ranker/state.safetensors", "sources/gnn/state.safetensors", "sources/text/encoder/model.safetensors",
                 "sources/als/state.safetensors", "graph/manifest.json", "report/report.md",
                 "report/recall_by_decile.png", "embeddings.safetensors"):
        assert (model_dir / path).is_file(), path
    assert not list(model_dir.rglob("*.pkl")) and not list(model_dir.rglob("*.pt"))
    assert not (base / "model.work").exists()  # the work directory goes once the artifact is written
    test = manifest["metrics"]["test"]
    assert test["hybrid"]["ndcg"] > 1.2 * test["pop"]["ndcg"]
    for name in ("als", "itemknn", "ease", "graphfilter"):  # the GNN gets 10 epochs: tested elsewhere
        assert test[name]["ndcg"] > test["pop"]["ndcg"], name


def test_demo_report_is_named_linked_and_plots_every_source(demo_model):
    base, done = demo_model
    report_dir = base / "model" / "report"
    assert done.stdout.rstrip().endswith(f"report: {report_dir / 'report.md'} (plots beside it)")
    text = (report_dir / "report.md").read_text()
    assert text.startswith("# graphrec training report: demo\n")
    for png in ("recall_by_decile.png", "longtail_curve.png", "training_curves.png"):
        assert f"]({png})" in text and (report_dir / png).is_file(), png
    ablation = text.split("## Ablation", 1)[1].split("\n## ", 1)[0]
    assert "| ALS |" not in ablation and "**hybrid**" not in ablation and "| hybrid - " in ablation
    plots = json.loads((report_dir / "plots.json").read_text())
    manifest = json.loads((base / "model" / "manifest.json").read_text())
    models = [*(n for n in manifest["metrics"]["test"] if n != "hybrid"), "hybrid"]
    assert list(plots["recall_by_decile"]["series"]) == models
    assert list(plots["longtail"]["series"]) == models
    assert {"gnn", "ranker"} <= set(plots["training_curves"])


def test_progress_off_a_terminal_is_a_few_labelled_lines(demo_model):
    _, done = demo_model
    err = done.stderr
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) < 150, lines[:20]
    assert all(line.startswith("[") for line in lines if "%" in line or " done: " in line)
    assert not any("Loading weights" in line or "Writing model shards" in line for line in lines)


def test_evaluate_model_matches_training_metrics(demo_model, capsys):
    from graphrec.evaluate import main as evaluate_main

    base, _ = demo_model
    out = base / "eval.json"
    assert evaluate_main(["--model", str(base / "model"), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    expected = json.loads((base / "model" / "manifest.json").read_text())["metrics"]["test"]["hybrid"]
    for key in ("recall", "ndcg", "tail_recall", "coverage", "gini", "map"):
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    assert got["sparse"]["ndcg"] == pytest.approx(expected["sparse"]["ndcg"], abs=1e-9)


def test_loading_checks_every_file(demo_model, tmp_path):
    import shutil

    base, _ = demo_model
    copy = tmp_path / "model"
    shutil.copytree(base / "model", copy)
    model = load_model(copy)
    assert model.ranker is not None and set(model.sources) >= {"als", "gnn", "text", "pop"}
    target = copy / "sources" / "als" / "state.safetensors"
    target.write_bytes(target.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match=r"sources/als/state\.safetensors: .*checksum|sha256"):
        load_model(copy)
    target.unlink()
    with pytest.raises(ArtifactError, match=r"file sources/als/state\.safetensors listed in manifest\.json is missing"):
        load_model(copy)


def test_bad_input_exits_2_with_one_line(demo_model, tmp_path, capsys):
    base, _ = demo_model
    graph = str(base / "graph")
    assert main(["--graph", graph, "--out", str(base / "model")]) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["--graph", graph, "--out", str(tmp_path / "m"), "--stages", "als,bogus"]) == 2
    assert "unknown stage(s) ['bogus']" in capsys.readouterr().err
    assert main(["--graph", graph, "--out", str(tmp_path / "m"), "--set", "als.factors=-1"]) == 2
    assert "factors must be an integer >= 1" in capsys.readouterr().err
    assert main(["--graph", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    assert "graphrec.train: error:" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def without_seconds(value):
    """Metrics without their wall-clock timings (the only part that may differ between runs)."""
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_seconds(v) for v in value]
    return value


def _wait_for_gnn_epoch(work: Path, proc: subprocess.Popen, timeout: float = 240) -> bool:
    progress = work / "gnn-checkpoints" / "fit" / "progress.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.is_file():
            try:
                if json.loads(progress.read_text())["progress"]["epoch"] >= 2:
                    return True
            except (json.JSONDecodeError, KeyError, OSError):
                pass  # being replaced right now
        time.sleep(0.02)
    return False


def test_killed_in_gnn_stage_resumes_to_identical_metrics(demo_model, tiny_bert, tmp_path):
    base, _ = demo_model
    graph = str(base / "graph")
    # A slower GNN stage (small batches, no early stop) leaves time to kill it mid-way.
    args = sets(f"text.model={tiny_bert}", *QUICK, "gnn.epochs=25", "gnn.batch_size=128", "gnn.patience=50")
    whole = run_cli("--graph", graph, "--out", str(tmp_path / "whole"), "--quiet", *args)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out, work = tmp_path / "resumed", tmp_path / "resumed.work"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphrec.train", "--graph", graph, "--out", str(out), "--quiet", *args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert _wait_for_gnn_epoch(work, proc), "the run never reached GNN epoch 2"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    state = json.loads((work / "state.json").read_text())
    assert "gnn" not in state["done"] and {"text", "als", "neighbors"} <= set(state["done"])
    assert state["running"]["stage"] == "gnn"
    last_write = max(p.stat().st_mtime for p in work.rglob("*") if p.is_file())  # the GNN's last checkpoint
    gnn_kept = last_write - state["running"]["since"]
    assert gnn_kept > 0
    assert not out.exists()

    resumed = run_cli("--graph", graph, "--out", str(out), "--quiet", "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[text] restored" in resumed.stdout and "[als] restored" in resumed.stdout
    expected = without_seconds(json.loads((tmp_path / "whole" / "manifest.json").read_text())["metrics"])
    got = without_seconds(json.loads((out / "manifest.json").read_text())["metrics"])
    assert got == expected
    # Timings cover every run: the stages done before the kill keep their seconds, the GNN
    # adds what it kept (up to its last checkpoint) to the resumed part, the last line says so.
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    for stage in ("text", "als", "neighbors"):
        assert timings[stage] == state["timings"][stage], stage
    resumed_gnn = float(re.search(r"\[gnn\] done in ([0-9.]+) s \(([0-9.]+) s with the run", resumed.stdout).group(1))
    assert timings["gnn"] == pytest.approx(resumed_gnn + gnn_kept, abs=0.2)
    total, this_run = map(float, re.search(r"in (\d+) s over all runs \((\d+) s in this one", resumed.stdout).groups())
    assert total >= this_run + sum(state["timings"].values()) + gnn_kept - 1


def test_resume_refuses_another_config(demo_model, tiny_bert, tmp_path, capsys):
    base, _ = demo_model
    graph, out = str(base / "graph"), str(tmp_path / "m")
    args = ["--graph", graph, "--out", out, "--quiet", "--stages", "als", "--keep-work"]
    assert main([*args, *sets("als.factors=8", "als.iterations=2")]) == 0
    import shutil

    shutil.rmtree(out)
    assert main([*args, "--resume", *sets("als.factors=9", "als.iterations=2")]) == 2
    assert "another configuration (differs in als.factors)" in capsys.readouterr().err
