"""``python -m graphrec.evaluate``: run as a user would, checked against evaluate() directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval import METRIC_KEYS, RandomScorer, evaluate, topk
from graphrec.evaluate import main

ROOT = Path(__file__).resolve().parents[2]
K = 10


@pytest.fixture(scope="module")
def workspace(structured_graph, tmp_path_factory):
    """The structured graph saved as an artifact plus a recommendations file of a random scorer."""
    base = tmp_path_factory.mktemp("cli")
    structured_graph.save(base / "g")
    train = structured_graph.matrix("train", "valid")
    users = np.arange(structured_graph.num_users)
    scorer = RandomScorer(seed=5).fit(train)
    items, scores = topk(scorer, users, K + 5, exclude=train)
    frame = pd.DataFrame(
        {
            "user": np.repeat(structured_graph.user_ids, K + 5),
            "item": structured_graph.item_ids[items.ravel()],
            "rank": np.tile(np.arange(1, K + 6), len(users)),
            "score": scores.ravel(),
        }
    )
    frame.to_csv(base / "recs.csv", index=False)
    return base, frame, scorer


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "graphrec.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_cli_matches_evaluate_and_writes_json_and_report(workspace, structured_graph):
    base, _, scorer = workspace
    done = _run(
        "--graph", str(base / "g"), "--recommendations", str(base / "recs.csv"), "--k", str(K),
        "--json", str(base / "out.json"), "--report", str(base / "report"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = evaluate(
        scorer,
        train=structured_graph.matrix("train", "valid"),
        test=structured_graph.matrix("test"),
        item_ids=structured_graph.item_ids,
        k=K,
    )
    written = json.loads((base / "out.json").read_text())
    assert {key: written[key] for key in METRIC_KEYS} == pytest.approx(expected.metrics)
    assert (written["k"], written["n_users"], written["split"]) == (K, expected.n_users, "test")
    assert written["source"]["rows_beyond_k"] == 5 * structured_graph.num_users
    assert [d["recall"] for d in written["deciles"]] == pytest.approx([d["recall"] for d in expected.deciles])
    assert f"| Recall@{K} | {expected.metrics['recall']:.4f} |" in done.stdout
    assert sorted(p.name for p in (base / "report").iterdir()) == [
        "longtail_curve.png", "metrics.json", "metrics.md", "plots.json", "recall_by_decile.png",
    ]  # fmt: skip


def test_cli_bad_input_exits_2_without_traceback(workspace):
    base, frame, _ = workspace
    bad = frame.copy()
    bad.loc[[0, 3], "item"] = ["nope", "missing"]
    bad.to_csv(base / "unknown.csv", index=False)
    done = _run("--graph", str(base / "g"), "--recommendations", str(base / "unknown.csv"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "2 rows name 2 item ids unknown to the graph, e.g. ['nope', 'missing']" in done.stderr


def test_valid_split_from_parquet(workspace, structured_graph, capsys):
    base, frame, scorer = workspace
    frame.to_parquet(base / "recs.parquet", index=False)
    rc = main(["--graph", str(base / "g"), "--recommendations", str(base / "recs.parquet"),
               "--k", "5", "--split", "valid", "--json", str(base / "valid.json")])  # fmt: skip
    assert rc == 0
    written = json.loads((base / "valid.json").read_text())
    # The file was ranked with train+valid masked, so under --split valid it lists no valid
    # item: every hit is impossible and that is what the numbers must say.
    assert written["recall"] == 0.0 and written["split"] == "valid"
    valid_users = int((np.diff(structured_graph.matrix("valid").indptr) > 0).sum())
    assert written["n_users"] == valid_users
    assert "valid split, K=5" in capsys.readouterr().out


def test_short_lists_missing_users_and_train_items_are_reported(workspace, structured_graph, capsys):
    base, frame, _ = workspace
    train_items = structured_graph.matrix("train")
    first_train = structured_graph.item_ids[train_items[0].indices[0]]
    edited = frame[(frame["user"] != "u1") & ~((frame["user"] == "u2") & (frame["rank"] > 3))].copy()
    edited.loc[(edited["user"] == "u0") & (edited["rank"] == 1), "item"] = first_train
    edited.to_csv(base / "edited.csv", index=False)
    rc = main(["--graph", str(base / "g"), "--recommendations", str(base / "edited.csv"), "--k", str(K),
               "--json", str(base / "edited.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    written = json.loads((base / "edited.json").read_text())
    assert written["lists"]["empty"] == 1  # u1
    assert written["lists"]["short"] == 2  # u1 and u2 (3 items)
    assert written["lists"]["train_items_listed"] == 1
    assert "evaluated as short lists" in out and "evaluated as given (not removed)" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--k", "81"], "--k 81 is larger than the catalogue (80 items)"),
        (["--k", "0"], "--k must be >= 1"),
    ],
)
def test_bad_k(workspace, capsys, extra, message):
    base, _, _ = workspace
    assert main(["--graph", str(base / "g"), "--recommendations", str(base / "recs.csv"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_duplicates_unknown_ids_model_and_missing_graph(workspace, capsys, tmp_path):
    base, frame, _ = workspace
    duplicated = pd.concat([frame, frame.iloc[[3]]])
    duplicated.to_csv(tmp_path / "dup.csv", index=False)
    assert main(["--graph", str(base / "g"), "--recommendations", str(tmp_path / "dup.csv")]) == 2
    assert "user 'u0' has rank 4 more than once" in capsys.readouterr().err

    unknown = frame.copy()
    unknown.loc[0, "user"] = "stranger"
    unknown.to_csv(tmp_path / "unknown.csv", index=False)
    args = ["--graph", str(base / "g"), "--recommendations", str(tmp_path / "unknown.csv"), "--ignore-unknown"]
    assert main(args) == 0
    assert "dropped 1 rows with unknown user ids and 0 rows with unknown item ids" in capsys.readouterr().out

    assert main(["--graph", str(base / "g"), "--model", str(tmp_path)]) == 2
    assert "no manifest.json; this is not a graphrec.model artifact" in capsys.readouterr().err

    assert main(["--graph", str(tmp_path / "nowhere"), "--recommendations", str(base / "recs.csv")]) == 2
    assert "graphrec.evaluate: error:" in capsys.readouterr().err

    assert main(["--graph", str(base / "g")]) == 2  # argparse: one of --model/--recommendations required
    assert "one of the arguments --model --recommendations is required" in capsys.readouterr().err
