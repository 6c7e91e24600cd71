"""The embedded demo data: formats, determinism, scale, and the structure that makes it realistic."""

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
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.datasets import (
    SyntheticConfig,
    SyntheticData,
    generate,
    write,
    write_interactions_parquet,
)
from graphrec.datasets.vocab import GENERIC_WORDS, TOPICS

SMALL = SyntheticConfig(num_users=300, num_items=200, num_interactions=6000, num_creators=40, num_series=15)


@pytest.fixture(scope="module")
def demo() -> SyntheticData:
    return generate(SyntheticConfig())


def codes(data: SyntheticData) -> tuple[np.ndarray, np.ndarray]:
    """Internal (user, item) index of every event."""
    users = pd.Index(data.users["user_id"]).get_indexer(data.interactions["user_id"])
    items = pd.Index(data.items["item_id"]).get_indexer(data.interactions["item_id"])
    return users, items


def user_items(data: SyntheticData) -> sp.csr_matrix:
    users, items = codes(data)
    shape = (data.config.num_users, data.config.num_items)
    matrix = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=shape)
    matrix.data[:] = 1.0  # duplicates were summed; keep the pair
    return matrix


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


def test_tables_have_the_documented_columns_and_types(demo):
    log = demo.interactions
    assert list(log.columns) == ["user_id", "item_id", "timestamp", "event"]
    assert log["timestamp"].dtype == np.int64
    assert all(pd.api.types.is_string_dtype(log[c]) for c in ("user_id", "item_id", "event"))
    assert log["user_id"].str.fullmatch(r"u\d{6}").all() and log["item_id"].str.fullmatch(r"i\d{5}").all()
    share = log["event"].value_counts(normalize=True)
    assert set(share.index) == {"view", "click", "purchase"}
    assert share["view"] > share["click"] > share["purchase"] > 0.05

    items = demo.items
    assert list(items.columns) == ["item_id", "title", "description", "category", "tags", "price", "year"]
    assert items["item_id"].is_unique and len(items) == 1500
    assert items["price"].dtype == np.float64 and (items["price"] >= 0.99).all()
    assert items["year"].dtype == np.int64 and items["year"].between(1920, 2024).all()
    assert items["tags"].str.fullmatch(r"[a-z0-9-]+(\|[a-z0-9-]+){0,2}").all()
    assert (items["tags"].str.count(r"\|") > 0).mean() > 0.4  # multi-valued for many items
    assert 4 <= items["category"].nunique() <= 8

    users = demo.users
    assert list(users.columns) == ["user_id", "age", "country"] and len(users) == 3000
    assert users["age"].dtype == np.int64 and users["age"].between(16, 80).all()
    assert users["country"].str.fullmatch(r"[A-Z]{2}").all()


def test_kg_links_items_to_prefixed_entities(demo):
    kg = demo.kg
    assert list(kg.columns) == ["head", "relation", "tail"]
    assert not kg.duplicated().any()
    item_ids = set(demo.items["item_id"])
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


def test_every_id_in_the_log_and_social_table_exists(demo):
    users, items = codes(demo)
    assert (users >= 0).all() and (items >= 0).all()
    social = demo.social
    assert set(social["user_id"]) | set(social["friend_id"]) <= set(demo.users["user_id"])
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


# -- realism: long tail, activity, taste, time ---------------------------------------------------


def test_popularity_has_a_head_and_a_genuine_long_tail(demo):
    users_per_item = np.asarray(user_items(demo).sum(axis=0)).ravel()
    ordered = np.sort(users_per_item)[::-1]
    head_share = ordered[: 300].sum() / ordered.sum()
    assert 0.6 < head_share < 0.75, head_share  # measured 0.66
    assert (users_per_item == 0).mean() > 0.02  # items nobody touched (released after the log)
    assert (users_per_item <= 5).mean() > 0.06  # and many with very few
    assert ordered[0] > 20 * np.median(users_per_item)


def test_user_activity_is_heavy_tailed(demo):
    items_per_user = np.asarray(user_items(demo).sum(axis=1)).ravel()
    assert items_per_user.min() >= 1
    assert 0.08 < (items_per_user <= 5).mean() < 0.3  # sparse users, measured 0.14
    assert items_per_user.max() > 10 * np.median(items_per_user)


def test_repeats_follow_repeat_rate(demo):
    users, items = codes(demo)
    distinct = len(np.unique(users.astype(np.int64) * demo.config.num_items + items))
    repeat_share = 1 - distinct / len(users)
    assert 0.14 < repeat_share < 0.18, repeat_share  # repeat_rate 0.15 + rare leftovers
    none = generate(dataclasses.replace(demo.config, repeat_rate=0.0))
    users, items = codes(none)
    # Only users with more events than their topics hold popular items may run out.
    assert 1 - len(np.unique(users * 1500 + items)) / len(users) < 0.01


