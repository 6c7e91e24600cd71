"""The embedded demo data is realistic: a long tail, heavy-tailed activity, tastes friends share,
timestamps inside user windows, and text, attributes and KG entities that carry each item's topic."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from graphrec.datasets import generate
from graphrec.datasets.vocab import GENERIC_WORDS, TOPICS
from tests.graphrec.conftest import codes, user_items

# -- realism: long tail, activity, taste, time ---------------------------------------------------


def test_popularity_has_a_head_and_a_genuine_long_tail(demo_data):
    users_per_item = np.asarray(user_items(demo_data).sum(axis=0)).ravel()
    ordered = np.sort(users_per_item)[::-1]
    head_share = ordered[: 300].sum() / ordered.sum()
    assert 0.6 < head_share < 0.75, head_share  # measured 0.66
    assert (users_per_item == 0).mean() > 0.02  # items nobody touched (released after the log)
    assert (users_per_item <= 5).mean() > 0.06  # and many with very few
    assert ordered[0] > 20 * np.median(users_per_item)


def test_user_activity_is_heavy_tailed(demo_data):
    items_per_user = np.asarray(user_items(demo_data).sum(axis=1)).ravel()
    assert items_per_user.min() >= 1
    assert 0.08 < (items_per_user <= 5).mean() < 0.3  # sparse users, measured 0.14
    assert items_per_user.max() > 10 * np.median(items_per_user)


def test_repeats_follow_repeat_rate(demo_data):
    users, items = codes(demo_data)
    distinct = len(np.unique(users.astype(np.int64) * demo_data.config.num_items + items))
    repeat_share = 1 - distinct / len(users)
    assert 0.14 < repeat_share < 0.18, repeat_share  # repeat_rate 0.15 + rare leftovers
    none = generate(dataclasses.replace(demo_data.config, repeat_rate=0.0))
    users, items = codes(none)
    # Only users with more events than their topics hold popular items may run out.
    assert 1 - len(np.unique(users * 1500 + items)) / len(users) < 0.01


def test_users_mostly_consume_their_topics_and_same_topic_items_co_occur(demo_data):
    users, items = codes(demo_data)
    on_main = demo_data.item_topic[items] == demo_data.user_topic[users]
    chance = np.bincount(demo_data.item_topic, minlength=12)[demo_data.user_topic[users]].mean() / 1500
    assert on_main.mean() > 0.45 and on_main.mean() > 4 * chance
    matrix = user_items(demo_data)
    co = (matrix.T @ matrix).toarray()
    popularity = np.diag(co).copy()
    expected = np.outer(popularity, popularity) / demo_data.config.num_users  # if users picked by popularity alone
    np.fill_diagonal(co, 0)
    np.fill_diagonal(expected, 0)
    same = demo_data.item_topic[:, None] == demo_data.item_topic[None, :]
    lift_same = co[same].sum() / expected[same].sum()
    lift_other = co[~same].sum() / expected[~same].sum()
    assert lift_same > 3.5 * lift_other, (lift_same, lift_other)  # measured 7.8 vs 1.9


def test_friends_share_tastes(demo_data):
    index = pd.Index(demo_data.users["user_id"])
    a = index.get_indexer(demo_data.social["user_id"])
    b = index.get_indexer(demo_data.social["friend_id"])
    assert (demo_data.user_topic[a] == demo_data.user_topic[b]).mean() > 0.7


def test_timestamps_respect_user_windows_and_release_dates(demo_data):
    users, items = codes(demo_data)
    time = demo_data.interactions["timestamp"].to_numpy()
    config = demo_data.config
    end = config.start_time + config.duration_days * 86_400
    assert time.min() >= config.start_time and time.max() <= end
    assert (time >= demo_data.item_release[items]).all()
    released_during = (demo_data.item_release > config.start_time) & (demo_data.item_release < end)
    assert 0.2 < released_during.mean() < 0.3 and np.isin(np.flatnonzero(released_during), items).mean() > 0.8
    # Items nobody touched are mostly those released after the log ended.
    assert (demo_data.item_release[np.setdiff1d(np.arange(1500), items)] > end).mean() > 0.5
    # Rows are in user, then time order; users are active over a window, not the whole year.
    assert (np.diff(users) >= 0).all() and (np.diff(time)[np.diff(users) == 0] >= 0).all()
    span = pd.Series(time).groupby(users).agg(lambda t: t.max() - t.min())
    assert np.median(span) < 0.7 * (end - config.start_time)


# -- realism: text, attributes and KG carry the topic ---------------------------------------------


def word_sets(text: pd.Series) -> list[set[str]]:
    return [set(re.findall(r"[a-z]+", value.lower())) for value in text]


@pytest.mark.parametrize(("column", "same_at_least"), [("title", 0.12), ("description", 0.6)])
def test_same_topic_text_shares_vocabulary(demo_data, column, same_at_least):
    words = word_sets(demo_data.items[column])
    # As TF-IDF would: words in more than 10% of the texts ("the", "of", "meets") say nothing.
    frequency = pd.Series([word for found in words for word in found]).value_counts()
    common = set(frequency.index[frequency > 0.1 * len(words)])
    content = [found - common for found in words[:300]]
    topic = demo_data.item_topic[:300]
    share_a_word = np.array([[bool(a & b) for b in content] for a in content])
    same = (topic[:, None] == topic[None, :]) & ~np.eye(300, dtype=bool)
    # Measured: titles 17% vs 1%, descriptions 72% vs 10%.
    assert share_a_word[same].mean() > same_at_least
    assert share_a_word[same].mean() > 5 * share_a_word[~same].mean()
    vocabulary = {word for t in TOPICS[:12] for word in t.words}
    used = set().union(*words)
    assert len(vocabulary & used) > 0.9 * len(vocabulary)  # varied, not a few fixed words
    assert used & set(GENERIC_WORDS)  # and mixed with words every topic shares


def test_attributes_and_kg_entities_follow_the_topic(demo_data):
    items, topic = demo_data.items, demo_data.item_topic
    category_of_topic = pd.Series(items["category"].to_numpy()).groupby(topic).agg(lambda c: c.mode()[0])
    assert (items["category"].to_numpy() == category_of_topic[topic].to_numpy()).mean() > 0.7
    kg = demo_data.kg
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
