"""Side-table column roles and attribute entities."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from kg import InputError, Rejections
from kg.attributes import attribute_edges, detect_roles
from kg.readers.base import Chunk

NONE = {"text": None, "categorical": None, "multi": None, "numeric": None}


def item_table(n=40) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "item_id": [f"i{i}" for i in range(n)],
        "title": [f"The {w} of item {i}" for i, w in enumerate(rng.choice(["Tale", "Night", "Song"], n))],
        "description": ["A long description of a thing that goes on and on, item " + str(i) for i in range(n)],
        "category": [["film", "book"][i % 2] for i in range(n)],
        "tags": ["a|b", "b", "", "c|a|a"] * (n // 4),
        "price": [f"{1.5 * i:.2f}" for i in range(n)],
        "flag": [str(i % 2) for i in range(n)],
        "sku": [f"SKU-{i:05d}" for i in range(n)],
    })


def test_detection_of_every_role():
    roles = detect_roles(item_table(), {}, explicit=NONE, multi_separator=None, numeric_buckets=5,
                         text_min_length=30, path="items.csv")
    assert roles.roles == {
        "title": "text", "description": "text", "category": "categorical", "tags": "multi",
        "price": "numeric", "flag": "categorical", "sku": "ignored",
    }
    assert roles.separators == {"tags": "|"}
    assert "identifier" in roles.detected["sku"]


def test_recbole_declared_types_and_explicit_lists():
    table = pa.table({
        "item_id": ["1", "2", "3", "4", "5", "6"],
        "movie_title": ["Toy Story", "Heat", "Four Rooms", "Get Shorty", "Copycat", "Twelve Monkeys"],
        "class": ["Comedy", "Action", "Comedy", "Comedy Drama", "Action", "Comedy"],
        "year": ["1995"] * 6,
    })
    types = {"item_id": "token", "movie_title": "token_seq", "class": "token_seq", "year": "token"}
    roles = detect_roles(table, types, explicit=NONE, multi_separator=None, numeric_buckets=5,
                         text_min_length=30, path="x.item")
    assert roles.roles == {"movie_title": "text", "class": "multi", "year": "categorical"}
    assert roles.separators["class"] == " "
    # Listing the text columns turns other detected text columns into "ignored".
    explicit = {**NONE, "text": ("description",)}
    roles = detect_roles(item_table(), {}, explicit=explicit, multi_separator=None, numeric_buckets=5,
                         text_min_length=30, path="items.csv")
    assert roles.roles["description"] == "text" and roles.roles["title"] == "ignored"
    with pytest.raises(InputError, match="numeric column 'cost' is not in the table"):
        detect_roles(item_table(), {}, explicit={**NONE, "numeric": ("cost",)}, multi_separator=None,
                     numeric_buckets=5, text_min_length=30, path="items.csv")


def test_entities_per_value_multi_value_and_bucket():
    table = item_table(8)
    roles = detect_roles(table, {}, explicit={**NONE, "numeric": ("price",), "categorical": ("category",),
                                              "multi": ("tags",), "text": ()},
                         multi_separator=None, numeric_buckets=2, text_min_length=30, path="items.csv")
    chunk = Chunk(table, np.arange(2, 10))
    node = np.arange(8) * 10  # node index of each row
    edges, buckets = attribute_edges(chunk, roles, node, numeric_buckets=2, path="items.csv", rejections=Rejections())
    triples = set(zip(edges.node.tolist(), edges.relation.to_pylist(), edges.entity_id.to_pylist()))
    assert (0, "category", "category=film") in triples and (10, "category", "category=book") in triples
    # "c|a|a" is two edges; the empty cell none.
    assert {e for n, r, e in triples if n == 30 and r == "tags"} == {"tags=c", "tags=a"}
    assert not any(n == 20 and r == "tags" for n, r, _ in triples)
    # Prices 0 .. 10.5 in two quantile buckets; the median 5.25 is the boundary.
    assert buckets["price"] == [0.0, 5.25, 10.5]
    price = {n: e for n, r, e in triples if r == "price"}
    assert price[0] == "price=[0, 5.25)" and price[70] == "price=[5.25, 10.5]"
    assert "price: [0, 5.25)" in edges.entity_name.to_pylist()


def test_non_numeric_value_in_a_numeric_column_is_refused():
    table = pa.table({"item_id": ["a", "b", "c"], "price": ["1", "cheap", ""]})
    roles = detect_roles(table, {}, explicit={**NONE, "numeric": ("price",)}, multi_separator=None,
                         numeric_buckets=5, text_min_length=30, path="items.csv")
    chunk = Chunk(table, np.array([2, 3, 4]))
    with pytest.raises(InputError) as info:
        attribute_edges(chunk, roles, np.arange(3), numeric_buckets=5, path="items.csv", rejections=Rejections())
    assert info.value.line == 3 and info.value.column == "price"
    lenient = Rejections(lenient=True)
    edges, _ = attribute_edges(chunk, roles, np.arange(3), numeric_buckets=5, path="items.csv", rejections=lenient)
    # The missing value is no error (an optional attribute); the non-numeric one is counted.
    assert edges.node.tolist() == [0] and lenient.report() == {"items.csv": {"non-numeric price value": 1}}
