"""build_graph end to end: formats, dedup and weights, entities, KG, social, filters, the artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kg import ENTITY, ITEM, USER, ArtifactError, BuildConfig, build_graph, load_graph
from tests.kg.demo_files import EVENTS, write_demo

WEIGHTS = {"view": 1.0, "click": 2.0, "purchase": 5.0}


def config_for(files, **changes) -> BuildConfig:
    return BuildConfig(
        interactions=str(files["interactions"]), items=str(files["items"]), users=str(files["users"]),
        kg=str(files["kg"]), social=str(files["social"]), **changes,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_graph(demo):
    return build_graph(config_for(demo, event_weights=WEIGHTS))


def pair(graph, user, item) -> pd.Series:
    u = list(graph.user_ids).index(user)
    i = list(graph.item_ids).index(item)
    inter = graph.interactions
    return inter[(inter["user"] == u) & (inter["item"] == i)].iloc[0]


def test_nodes_ids_and_dedup(demo_graph):
    g = demo_graph
    # u4 is only in the user table, u5 only in the social edges; i6 only in the item table.
    assert list(g.user_ids) == ["u1", "u2", "u3", "u4", "u5"]
    assert list(g.item_ids) == ["i1", "i2", "i3", "i4", "i5", "i6"]
    assert len(g.interactions) == len({(u, i) for u, i, _, _ in EVENTS}) == 12
    repeated = pair(g, "u1", "i1")
    assert (repeated["count"], repeated["weight"], repeated["timestamp"]) == (3, 1 + 2 + 5, 110.0)
    assert pair(g, "u2", "i3")["weight"] == 2.0
    assert g.meta["events"]["interactions"]["event_types"] == {"view": 9, "click": 3, "purchase": 3}


def test_attributes_kg_and_social(demo_graph):
    g = demo_graph
    assert g.meta["item_text_columns"] == ["title", "description"]
    assert g.meta["item_attribute_columns"] == ["category", "tags", "price", "year"]
    assert g.meta["user_attribute_columns"] == ["age", "country"]
    entities = dict(zip(g.entities["entity_id"], g.entities["source"]))
    assert entities["category=film"] == "attribute" and entities["tags=space"] == "attribute"
    assert entities["creator:1"] == "kg" and entities["country:BR"] == "kg"
    assert "country=BR" in entities  # the users' country attribute, a different entity from the KG's
    names = dict(zip(g.entities["entity_id"], g.entities["name"]))
    assert names["category=film"] == "category: film" and names["creator:1"] == "creator:1"
    rel = g.relation_names
    t = g.triples
    kinds = set(zip(t["head_type"], (np.array(rel, dtype=object)[t["relation"]]), t["tail_type"]))
    assert (ITEM, "created_by", ENTITY) in kinds and (ENTITY, "born_in", ENTITY) in kinds
    assert (ITEM, "sequel", ITEM) in kinds and (USER, "country", ENTITY) in kinds
    assert g.item_entity_matrix(["created_by"]).sum() == 3
    # Social: the duplicate u1-u2 edge is merged (and reported), u5 joins the users.
    assert len(g.social) == 3 and g.meta["social"]["duplicates_merged"] == 1
    assert g.social_matrix().nnz == 6
    # Numeric columns are float in the side table and bucketed into entities.
    assert g.items["price"].dtype == np.float64 and g.items["price"].tolist()[0] == 9.99
    assert any(e.startswith("price=[") for e in entities)


def test_split_meta_and_summary(demo_graph):
    g = demo_graph
    split = g.meta["split"]
    assert (split["method"], split["seed"], split["train_fraction"], split["valid_fraction"]) == ("random", 2026, 0.8, 0.2)
    counts = g.counts()
    # u1: 4 pairs -> ceil(3.2) = 4 stay, u2: 3 -> ceil(2.4) = 3 stay, u3: 5 -> 4 stay, 1 test.
    assert counts["test"] == 1 and counts["train"] + counts["valid"] == 11
    assert g.meta["rejected"] == {}
    summary = g.meta["summary"]
    assert summary["user_degree"]["max"] == 5 and summary["components"]["method"] == "networkx"
    # ceil(0.2 * 6) = 2 head items, i1 and i3 with 3 users each: 6 of 12 pairs.
    assert summary["top20_item_share"] == pytest.approx(0.5)


@pytest.mark.parametrize("log_format", ["tsv", "parquet", "jsonl"])
def test_every_log_format_gives_the_same_graph(tmp_path, demo_graph, log_format):
    files = write_demo(tmp_path, log_format)
    g = build_graph(config_for(files, event_weights=WEIGHTS))
    pd.testing.assert_frame_equal(g.interactions, demo_graph.interactions)
    assert list(g.user_ids) == list(demo_graph.user_ids)


def test_lightgcn_files_with_a_given_split(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2 3\n1 2 4\n2 1 5 6 7\n")
    (tmp_path / "test.txt").write_text("0 4\n1 5 2\n2 8\n")
    g = build_graph(BuildConfig(interactions=str(tmp_path / "train.txt"), test=str(tmp_path / "test.txt")))
    assert g.counts()["test"] == 4 and g.counts()["interactions"] == 9 - 1 + 4
    # 1-2 is in both files: kept in test, removed from train, and reported.
    assert g.meta["split"]["given_pairs_removed_from_train"] == 1
    assert list(g.item_ids) == [str(i) for i in range(1, 9)]


def test_temporal_split_and_k_core(demo):
    g = build_graph(config_for(demo, split="temporal", valid_fraction=0.0, k_core=2))
    # k = 2 removes u4/u5 (no pairs) and i6; every remaining node has >= 2 pairs.
    assert list(g.user_ids) == ["u1", "u2", "u3"] and "i6" not in set(g.item_ids)
    assert g.meta["filters"]["k_core"]["users_removed"] == 2
    assert len(g.items) == g.num_items and g.items["item_id"].tolist() == list(g.item_ids)
    test = g.interactions[g.interactions["split"] == 2]
    for user, group in g.interactions.groupby("user"):
        latest = group["timestamp"].max()
        assert set(test[test["user"] == user]["timestamp"]) <= {latest}


def test_artifact_round_trip_and_checksum(tmp_path, demo_graph):
    manifest = demo_graph.save(tmp_path / "graph")
    assert manifest["counts"]["interactions"] == 12 and "rejected" in manifest and "build_config" in manifest
    loaded = load_graph(tmp_path / "graph")
    for name in ("interactions", "triples", "social"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(demo_graph, name))
    assert list(loaded.item_ids) == list(demo_graph.item_ids)
    assert loaded.meta["item_text_columns"] == ["title", "description"]
    assert (loaded.matrix("train") != demo_graph.matrix("train")).nnz == 0
    data = loaded.to_hetero_data()
    data.validate(raise_on_error=True)
    assert data["item"].table["title"].tolist()[0] == "Space Rocket"
    with open(tmp_path / "graph" / "triples.parquet", "r+b") as handle:
        handle.seek(20)
        handle.write(b"\x00\x01")
    with pytest.raises(ArtifactError, match="triples.parquet: sha256 checksum mismatch"):
        load_graph(tmp_path / "graph")


def test_lenient_mode_reports_every_reason(tmp_path):
    files = write_demo(tmp_path)
    text = files["interactions"].read_text().splitlines()
    text[2] = "u1,,105,click"  # line 3: no item
    text[5] = "u1,i4,yesterday,click"  # line 6: bad timestamp
    text.append("u9,i9,500,share")  # line 17: unknown event type
    files["interactions"].write_text("\n".join(text) + "\n")
    g = build_graph(config_for(files, event_weights=WEIGHTS, lenient=True, max_examples=1))
    report = g.meta["rejected"][str(files["interactions"])]
    assert report == {"missing item id": 1, "non-numeric timestamp": 1, "unknown event type": 1}
    examples = g.meta["rejected_examples"][str(files["interactions"])]
    assert examples["non-numeric timestamp"] == [{"line": 6, "value": "'yesterday'", "column": "timestamp"}]
    assert examples["unknown event type"][0]["line"] == 17
    assert len(g.interactions) == 11


def test_ml100k_builds_with_every_recbole_file(shared_data, tmp_path):
    g = build_graph(BuildConfig(interactions=str(shared_data / "ml-100k" / "ml-100k.inter")))
    counts = g.counts()
    assert (counts["users"], counts["items"], counts["interactions"]) == (943, 1682, 100000)
    assert counts["entities"] > 0 and counts["relations"] > 0 and counts["triples"] > 91_000
    assert set(g.meta["recbole_siblings"]) == {"items", "users", "kg", "link"}
    assert g.meta["item_text_columns"] == ["movie_title"] and "class" in g.meta["item_attribute_columns"]
    assert g.meta["kg"]["linked_items"] > 1500 and g.item_entity_matrix().nnz > 0
    assert counts["test"] == sum(int(np.ceil(0.8 * n) < n) * (n - int(np.ceil(0.8 * n)))
                                 for n in np.bincount(g.interactions["user"]))
    g.save(tmp_path / "ml")
    loaded = load_graph(tmp_path / "ml")
    assert loaded.counts() == counts
    loaded.to_hetero_data().validate(raise_on_error=True)


def test_lastfm_given_split_and_social(shared_data):
    root = shared_data / "lastfm"
    g = build_graph(BuildConfig(
        interactions=str(root / "data1.txt"), test=str(root / "test1.txt"), social=str(root / "trustnetwork.txt"),
    ))
    counts = g.counts()
    # 1,892 users (12 only in the trust network) and 4,489 artists, as LightGCN counts them.
    assert (counts["users"], counts["items"], counts["test"], counts["social"]) == (1892, 4489, 10533, 25434)
    assert counts["train"] + counts["valid"] == 42135
    assert g.meta["interaction_columns"] == {"user": "column_1", "item": "column_2", "weight": "column_3"}
    assert g.interactions["weight"].max() > 1000  # listen counts are the weights
