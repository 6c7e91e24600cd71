"""DDP GNN training (training.gnn.distributed): sharding arithmetic and 2-process gloo parity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from kg.graph import Graph
from training.gnn import LightGCN
from training.gnn.distributed import Shard, fit_distributed


@given(count=st.integers(0, 5000), world=st.integers(1, 9))
def test_shards_partition_the_batch_in_order(count, world):
    parts = [Shard(rank, world).part(count) for rank in range(world)]
    assert parts[0].start == 0 and parts[-1].stop == count
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1
    expected = [len(t) for t in torch.arange(count).tensor_split(world)]
    assert sizes == expected


def test_outside_a_group_there_is_no_shard():
    assert Shard.current() is None


@pytest.fixture(scope="module")
def saved_graph(tmp_path_factory):
    rng = np.random.default_rng(3)
    dense = (rng.random((80, 60)) < 0.08).astype(np.float32)
    dense[np.arange(80), rng.integers(0, 60, 80)] = 1.0  # every user has an item
    path = tmp_path_factory.mktemp("ddp") / "graph"
    Graph.from_csr(sp.csr_matrix(dense)).save(path)
    return path


def test_two_gloo_processes_follow_the_one_process_trajectory(saved_graph, tmp_path):
    from kg.graph_io import load_graph

    graph = load_graph(saved_graph)
    settings = dict(embedding_dim=16, num_layers=2, epochs=4, batch_size=96, lr=0.01, seed=7, init="random")
    single = LightGCN(**settings).fit(graph, graph.matrix("train"))
    config = {**LightGCN(**settings).get_config(), "model": "lightgcn"}
    lines: list[str] = []
    double = fit_distributed(
        config, graph_path=saved_graph, splits=("train",), out=tmp_path / "ddp", nproc=2, log=lines.append
    )
    assert any("rank 0 of 2" in line for line in lines), lines
    assert double.best_epoch_ == single.best_epoch_ == 4
    # Same global batches, same negatives; only the order of the gradient sums differs.
    np.testing.assert_allclose(double.user_embeddings(), single.user_embeddings(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(double.item_embeddings(), single.item_embeddings(), rtol=1e-4, atol=1e-5)
    losses = [r["loss"] for r in single.history_]
    np.testing.assert_allclose([r["loss"] for r in double.history_], losses, rtol=1e-5)
    # The training moved the vectors: the comparison is not between two initialisations.
    assert not np.allclose(LightGCN(**{**settings, "epochs": 1}).fit(graph, graph.matrix("train")).item_embeddings(),
                           single.item_embeddings(), atol=1e-3)


def test_a_bad_process_count_is_refused(saved_graph, tmp_path):
    with pytest.raises(ValueError, match="nproc"):
        fit_distributed({}, graph_path=saved_graph, splits=("train",), out=tmp_path, nproc=0)


def test_the_pipeline_trains_its_gnn_on_two_processes_like_on_one(tmp_path):
    """gnn.nproc=2: both phases (fit with validation, warm-started final) through torchrun, same vectors as nproc=1."""
    import dataclasses

    from tests.conftest import make_structured_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    graph = dataclasses.replace(make_structured_graph(num_users=50, num_items=30, per_user=7), meta={"seed": 0})
    graph.save(tmp_path / "graph")
    overrides = ["gnn.epochs=4", "gnn.embedding_dim=8", "gnn.num_layers=2", "gnn.init=random", "gnn.batch_size=64"]
    results, logs = {}, {}
    for nproc in (1, 2):
        config = TrainConfig(device="cpu").with_overrides([*overrides, f"gnn.nproc={nproc}"])
        logs[nproc] = []
        results[nproc] = Pipeline(
            graph, config, tmp_path / f"work{nproc}", graph_fingerprint="g", graph_path=tmp_path / "graph",
            stages=("gnn",), log=logs[nproc].append,
        ).run()  # fmt: skip
    assert sum("rank 0 of 2" in line for line in logs[2]) == 2, logs[2]  # the fit and the final phase
    assert results[2].notes["gnn_best_epoch"] == results[1].notes["gnn_best_epoch"]
    one, two = results[1].final.sources["gnn"], results[2].final.sources["gnn"]
    np.testing.assert_allclose(two.item_embeddings(), one.item_embeddings(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(two.user_embeddings(), one.user_embeddings(), rtol=1e-3, atol=1e-4)
