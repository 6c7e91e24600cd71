"""The embedded demo data: configuration, table formats, determinism and size, files written (whole or streamed).

What makes it realistic (long tail, tastes, time, text and KG that carry the topic) is test_datasets_realism.py.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.datasets import (
    SyntheticConfig,
    generate,
    write,
    write_interactions_parquet,
)
from tests.graphrec.conftest import codes

SMALL = SyntheticConfig(num_users=300, num_items=200, num_interactions=6000, num_creators=40, num_series=15)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("num_users", 0, ValueError, "num_users must be >= 1, got 0"),
        ("num_interactions", 10, ValueError, "num_interactions must be >= num_users (3000"),
        ("num_topics", 21, ValueError, "num_topics must be <= 20"),
        ("num_items", 5, ValueError, "num_items must be >= num_topics (12)"),
        ("repeat_rate", 1.0, ValueError, "repeat_rate must be < 1"),
        ("topic_focus", -0.1, ValueError, "topic_focus must be in [0, 1], got -0.1"),
        ("cold_item_share", 0.9, ValueError, "cold_item_share must be <= 1 - new_item_share"),
        ("popularity_exponent", float("nan"), ValueError, "popularity_exponent must be finite"),
        ("num_items", True, TypeError, "num_items must be int, got True"),
        ("seed", 1.5, TypeError, "seed must be int, got 1.5"),
        ("social_degree", "4", TypeError, "social_degree must be float, got '4'"),
    ],
)
def test_config_rejects_bad_fields_naming_them(field, value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        SyntheticConfig(**{field: value})


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="config must be a SyntheticConfig, got dict"):
        generate({"num_users": 3})
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer, got 0"):
        write_interactions_parquet(SMALL, tmp_path / "x.parquet", chunk_rows=0)
    with pytest.raises(TypeError, match=r"data must be the SyntheticData generate\(\) returns, got DataFrame"):
        write(generate(SMALL).items, tmp_path / "d")
    with pytest.raises(ValueError, match="format must be one of .*, got 'jsonl'"):
        write(generate(SMALL, interactions=False), tmp_path / "d", format="jsonl")
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "d").exists()


# -- formats ----------------------------------------------------------------------------------


def test_tables_have_the_documented_columns_and_types(demo_data):
    log = demo_data.interactions
    assert list(log.columns) == ["user_id", "item_id", "timestamp", "event"]
    assert log["timestamp"].dtype == np.int64
    assert all(pd.api.types.is_string_dtype(log[c]) for c in ("user_id", "item_id", "event"))
    assert log["user_id"].str.fullmatch(r"u\d{6}").all() and log["item_id"].str.fullmatch(r"i\d{5}").all()
    share = log["event"].value_counts(normalize=True)
    assert set(share.index) == {"view", "click", "purchase"}
    assert share["view"] > share["click"] > share["purchase"] > 0.05

    items = demo_data.items
    assert list(items.columns) == ["item_id", "title", "description", "category", "tags", "price", "year"]
    assert items["item_id"].is_unique and len(items) == 1500
    assert items["price"].dtype == np.float64 and (items["price"] >= 0.99).all()
    assert items["year"].dtype == np.int64 and items["year"].between(1920, 2024).all()
    assert items["tags"].str.fullmatch(r"[a-z0-9-]+(\|[a-z0-9-]+){0,2}").all()
    assert (items["tags"].str.count(r"\|") > 0).mean() > 0.4  # multi-valued for many items
    assert 4 <= items["category"].nunique() <= 8

    users = demo_data.users
    assert list(users.columns) == ["user_id", "age", "country"] and len(users) == 3000
    assert users["age"].dtype == np.int64 and users["age"].between(16, 80).all()
    assert users["country"].str.fullmatch(r"[A-Z]{2}").all()


def test_kg_links_items_to_prefixed_entities(demo_data):
    kg = demo_data.kg
    assert list(kg.columns) == ["head", "relation", "tail"]
    assert not kg.duplicated().any()
    item_ids = set(demo_data.items["item_id"])
    about_items = kg[kg["head"].str.startswith("i")]
    assert set(about_items["head"]) <= item_ids
    # Every item has exactly one creator and at least one genre.
    per_relation = about_items.groupby("relation")["head"]
    assert per_relation.nunique()["created_by"] == per_relation.size()["created_by"] == 1500
    assert per_relation.nunique()["has_genre"] == 1500
    assert 0.2 < per_relation.size()["part_of"] / 1500 < 0.4
    entities = pd.concat([kg["tail"], kg.loc[~kg["head"].isin(item_ids), "head"]])
    assert entities.str.fullmatch(r"(creator|series):\d{4}|genre:[a-z-]+|country:[A-Z]{2}").all()
    assert not set(entities) & item_ids
    entity_relations = set(kg.loc[~kg["head"].isin(item_ids), "relation"])
    assert entity_relations == {"created_by", "nationality", "subgenre_of"}


def test_every_id_in_the_log_and_social_table_exists(demo_data):
    users, items = codes(demo_data)
    assert (users >= 0).all() and (items >= 0).all()
    social = demo_data.social
    assert set(social["user_id"]) | set(social["friend_id"]) <= set(demo_data.users["user_id"])
    assert (social["user_id"] != social["friend_id"]).all()
    pairs = np.sort(social[["user_id", "friend_id"]].to_numpy(dtype=str), axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    assert 3.5 < 2 * len(social) / 3000 <= 4.0  # mean degree: social_degree less self-loops and duplicates


# -- determinism and size -----------------------------------------------------------------------


def test_same_config_gives_identical_data_and_another_seed_does_not():
    first, second = generate(SMALL), generate(SMALL)
    for name in ("interactions", "items", "users", "kg", "social"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    np.testing.assert_array_equal(first.item_topic, second.item_topic)
    other = generate(dataclasses.replace(SMALL, seed=7))
    assert not first.interactions["item_id"].equals(other.interactions["item_id"])
    assert not first.items["title"].equals(other.items["title"])


def test_side_tables_do_not_depend_on_the_number_of_interactions():
    base = generate(SMALL, interactions=False)
    bigger = generate(dataclasses.replace(SMALL, num_interactions=3 * SMALL.num_interactions))
    assert len(base.interactions) == 0
    assert list(base.interactions.columns) == ["user_id", "item_id", "timestamp", "event"]
    for name in ("items", "users", "kg", "social"):
        pd.testing.assert_frame_equal(getattr(base, name), getattr(bigger, name))


@pytest.mark.parametrize(
    ("users", "items", "events"), [(1, 1, 1), (40, 30, 41), (500, 2000, 20_000), (5000, 800, 150_000)]
)
def test_sizes_are_exact_and_every_user_is_active(users, items, events):
    config = SyntheticConfig(
        num_users=users, num_items=items, num_interactions=events,
        num_topics=min(12, items), num_creators=max(1, items // 5), num_series=items // 12,
    )
    data = generate(config)
    assert len(data.interactions) == events
    assert len(data.items) == items and len(data.users) == users
    assert data.interactions["user_id"].nunique() == users
    assert set(data.kg.loc[data.kg["relation"] == "created_by", "head"]) >= set(data.items["item_id"])


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=st.integers(1, 60),
    items=st.integers(1, 60),
    per_user=st.integers(1, 30),
    topics=st.integers(1, 20),
    repeat_rate=st.floats(0, 0.9),
    cold=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_any_small_config_gives_a_consistent_data_set(users, items, per_user, topics, repeat_rate, cold, seed):
    config = SyntheticConfig(
        num_users=users, num_items=max(items, topics), num_interactions=users * per_user, num_topics=topics,
        num_creators=3, num_series=2, repeat_rate=repeat_rate, cold_item_share=cold,
        new_item_share=1 - cold, seed=seed,
    )
    data = generate(config)
    user, item = codes(data)
    assert len(user) == users * per_user and (user >= 0).all() and (item >= 0).all()
    assert (data.interactions["timestamp"].to_numpy() >= data.item_release[item]).all()
    assert data.interactions["timestamp"].max() <= config.start_time + config.duration_days * 86_400
    assert data.items["title"].str.len().min() > 0


# -- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_write_round_trips_and_is_byte_identical(tmp_path, format):
    data = generate(SMALL)
    files = write(data, tmp_path / "a", format=format)
    again = write(generate(SMALL), tmp_path / "b", format=format)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [f"interactions.{format}", "items.csv", "users.csv", "kg.tsv", "social.csv"]
    )
    assert files.kg.read_text().splitlines()[0] == "head\trelation\ttail"
    for name in ("items", "users", "kg", "social"):
        assert getattr(files, name).read_bytes() == getattr(again, name).read_bytes()
    if format == "parquet":
        log = pq.read_table(files.interactions).to_pandas()
        assert pq.read_table(files.interactions).equals(pq.read_table(again.interactions))
    else:
        log = pd.read_csv(files.interactions, dtype={"user_id": str, "item_id": str, "event": str})
        assert files.interactions.read_bytes() == again.interactions.read_bytes()
    pd.testing.assert_frame_equal(log, data.interactions, check_dtype=False)
    items = pd.read_csv(files.items, keep_default_na=False)
    pd.testing.assert_frame_equal(items, data.items, check_dtype=False)
    kg = pd.read_csv(files.kg, sep="\t")
    pd.testing.assert_frame_equal(kg, data.kg, check_dtype=False)


def test_write_is_all_or_nothing(tmp_path):
    data = generate(SMALL)
    write(data, tmp_path / "demo_data")
    with pytest.raises(FileExistsError, match="already exists"):
        write(data, tmp_path / "demo_data")
    broken = dataclasses.replace(data, interactions=data.interactions.drop(columns="event"))
    with pytest.raises(KeyError):
        write(broken, tmp_path / "half")
    assert not (tmp_path / "half").exists() and [p.name for p in tmp_path.iterdir()] == ["demo_data"]
    write(data, tmp_path / "demo_data", format="csv", overwrite=True)
    assert (tmp_path / "demo_data" / "interactions.csv").is_file()
    assert not (tmp_path / "demo_data" / "interactions.parquet").exists()


STREAMED = dataclasses.replace(SMALL, num_users=3000, num_items=2000, num_interactions=150_000)


@pytest.fixture(scope="module")
def streamed_reference() -> pa.Table:
    return pa.Table.from_pandas(generate(STREAMED).interactions, preserve_index=False)


@pytest.mark.parametrize("chunk_rows", [30_000, 1_000_000])
def test_streaming_writer_matches_generate(tmp_path, chunk_rows, streamed_reference):
    rows = write_interactions_parquet(STREAMED, tmp_path / "log.parquet", chunk_rows=chunk_rows)
    assert rows == 150_000
    parquet = pq.ParquetFile(tmp_path / "log.parquet")
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert max(sizes) <= chunk_rows and sum(sizes) == rows
    assert len(sizes) == -(-rows // chunk_rows)
    assert parquet.read().equals(streamed_reference.cast(parquet.schema_arrow))
    assert [p.name for p in tmp_path.iterdir()] == ["log.parquet"]  # no temporary left behind


def test_streaming_writer_memory_does_not_grow_with_the_log(tmp_path):
    # A fresh process, so that the high-water mark belongs to the writer alone: a log four
    # times longer must not raise much the peak left by the shorter one.
    script = textwrap.dedent(
        """
        import resource, sys
        from graphrec.datasets import SyntheticConfig, write_interactions_parquet
        def peak_mib():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        short = SyntheticConfig(num_users=6_000, num_items=10_000, num_interactions=150_000)
        write_interactions_parquet(short, sys.argv[1], chunk_rows=20_000)
        after_short = peak_mib()
        long = SyntheticConfig(num_users=24_000, num_items=10_000, num_interactions=600_000)
        rows = write_interactions_parquet(long, sys.argv[1], chunk_rows=20_000)
        print(rows, peak_mib() - after_short)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "log.parquet")], capture_output=True, text=True, check=True
    )
    rows, grown_mib = done.stdout.split()
    assert int(rows) == 600_000
    assert pq.ParquetFile(tmp_path / "log.parquet").metadata.num_rows == 600_000
    # Measured: 14 MiB bounded, 51 MiB when the whole log is one chunk.
    assert float(grown_mib) < 30, grown_mib