def test_users_mostly_consume_their_topics_and_same_topic_items_co_occur(demo):
    users, items = codes(demo)
    on_main = demo.item_topic[items] == demo.user_topic[users]
    chance = np.bincount(demo.item_topic, minlength=12)[demo.user_topic[users]].mean() / 1500
    assert on_main.mean() > 0.45 and on_main.mean() > 4 * chance
    matrix = user_items(demo)
    co = (matrix.T @ matrix).toarray()
    popularity = np.diag(co).copy()
    expected = np.outer(popularity, popularity) / demo.config.num_users  # if users picked by popularity alone
    np.fill_diagonal(co, 0)
    np.fill_diagonal(expected, 0)
    same = demo.item_topic[:, None] == demo.item_topic[None, :]
    lift_same = co[same].sum() / expected[same].sum()
    lift_other = co[~same].sum() / expected[~same].sum()
    assert lift_same > 3.5 * lift_other, (lift_same, lift_other)  # measured 7.8 vs 1.9


def test_friends_share_tastes(demo):
    index = pd.Index(demo.users["user_id"])
    a = index.get_indexer(demo.social["user_id"])
    b = index.get_indexer(demo.social["friend_id"])
    assert (demo.user_topic[a] == demo.user_topic[b]).mean() > 0.7


def test_timestamps_respect_user_windows_and_release_dates(demo):
    users, items = codes(demo)
    time = demo.interactions["timestamp"].to_numpy()
    config = demo.config
    end = config.start_time + config.duration_days * 86_400
    assert time.min() >= config.start_time and time.max() <= end
    assert (time >= demo.item_release[items]).all()
    released_during = (demo.item_release > config.start_time) & (demo.item_release < end)
    assert 0.2 < released_during.mean() < 0.3 and np.isin(np.flatnonzero(released_during), items).mean() > 0.8
    # Items nobody touched are mostly those released after the log ended.
    assert (demo.item_release[np.setdiff1d(np.arange(1500), items)] > end).mean() > 0.5
    # Rows are in user, then time order; users are active over a window, not the whole year.
    assert (np.diff(users) >= 0).all() and (np.diff(time)[np.diff(users) == 0] >= 0).all()
    span = pd.Series(time).groupby(users).agg(lambda t: t.max() - t.min())
    assert np.median(span) < 0.7 * (end - config.start_time)


# -- realism: text, attributes and KG carry the topic ---------------------------------------------


def word_sets(text: pd.Series) -> list[set[str]]:
    return [set(re.findall(r"[a-z]+", value.lower())) for value in text]


@pytest.mark.parametrize(("column", "same_at_least"), [("title", 0.12), ("description", 0.6)])
def test_same_topic_text_shares_vocabulary(demo, column, same_at_least):
    words = word_sets(demo.items[column])
    # As TF-IDF would: words in more than 10% of the texts ("the", "of", "meets") say nothing.
    frequency = pd.Series([word for found in words for word in found]).value_counts()
    common = set(frequency.index[frequency > 0.1 * len(words)])
    content = [found - common for found in words[:300]]
    topic = demo.item_topic[:300]
    share_a_word = np.array([[bool(a & b) for b in content] for a in content])
    same = (topic[:, None] == topic[None, :]) & ~np.eye(300, dtype=bool)
    # Measured: titles 17% vs 1%, descriptions 72% vs 10%.
    assert share_a_word[same].mean() > same_at_least
    assert share_a_word[same].mean() > 5 * share_a_word[~same].mean()
    vocabulary = {word for t in TOPICS[:12] for word in t.words}
    used = set().union(*words)
    assert len(vocabulary & used) > 0.9 * len(vocabulary)  # varied, not a few fixed words
    assert used & set(GENERIC_WORDS)  # and mixed with words every topic shares


def test_attributes_and_kg_entities_follow_the_topic(demo):
    items, topic = demo.items, demo.item_topic
    category_of_topic = pd.Series(items["category"].to_numpy()).groupby(topic).agg(lambda c: c.mode()[0])
    assert (items["category"].to_numpy() == category_of_topic[topic].to_numpy()).mean() > 0.7
    kg = demo.kg
    index = pd.Index(items["item_id"])
    for relation, purity in (("created_by", 0.8), ("part_of", 0.99)):
        rows = kg[(kg["relation"] == relation) & kg["head"].str.startswith("i")]
        entity_topic = pd.Series(topic[index.get_indexer(rows["head"])]).groupby(rows["tail"].to_numpy())
        majority = entity_topic.agg(lambda t: t.value_counts().iloc[0]).sum() / len(rows)
        assert majority > purity, (relation, majority)
    genres = kg[kg["relation"] == "has_genre"]
    parent = dict(kg.loc[kg["relation"] == "subgenre_of", ["head", "tail"]].to_numpy())
    broad = {f"genre:{t.genre}": k for k, t in enumerate(TOPICS)}
    genre_topic = np.array([broad[parent[g]] for g in genres["tail"]])
    assert (genre_topic == topic[index.get_indexer(genres["head"])]).mean() > 0.9


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
    write(data, tmp_path / "demo")
    with pytest.raises(FileExistsError, match="already exists"):
        write(data, tmp_path / "demo")
    broken = dataclasses.replace(data, interactions=data.interactions.drop(columns="event"))
    with pytest.raises(KeyError):
        write(broken, tmp_path / "half")
    assert not (tmp_path / "half").exists() and [p.name for p in tmp_path.iterdir()] == ["demo"]
    write(data, tmp_path / "demo", format="csv", overwrite=True)
    assert (tmp_path / "demo" / "interactions.csv").is_file()
    assert not (tmp_path / "demo" / "interactions.parquet").exists()


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
