"""A model fitted on a user sample (``user_sample=0.5``) serves every user: the rest are folded in."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.evaluate import main as evaluate_main
from graphrec.recommend import main as recommend_main
from graphrec.serving.recommender import Recommender

pytestmark = pytest.mark.slow  # trains a second demo model


@pytest.fixture(scope="module")
def sampled(sampled_demo_model):
    base, _ = sampled_demo_model
    return base, Recommender.load(base / "model", device="cpu")


def test_the_artifact_records_the_sample(sampled):
    base, rec = sampled
    manifest = json.loads((base / "model" / "manifest.json").read_text())
    described = manifest["user_sample"]
    users = len(rec.user_ids)
    assert described == {"setting": 0.5, "seed": 2026, "users": users, "fitted": users // 2 + users % 2,
                         "folded_in": users // 2}  # fmt: skip
    assert "user_sample.safetensors" in manifest["files"]
    assert manifest["notes"]["user_sample"] == described
    assert manifest["config"]["user_sample"] == 0.5
    sample = rec.model.user_sample
    assert sample.num_fitted == described["fitted"]
    # The learners saw the sampled users' rows only; the served history is everyone's.
    ranker_history = rec.model.ranker.history_
    assert not np.diff(ranker_history.indptr)[~sample.fitted].any()
    assert (np.diff(rec.model.history.indptr)[~sample.fitted] > 0).all()
    assert "user_sample: {'setting': 0.5" in (base / "model" / "report" / "report.md").read_text()


def _topk(scores: torch.Tensor, seen, k: int) -> np.ndarray:
    scores = scores.clone()
    scores[torch.as_tensor(seen.toarray() > 0)] = -torch.inf
    return torch.topk(scores, k, dim=1).indices.numpy()


def test_unfitted_users_get_the_fold_in_lists_and_fitted_users_the_ranker_lists(sampled):
    _, rec = sampled
    fitted = rec.model.user_sample.fitted
    users = np.arange(len(rec.user_ids), dtype=np.int64)
    got = {}
    for block, items, _ in rec.iter_topk(users, 10, batch_size=32):
        got.update({int(u): row for u, row in zip(block, items)})
    assert sorted(got) == users.tolist()
    folded = users[~fitted]
    rows, times, source_rows = rec.model.fold_in_inputs(folded)
    assert set(source_rows) == set(rec.model.sources)
    np.testing.assert_array_equal(rows.toarray(), rec.model.graph.matrix("train", "valid")[folded].toarray())
    als_rows = rec.model.graph.matrix("train", "valid", weighted=True)[folded]  # ALS is fitted on weights
    np.testing.assert_array_equal(source_rows["als"].toarray(), als_rows.toarray())
    expected = _topk(rec.score_new_users(rows, history_times=times, source_rows=source_rows), rows, 10)
    for position, user in enumerate(folded):
        np.testing.assert_array_equal(got[int(user)], expected[position])
    kept = users[fitted]
    items, _ = rec.model.ranker.topk(kept, 10)
    for position, user in enumerate(kept):
        np.testing.assert_array_equal(got[int(user)], items[position])
    # recommend() answers in the order asked, whichever path each user takes.
    mixed = [rec.user_ids[folded[0]], rec.user_ids[kept[0]], rec.user_ids[folded[1]]]
    frame = rec.recommend(mixed, k=5)
    assert frame["user"].tolist() == [u for u in mixed for _ in range(5)]
    assert frame["item"].tolist()[:5] == rec.item_ids[got[int(folded[0])][:5]].tolist()
    explained = rec.explain(mixed[0], frame["item"].iloc[0])
    assert explained["candidate"] == 1.0 and np.isfinite(explained["score"])


def test_the_sampled_model_beats_mostpop_and_evaluate_agrees_with_training(sampled, tmp_path):
    base, rec = sampled
    manifest = json.loads((base / "model" / "manifest.json").read_text())
    test = manifest["metrics"]["test"]
    assert test["hybrid"]["ndcg"] > test["pop"]["ndcg"] + 0.03
    assert test["hybrid"]["n_users"] == test["pop"]["n_users"]  # every test user, fitted or folded in
    out = tmp_path / "eval.json"
    assert evaluate_main(["--model", str(base / "model"), "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["ndcg"] == pytest.approx(test["hybrid"]["ndcg"], rel=1e-4)


def test_the_recommend_cli_serves_every_user_of_a_sampled_model(sampled, tmp_path):
    base, rec = sampled
    out = tmp_path / "all.parquet"
    assert recommend_main(["--model", str(base / "model"), "--out", str(out), "--k", "5", "--quiet"]) == 0
    frame = pd.read_parquet(out)
    assert frame["user"].nunique() == len(rec.user_ids)
    expected = rec.recommend(list(rec.user_ids), k=5)
    merged = frame.merge(expected, on=["user", "rank"], suffixes=("", "_api"))
    assert len(merged) == len(expected) and (merged["item"] == merged["item_api"]).all()


def test_exported_user_vectors_of_folded_in_users_reproduce_their_fold_in_scores(sampled):
    from graphrec.export import embedding_tables

    _, rec = sampled
    tables, primary = embedding_tables(rec.model)
    folded = np.flatnonzero(~rec.model.user_sample.fitted)[:20]
    kept = np.flatnonzero(rec.model.user_sample.fitted)[:5]
    _, _, source_rows = rec.model.fold_in_inputs(folded)
    for table, name in (("users", primary), ("als_users", "als")):
        if table not in tables:
            continue
        source, users = rec.model.sources[name], tables[table][1]
        items = source.item_embeddings()
        expected = source.score_new_users(source_rows[name]).numpy()
        np.testing.assert_allclose(users[folded] @ items.T, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(users[kept], source.user_embeddings()[kept])


def test_a_model_saved_under_renamed_settings_folds_in_without_a_warning(sampled, recwarn):
    """Issue 15 renamed text.neighbours & co.; a model written before keeps them in its manifest, which is not
    the user's to fix: folding in reads that config without the FutureWarning a config file gets."""
    _, rec = sampled
    model = rec.model
    saved_config, saved_history = model.manifest["config"], model._source_history
    text = dict(saved_config["text"])
    text["neighbours"] = text.pop("neighbors")
    text["fine_tune_learning_rate"] = text.pop("fine_tune_lr")
    try:
        model.manifest["config"], model._source_history = {**saved_config, "text": text}, None
        _, _, source_rows = model.fold_in_inputs(np.arange(3, dtype=np.int64))
    finally:
        model.manifest["config"], model._source_history = saved_config, saved_history
    assert set(source_rows) == set(model.sources)
    assert not [w for w in recwarn.list if issubclass(w.category, FutureWarning)]
