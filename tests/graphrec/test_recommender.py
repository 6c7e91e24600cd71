"""Serving: the Recommender API, the recommend and export CLIs, cold start, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graphrec.evaluate import main as evaluate_main
from graphrec.export import main as export_main
from graphrec.recommend import main as recommend_main
from graphrec.serving.recommender import Recommender, UnknownIdError
from tests.graphrec.conftest import run_cli, sets


@pytest.fixture(scope="module")
def rec(demo_model) -> Recommender:
    base, _ = demo_model
    return Recommender.load(base / "model")


def test_recommend_known_users(rec):
    users = list(rec.user_ids[:5])
    out = rec.recommend(users, k=7)
    assert list(out.columns) == ["user", "item", "rank", "score"]
    assert out["user"].tolist() == [u for u in users for _ in range(7)]
    for user, group in out.groupby("user"):
        assert group["rank"].tolist() == list(range(1, 8))
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
        seen = set(rec.item_ids[rec.model.history[rec.user_index([user])[0]].indices])
        assert not seen & set(group["item"]), "seen items must be filtered"
    kept = rec.recommend(users[:1], k=7, filter_seen=False)
    scores = rec.score_users(rec.user_index(users[:1]))[0]
    top = rec.item_ids[np.argsort(-scores.numpy(), kind="stable")[:7]]
    assert kept["item"].tolist() == top.tolist()


def test_exclude_candidates_and_k(rec):
    user = rec.user_ids[0]
    first = rec.recommend([user], k=5)
    banned = first["item"].tolist()[:2]
    again = rec.recommend([user], k=5, exclude=banned)
    assert not set(banned) & set(again["item"])
    pool = rec.item_ids[:40]
    only = rec.recommend([user], k=5, candidates=pool)
    assert set(only["item"]) <= set(pool)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([user], k=0)
    with pytest.raises(ValueError, match="larger than the catalogue"):
        rec.recommend([user], k=rec.num_items + 1)
    with pytest.raises(ValueError, match="user_ids is empty"):
        rec.recommend([], k=5)
    with pytest.raises(UnknownIdError, match="1 unknown item id"):
        rec.recommend([user], k=5, exclude=["no-such-item"])


def test_unknown_users_error_or_cold(rec):
    with pytest.raises(UnknownIdError, match=r"1 unknown user id\(s\): ghost"):
        rec.recommend([rec.user_ids[0], "ghost"], k=3)
    out = rec.recommend([rec.user_ids[0], "ghost"], k=3, unknown="cold")
    assert out["user"].tolist() == [rec.user_ids[0]] * 3 + ["ghost"] * 3


def test_new_user_fold_in_beats_popularity(rec):
    """A user's own train items, folded in as if new, rank their held-out items far above popularity."""
    graph = rec.model.graph
    test = graph.matrix("test")
    users = np.flatnonzero(np.diff(test.indptr) > 0)[:60]
    hits_fold, hits_pop = 0, 0
    popular = rec.recommend_new_user([], k=10)["item"].tolist()
    for user in users:
        items = rec.item_ids[rec.model.history[user].indices]
        truth = set(rec.item_ids[test[user].indices])
        folded = rec.recommend_new_user(list(items), k=10)
        assert not set(items) & set(folded["item"])
        hits_fold += len(truth & set(folded["item"]))
        hits_pop += len(truth & (set(popular) - set(items)))
    assert hits_fold > 1.3 * hits_pop


def test_attributes_decide_without_items(rec):
    users = rec.model.graph.users
    country = users["country"].astype(str).value_counts().index[-1]
    local = rec.recommend_new_user(attributes={"country": country}, k=10)
    overall = rec.recommend_new_user(k=10)
    assert local["item"].tolist() != overall["item"].tolist()
    with pytest.raises(ValueError, match="unknown user attribute 'shoe_size'"):
        rec.recommend_new_user(attributes={"shoe_size": 44})


def test_diversity_raises_intra_list_diversity(rec):
    users = list(rec.user_ids[:40])
    plain = rec.recommend(users, k=10)
    diverse = rec.recommend(users, k=10, diversity=0.6)
    assert rec.intra_list_diversity(diverse) > rec.intra_list_diversity(plain) + 0.05
    assert rec.recommend(users, k=10, diversity=0.0).equals(plain)


def test_similar_items_explain_and_new_items(demo_model):
    base, _ = demo_model
    rec = Recommender.load(base / "model")
    item = rec.item_ids[3]
    similar = rec.similar_items([item], k=5)
    assert len(similar) == 5 and item not in set(similar["similar"])
    user = rec.user_ids[0]
    top = rec.recommend([user], k=1)["item"].iloc[0]
    parts = rec.explain(user, top)
    assert parts["candidate"] == 1.0 and {"source:als", "group:popularity", "score"} <= set(parts)
    fields = dict(rec.model.graph.items.iloc[3])
    fields["item_id"] = "copy-of-3"
    (index,) = rec.add_items([fields])
    assert rec.item_ids[index] == "copy-of-3" and rec.num_items == len(rec.model.graph.item_ids) + 1
    twins = rec.similar_items(["copy-of-3"], k=3)["similar"].tolist()
    assert item in twins  # same text, same projected vector
    assert len(rec.recommend(list(rec.user_ids[:20]), k=20)) == 400
    with pytest.raises(ValueError, match="already in the model"):
        rec.add_items([fields])


