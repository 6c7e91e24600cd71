"""Shared fixtures: a small structured graph with text, attributes, KG and social edges.

The graph is built straight from arrays (no files) so that learner and evaluator
tests do not depend on the log readers. Users belong to taste clusters, items to
topics; a user mostly picks items of their cluster's topic, weighted by a power-law
popularity, so a model that learns the structure beats MostPop.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kg.graph import ENTITY, ITEM, USER, Graph

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TOPIC_WORDS = [
    ["space", "rocket", "alien", "galaxy", "orbit"],
    ["love", "wedding", "heart", "romance", "kiss"],
    ["murder", "detective", "crime", "police", "clue"],
    ["dragon", "wizard", "magic", "sword", "quest"],
]


def make_structured_graph(
    num_users: int = 120, num_items: int = 80, per_user: int = 12, seed: int = 0
) -> Graph:
    rng = np.random.default_rng(seed)
    num_topics = len(TOPIC_WORDS)
    item_topic = np.arange(num_items) % num_topics
    user_topic = rng.integers(0, num_topics, num_users)
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    rng.shuffle(popularity)
    users, items = [], []
    for u in range(num_users):
        pref = np.where(item_topic == user_topic[u], 1.0, 0.08) * popularity
        chosen = rng.choice(num_items, size=per_user, replace=False, p=pref / pref.sum())
        users.extend([u] * per_user)
        items.extend(chosen.tolist())
    users = np.array(users)
    items = np.array(items)
    # Per-user 80/20 split, then 20% of train to valid (docs/PROTOCOL.md shape).
    split = np.zeros(len(users), np.int8)
    for u in range(num_users):
        rows = np.flatnonzero(users == u)
        rows = rows[rng.permutation(len(rows))]
        n_train = math.ceil(0.8 * len(rows))
        split[rows[n_train:]] = 2
        n_fit = math.ceil(0.8 * n_train)
        split[rows[n_fit:n_train]] = 1
    interactions = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "weight": rng.integers(1, 4, len(users)).astype(np.float32),
            "count": np.ones(len(users), np.int32),
            "timestamp": 1.6e9 + rng.integers(0, 10**7, len(users)),
            "split": split,
        }
    )
    titles = [
        " ".join(rng.choice(TOPIC_WORDS[t], 3, replace=False)) + f" {i}" for i, t in enumerate(item_topic)
    ]
    items_table = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(num_items)],
            "title": titles,
            "genre": [f"g{t}" for t in item_topic],
        }
    )
    users_table = pd.DataFrame(
        {"user_id": [f"u{u}" for u in range(num_users)], "age": rng.integers(18, 70, num_users)}
    )
    # Entities: one genre entity per topic (attribute), one creator per 4 items (KG).
    num_creators = num_items // 4
    entity_ids = [f"genre=g{t}" for t in range(num_topics)] + [f"creator{c}" for c in range(num_creators)]
    entities = pd.DataFrame(
        {
            "entity_id": entity_ids,
            "name": [f"g{t}" for t in range(num_topics)] + [f"creator {c}" for c in range(num_creators)],
            "source": ["attribute"] * num_topics + ["kg"] * num_creators,
        }
    )
    relations = pd.DataFrame({"relation": ["genre", "created_by"]})
    creator_of = num_topics + (np.arange(num_items) // 4) % num_creators
    triples = pd.DataFrame(
        {
            "head": np.concatenate([np.arange(num_items), np.arange(num_items)]),
            "head_type": ITEM,
            "relation": np.concatenate([np.zeros(num_items), np.ones(num_items)]).astype(np.int16),
            "tail": np.concatenate([item_topic, creator_of]),
            "tail_type": ENTITY,
        }
    )
    social_u = rng.integers(0, num_users, num_users)
    social_f = rng.integers(0, num_users, num_users)
    keep = social_u != social_f
    social = pd.DataFrame({"user": social_u[keep], "friend": social_f[keep]})
    return Graph(
        interactions=interactions,
        items=items_table,
        users=users_table,
        entities=entities,
        relations=relations,
        triples=triples,
        social=social,
        meta={"item_text_columns": ["title"], "item_attribute_columns": ["genre"], "seed": seed},
    )


@pytest.fixture(scope="session")
def structured_graph() -> Graph:
    """A ~1,440-interaction graph with 4 taste clusters (shared, do not mutate)."""
    return make_structured_graph()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` or a skip with a message where it is absent (a fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}; these tests need ../shared/data")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread_per_test_session():
    """One intra-op thread for the whole suite: the test graphs are small, so threads only add
    OpenMP barrier overhead (100x slower kernels on a loaded machine), and float reductions
    (GAT's scatter sums) are then summed in one order, so seeded runs repeat exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
