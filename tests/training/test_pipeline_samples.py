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


def test_test_rows_use_a_noted_sample_above_eval_test_users(tmp_path):
    """``eval.test_users``: every source's, the hybrid's and the ablation's test rows on one seeded sample."""
    import dataclasses

    from tests.conftest import make_structured_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    graph = make_structured_graph(num_users=60, num_items=30, per_user=8)
    graph = dataclasses.replace(graph, meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides([
        "als.factors=8", "als.iterations=3", "ranker.ensemble=1", "ranker.epochs=3", "eval.test_users=15",
        "ranker.ablation_ensemble=0",
    ])  # fmt: skip
    lines: list[str] = []
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="test-sample",
                        stages=("als", "ranker", "evaluate"), log=lines.append)  # fmt: skip
    tested = np.flatnonzero(np.diff(graph.matrix("test").indptr) > 0)
    assert len(tested) > 15
    result = pipeline.run()
    assert result.notes["test_users"] == {"users": 15, "of": len(tested), "seed": config.seed}
    assert {name: row["n_users"] for name, row in result.metrics["test"].items()} == {
        "als": 15, "pop": 15, "hybrid": 15,
    }  # fmt: skip
    assert result.hybrid_test.n_users == 15
    assert result.ablation and all(row["users"] == 15 for row in result.ablation)
    assert any("test rows on a sample of 15 test users" in line for line in lines)
    # The sample is the seeded one the context draws, the same on a second call (a resumed run re-scores on it).
    np.testing.assert_array_equal(pipeline.context.test_sample(), sample_at_most(tested, 15, config.seed))


def test_every_test_user_below_eval_test_users(tmp_path):
    import dataclasses

    from tests.conftest import make_structured_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    graph = dataclasses.replace(make_structured_graph(num_users=40, num_items=30, per_user=8), meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides(["als.factors=8", "als.iterations=3"])
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="all-test",
                        stages=("als",), log=lambda line: None)  # fmt: skip
    assert config.eval.test_users == 50_000 and pipeline.context.test_sample() is None
