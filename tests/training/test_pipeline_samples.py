"""User samples on large logs (training.base.sample_at_most): the ranker's fitting users and the validation rows."""

from __future__ import annotations

import numpy as np

from training.base import sample_at_most


def test_sample_keeps_small_sets_and_draws_a_sorted_seeded_subset():
    users = np.arange(100, 400, 3, dtype=np.int64)
    assert sample_at_most(users, 0, 1) is users and sample_at_most(users, 100, 1) is users
    drawn = sample_at_most(users, 40, 7)
    assert len(drawn) == 40 and np.all(np.diff(drawn) > 0) and np.isin(drawn, users).all()
    np.testing.assert_array_equal(drawn, sample_at_most(users, 40, 7))
    assert not np.array_equal(drawn, sample_at_most(users, 40, 8))


def test_the_ranker_fits_on_a_noted_sample_and_valid_rows_use_one(tmp_path):
    import dataclasses

    from tests.conftest import make_structured_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    graph = make_structured_graph(num_users=60, num_items=30, per_user=8)
    graph = dataclasses.replace(graph, meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides([
        "als.factors=8", "als.iterations=3", "ranker.ensemble=1", "ranker.epochs=3", "ranker.fit_users=12",
        "eval.valid_users=10", "ranker.ablation=false",
    ])  # fmt: skip
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="samples",
                        stages=("als", "ranker", "evaluate"), log=lambda line: None)  # fmt: skip
    everyone = pipeline.context.valid_users()
    assert len(everyone) > 12
    result = pipeline.run()
    assert result.notes["ranker_fit_users"] == {"users": 12, "of": len(everyone), "seed": config.seed}
    assert result.notes["valid_users"] == {"users": 10, "of": len(everyone), "seed": config.seed}
    assert result.metrics["valid"]["als"]["n_users"] == 10
    assert result.metrics["test"]["als"]["n_users"] > 10  # test rows use every test user
