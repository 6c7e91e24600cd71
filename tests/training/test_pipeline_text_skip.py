"""A graph of item ids only (no item table text): the text stage is skipped, said once, and the GNN starts random."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tests.conftest import make_structured_graph
from training.pipeline.config import TrainConfig
from training.pipeline.runner import Pipeline


def _ids_only_graph():
    graph = make_structured_graph(num_users=40, num_items=30, per_user=6)
    items = pd.DataFrame({"item_id": graph.items["item_id"]})
    return dataclasses.replace(graph, items=items, meta={"seed": 0})


def test_a_graph_without_text_skips_fine_tuning_and_the_text_source(tmp_path):
    graph = _ids_only_graph()
    config = TrainConfig(device="cpu").with_overrides(
        ["gnn.epochs=2", "gnn.embedding_dim=8", "gnn.num_layers=1", "ranker.refit=false"]
    )
    lines: list[str] = []
    pipeline = Pipeline(
        graph, config, tmp_path / "work", graph_fingerprint="ids-only", stages=("text", "gnn"), log=lines.append
    )
    result = pipeline.run()

    skipped = [line for line in lines if "text skipped" in line]
    assert len(skipped) == 1 and "no item text" in skipped[0] and "no fine-tuning" in skipped[0]
    assert "text" not in pipeline.phases["fit"].sources and "text" not in result.final.sources
    assert result.item_text_embeddings is None and result.entity_text_embeddings is None
    assert not (tmp_path / "work" / "fit" / "text").exists()  # nothing fitted, no encoder loaded
    assert result.notes["text"].startswith("skipped")
    assert result.notes["gnn_init"] == "random"
    gnn = result.final.sources["gnn"]
    assert gnn.init == "random" and np.isfinite(gnn.item_embeddings()).all()


def test_a_graph_with_text_keeps_the_text_stage(tmp_path):
    config = TrainConfig(device="cpu")
    with_text = Pipeline(make_structured_graph(num_users=40, num_items=30, per_user=6), config, tmp_path / "a",
                         graph_fingerprint="text", stages=("text", "gnn"), log=lambda line: None)  # fmt: skip
    assert with_text.context.graph_has_text and "text" in with_text.context.source_names()
    assert with_text.context.make("gnn").init == "text"
    ids_only = Pipeline(_ids_only_graph(), config, tmp_path / "b", graph_fingerprint="ids", stages=("text", "gnn"),
                        log=lambda line: None)  # fmt: skip
    assert not ids_only.context.graph_has_text and "text" not in ids_only.context.source_names()
    assert ids_only.context.make("gnn").init == "random"
