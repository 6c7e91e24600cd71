"""The package-level Python API (``graphrec.run_build``, ``run_train``, ``run_evaluate``, ``Recommender``).

The same work as the verbs, called from Python: a CSV log in, a graph artifact, a
model artifact, metrics and top-K lists out; errors are exceptions, not exit codes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import graphrec
import graphrec.evaluate
from kg import BuildConfig, load_graph
from tests.graphrec.conftest import ROOT


def _log(path, users=60, items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}") for u in range(users) for i in rng.choice(items, size=8, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(path, index=False)
    return path


def test_import_is_light_and_names_resolve():
    code = "import graphrec, sys; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; print(graphrec.__all__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("Recommender", "run_build", "run_train", "run_evaluate"):
        assert name in done.stdout
    assert graphrec.run_evaluate is graphrec.evaluate.run_evaluate
    assert graphrec.Recommender.__module__ == "graphrec.serving.recommender"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        graphrec.nope  # noqa: B018


def test_build_train_recommend_from_python(tmp_path):
    log = _log(tmp_path / "log.csv")
    graph = graphrec.run_build(BuildConfig(interactions=str(log), valid_fraction=0.1), tmp_path / "graph")
    assert graph.num_users == 60 and load_graph(tmp_path / "graph").counts() == graph.counts()
    with pytest.raises(FileExistsError):
        graphrec.run_build(BuildConfig(interactions=str(log)), tmp_path / "graph")
    lines: list[str] = []
    out = graphrec.run_train(
        tmp_path / "graph", tmp_path / "model", stages=["als", "evaluate"],
        settings={"als.factors": 8, "als.iterations": 3}, device="cpu", log=lines.append,
    )  # fmt: skip
    assert out == tmp_path / "model" and any(line.startswith("wrote ") for line in lines)
    recs = graphrec.Recommender.load(out).recommend(["u0", "u1"], k=5)
    assert list(recs.columns[:4]) == ["user", "item", "rank", "score"]
    assert len(recs) == 10 and set(recs["user"]) == {"u0", "u1"}


def test_evaluate_from_python_matches_the_verb_and_a_recommendations_file(tmp_path, capsys):
    graphrec.run_build(BuildConfig(interactions=str(_log(tmp_path / "log.csv")), valid_fraction=0.1), tmp_path / "graph")
    model = graphrec.run_train(
        tmp_path / "graph", tmp_path / "model", stages=["als"], settings={"als.factors": 8, "als.iterations": 3},
        device="cpu", log=lambda line: None,
    )  # fmt: skip
    result = graphrec.run_evaluate(model, k=5, report=tmp_path / "report")
    assert result.k == 5 and result.n_users > 0 and 0.0 < result.metrics["recall"] <= 1.0
    assert (tmp_path / "report" / "metrics.json").is_file()
    assert graphrec.evaluate.main(["--model", str(model), "--k", "5", "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    assert "test split, K=5" in capsys.readouterr().out
    verb = json.loads((tmp_path / "m.json").read_text())
    assert verb["ndcg"] == pytest.approx(result.metrics["ndcg"]) and verb["recall"] == pytest.approx(result.metrics["recall"])
    # every user's top-5 written to a file and evaluated as given: the same lists, the same metrics
    users = load_graph(tmp_path / "graph").user_ids
    graphrec.Recommender.load(model).recommend(users, k=5).to_csv(tmp_path / "recs.csv", index=False)
    notes: list[str] = []
    from_file = graphrec.run_evaluate(
        recommendations=tmp_path / "recs.csv", graph=tmp_path / "graph", k=5, log=notes.append
    )
    assert from_file.n_users == result.n_users and notes and notes[0].startswith("Note: read 300 rows for 60 users")
    assert from_file.metrics["ndcg"] == pytest.approx(result.metrics["ndcg"], abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of model and recommendations"),
        ({"model": "m", "recommendations": "r.csv"}, ValueError, "exactly one"),
        ({"model": "m", "split": "train"}, ValueError, "split must be one of"),
        ({"model": "m", "k": 0}, ValueError, "k must be an integer >= 1"),
        ({"model": "m", "k": "5"}, TypeError, "k must be an integer"),
    ],
)
def test_evaluate_from_python_refuses_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        graphrec.run_evaluate(**kwargs)


def test_train_rejects_bad_settings_with_an_exception(tmp_path):
    graphrec.run_build(BuildConfig(interactions=str(_log(tmp_path / "log.csv"))), tmp_path / "graph")
    with pytest.raises(Exception, match="als.nope|nope"):
        graphrec.run_train(tmp_path / "graph", tmp_path / "model", settings={"als.nope": 1}, stages=["als"])
    assert not (tmp_path / "model").exists()
