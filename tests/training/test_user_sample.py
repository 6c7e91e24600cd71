"""Training on a seeded user sample (``user_sample``): the draw, the restricted matrices, the pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.conftest import make_structured_graph
from training.pipeline.config import TrainConfig
from training.pipeline.user_sample import draw_user_sample, fold_in_scorer


def test_the_draw_is_seeded_and_sized_by_fraction_or_count():
    half = draw_user_sample(101, 0.5, seed=3)
    assert half.num_fitted == 51 and half.num_users == 101
    np.testing.assert_array_equal(half.fitted, draw_user_sample(101, 0.5, seed=3).fitted)
    assert not np.array_equal(half.fitted, draw_user_sample(101, 0.5, seed=4).fitted)
    assert draw_user_sample(101, 30, seed=3).num_fitted == 30
    assert draw_user_sample(101, 30.0, seed=3).num_fitted == 30
    assert half.to_dict() == {"setting": 0.5, "seed": 3, "users": 101, "fitted": 51, "folded_in": 50}
    assert draw_user_sample(101, 0, seed=3) is None  # off
    assert draw_user_sample(101, 101, seed=3) is None  # every user: off
    for bad in (-0.1, 2.5, True, "half"):
        with pytest.raises(ValueError, match="user_sample"):
            draw_user_sample(101, bad, seed=3)


def test_restrict_empties_the_rows_of_unsampled_users_only():
    rng = np.random.default_rng(0)
    matrix = sp.random(40, 25, density=0.3, format="csr", random_state=1, dtype=np.float32)
    sample = draw_user_sample(40, 0.4, seed=int(rng.integers(100)))
    kept = sample.restrict(matrix)
    assert kept.shape == matrix.shape
    dense, original = kept.toarray(), matrix.toarray()
    np.testing.assert_array_equal(dense[sample.fitted], original[sample.fitted])
    assert not dense[~sample.fitted].any() and original[~sample.fitted].any()
    with pytest.raises(ValueError, match="one per user"):
        sample.restrict(matrix[:10])


def test_fold_in_scorer_routes_each_user_and_keeps_the_order():
    fitted = np.array([True, False, True, False])
    scorer = fold_in_scorer(
        lambda users: np.stack([np.full(3, 10.0 + u) for u in users]),
        lambda users: torch.stack([torch.full((3,), -1.0 - u) for u in users]),
        fitted,
    )  # fmt: skip
    out = scorer(np.array([3, 0, 1, 2]))
    np.testing.assert_array_equal(out[:, 0].numpy(), [-4.0, 10.0, -2.0, 12.0])
    assert scorer(np.array([0, 2])).dtype == torch.float32
    np.testing.assert_array_equal(scorer(np.array([1]))[:, 0].numpy(), [-2.0])


def test_config_takes_the_setting_from_set_and_rejects_bad_values():
    config = TrainConfig().with_overrides(["user_sample=0.25"])
    assert config.user_sample == 0.25
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().with_overrides(["user_sample=5000"]).user_sample == 5000
    for bad in ("user_sample=-1", "user_sample=1.5", "user_sample=lots"):
        with pytest.raises(ValueError, match="user_sample"):
            TrainConfig().with_overrides([bad])


def _pipeline(tmp_path, *overrides: str, stages=("als", "neighbors", "ranker", "evaluate")):
    from training.pipeline.runner import Pipeline

    graph = dataclasses.replace(make_structured_graph(num_users=120, num_items=60, per_user=12), meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides([
        "als.factors=8", "als.iterations=3", "ranker.ensemble=1", "ranker.epochs=3", "ranker.ablation=false",
        "graphfilter.rank=4", *overrides,
    ])  # fmt: skip
    return graph, Pipeline(graph, config, tmp_path / "work", graph_fingerprint="sample", stages=stages,
                           log=lambda line: None)  # fmt: skip


def test_the_pipeline_fits_on_the_sample_and_evaluates_every_test_user(tmp_path):
    graph, full = _pipeline(tmp_path / "full")
    everyone = full.run()
    graph, pipeline = _pipeline(tmp_path / "sample", "user_sample=0.5")
    result = pipeline.run()
    sample = result.user_sample
    assert sample is not None and sample.num_fitted == 60
    assert result.notes["user_sample"] == {"setting": 0.5, "seed": 2026, "users": 120, "fitted": 60, "folded_in": 60}
    # What the learners saw: the sampled users' rows only, every user keeping its index.
    filter_rows = result.final.sources["graphfilter"].user_items_
    assert filter_rows.shape[0] == graph.num_users
    assert np.diff(filter_rows.indptr)[~sample.fitted].sum() == 0
    assert (np.diff(filter_rows.indptr)[sample.fitted] > 0).all()
    assert not np.diff(result.final.history.indptr)[~sample.fitted].any()
    # The test rows score every test user (the unsampled ones by fold-in), as without a sample.
    for name in ("hybrid", "als", "graphfilter", "pop"):
        assert result.metrics["test"][name]["n_users"] == everyone.metrics["test"][name]["n_users"]
    # Fitted on half the users, the sources still beat popularity and stay near their full fits.
    for name in ("graphfilter", "itemknn"):
        assert result.metrics["test"][name]["ndcg"] > result.metrics["test"]["pop"]["ndcg"] + 0.05
        assert result.metrics["test"][name]["ndcg"] > 0.8 * everyone.metrics["test"][name]["ndcg"]


def test_the_pipeline_refuses_a_sample_with_distributed_gnn(tmp_path):
    with pytest.raises(ValueError, match="gnn.nproc"):
        _pipeline(tmp_path, "user_sample=0.5", "gnn.nproc=2", "text.enabled=false", stages=("gnn",))
