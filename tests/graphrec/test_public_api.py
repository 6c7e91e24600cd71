"""The package-level Python API (``graphrec.run_build``, ``graphrec.run_train``, ``graphrec.Recommender``).

The same work as the verbs, called from Python: a CSV log in, a graph artifact, a
model artifact, top-K lists out; errors are exceptions, not exit codes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import graphrec
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
    assert "Recommender" in done.stdout and "run_build" in done.stdout and "run_train" in done.stdout
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


def test_train_rejects_bad_settings_with_an_exception(tmp_path):
    graphrec.run_build(BuildConfig(interactions=str(_log(tmp_path / "log.csv"))), tmp_path / "graph")
    with pytest.raises(Exception, match="als.nope|nope"):
        graphrec.run_train(tmp_path / "graph", tmp_path / "model", settings={"als.nope": 1}, stages=["als"])
    assert not (tmp_path / "model").exists()