def test_recommend_cli_file_evaluates_like_the_model(demo_model, tmp_path, capsys):
    base, _ = demo_model
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"recs{suffix}"
        assert recommend_main(["--model", str(base / "model"), "--out", str(out), "--quiet"]) == 0
        assert evaluate_main(["--graph", str(base / "graph"), "--recommendations", str(out),
                              "--json", str(tmp_path / "file.json")]) == 0
        assert evaluate_main(["--model", str(base / "model"), "--json", str(tmp_path / "model.json")]) == 0
        by_file = json.loads((tmp_path / "file.json").read_text())
        by_model = json.loads((tmp_path / "model.json").read_text())
        for key in ("recall", "ndcg", "tail_recall", "coverage", "gini"):
            assert by_file[key] == pytest.approx(by_model[key], abs=1e-6), (suffix, key)
    lines = (tmp_path / "u.txt")
    lines.write_text("user\n" + "\n".join(Recommender.load(base / "model").user_ids[:3]) + "\nghost\n")
    assert recommend_main(["--model", str(base / "model"), "--out", str(tmp_path / "r.jsonl"), "--users",
                           str(lines), "--quiet"]) == 2
    assert "1 user id(s) the model does not know" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()
    assert recommend_main(["--model", str(base / "model"), "--out", str(tmp_path / "r.jsonl"), "--users",
                           str(lines), "--unknown", "cold", "--k", "4", "--quiet"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and rows[-1]["user"] == "ghost"
    assert recommend_main(["--model", str(base / "model"), "--out", str(tmp_path / "r.txt")]) == 2
    assert recommend_main(["--model", str(base / "model"), "--out", str(tmp_path / "r.csv"), "--k", "0"]) == 2
    assert recommend_main(["--model", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_recommend_cli_format_flag_and_unknown_ids(demo_model, tmp_path, capsys):
    model = str(demo_model[0] / "model")
    assert recommend_main(["--model", model, "--out", str(tmp_path / "r.txt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the recommendations format from the suffix .txt" in err and "--format parquet|csv|jsonl" in err
    assert recommend_main(["--model", model, "--out", str(tmp_path / "r.txt"), "--format", "csv", "--k", "3",
                           "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "r.txt", dtype={"user": str, "item": str})
    assert list(frame.columns) == ["user", "item", "rank", "score"]
    assert (frame.groupby("user").size() == 3).all() and frame["user"].nunique() == len(Recommender.load(model).user_ids)
    assert recommend_main(["--model", model, "--out", str(tmp_path / "r.csv"), "--format", "jsonl", "--k", "2",
                           "--quiet"]) == 0  # the flag wins over the suffix
    first = json.loads((tmp_path / "r.csv").read_text().splitlines()[0])
    assert set(first) == {"user", "item", "rank", "score"} and first["rank"] == 1
    assert recommend_main(["--model", model, "--out", str(tmp_path / "r.csv"), "--format", "xml"]) == 2  # argparse
    capsys.readouterr()
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("no-such-item\n")
    assert recommend_main(["--model", model, "--out", str(tmp_path / "x.csv"), "--exclude", str(exclude), "--quiet"]) == 2
    assert "unknown item id(s): no-such-item" in capsys.readouterr().err  # UnknownIdError: one line, exit 2
    assert not (tmp_path / "x.csv").exists()


def test_export_round_trip_with_pandas_and_numpy_alone(demo_model, tmp_path):
    base, _ = demo_model
    rec = Recommender.load(base / "model")
    assert export_main(["--model", str(base / "model"), "--out", str(tmp_path / "p")]) == 0
    assert export_main(["--model", str(base / "model"), "--out", str(tmp_path / "n"), "--format", "npy"]) == 0
    users = pd.read_parquet(tmp_path / "p" / "users.parquet")
    items = pd.read_parquet(tmp_path / "p" / "items.parquet")
    u, v = np.stack(users["vector"]), np.stack(items["vector"])
    gnn = rec.model.sources["gnn"]
    sample = np.arange(0, len(users), 37)
    np.testing.assert_allclose(u[sample] @ v.T, gnn.score(sample).numpy(), rtol=1e-5, atol=1e-5)
    assert users["id"].tolist() == rec.user_ids.tolist()
    u2, ids = np.load(tmp_path / "n" / "users.npy"), np.load(tmp_path / "n" / "users_ids.npy")
    np.testing.assert_array_equal(u2, u)
    assert ids.tolist() == rec.user_ids.tolist()
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert {"users", "items", "entities", "text_items"} <= set(manifest["tables"])
    assert export_main(["--model", str(base / "model"), "--out", str(tmp_path / "p")]) == 2  # exists


def test_single_source_model_export_reproduces_recommend_scores(demo_model, tmp_path):
    """Without a ranker the model is ALS alone: exported vectors give recommend's scores exactly."""
    base, _ = demo_model
    done = run_cli("--graph", str(base / "graph"), "--out", str(tmp_path / "als"), "--stages", "als,evaluate",
                   "--quiet", *sets("als.factors=16", "als.iterations=5"))
    assert done.returncode == 0, done.stderr[-2000:]
    rec = Recommender.load(tmp_path / "als")
    assert rec.model.ranker is None
    assert export_main(["--model", str(tmp_path / "als"), "--out", str(tmp_path / "e")]) == 0
    users = pd.read_parquet(tmp_path / "e" / "users.parquet").set_index("id")
    items = pd.read_parquet(tmp_path / "e" / "items.parquet").set_index("id")
    out = rec.recommend(list(rec.user_ids[:25]), k=10)
    expected = [float(users.loc[r.user, "vector"] @ items.loc[r.item, "vector"]) for r in out.itertuples()]
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
