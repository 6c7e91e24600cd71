"""RecommendationWriter: formats, round trip through eval.recfile, atomicity, bad input."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval.recfile import read_recommendations
from graphrec.serving.topk_writer import RecommendationWriter, format_from_path

USERS = np.array(["u1", 'u,"2', "ü3"])
ITEMS = np.array(["a", "b\nc", "é", "x", "zz", "NA"])
BATCH_ITEMS = np.array([["a", "b\nc", "é"], ["x", "a", "zz"], ["NA", "x", "a"]])
BATCH_SCORES = np.array([[3.0, 2.5, 1e-8], [0.3, -1.0, -np.inf], [7.0, 6.0, 5.0]])
COUNTS = np.array([3, 2, 3])


def write(path, **kwargs):
    with RecommendationWriter(path, **kwargs) as out:
        out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2], counts=COUNTS[:2])
        out.write_batch(USERS[2:], BATCH_ITEMS[2:], BATCH_SCORES[2:])
    return out


def read_jsonl(path) -> pd.DataFrame:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return pd.DataFrame([json.loads(line) for line in handle])


@pytest.mark.parametrize("name", ["recs.parquet", "recs.csv", "recs.csv.gz"])
def test_round_trip_through_eval_reader(tmp_path, name):
    out = write(tmp_path / name)
    assert out.rows_written == 8 and out.users_written == 3
    topk, report = read_recommendations(tmp_path / name, user_ids=USERS, item_ids=ITEMS, k=3)
    assert report.rows == 8 and report.users == 3
    assert topk.users.tolist() == [0, 1, 2]
    assert topk.items.tolist() == [[0, 1, 2], [3, 0, -1], [5, 3, 0]]
    expected = np.where(np.arange(3) < COUNTS[:, None], BATCH_SCORES, -np.inf).astype(np.float32)
    np.testing.assert_array_equal(topk.scores, expected)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_parquet_schema(tmp_path):
    write(tmp_path / "r.parquet")
    schema = pq.read_schema(tmp_path / "r.parquet")
    assert schema.names == ["user", "item", "rank", "score"]
    assert [str(t) for t in schema.types] == ["string", "string", "int32", "float"]


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz", "r.ndjson"])
def test_jsonl_one_object_per_row(tmp_path, name):
    write(tmp_path / name)
    frame = read_jsonl(tmp_path / name)
    assert list(frame.columns) == ["user", "item", "rank", "score"]
    assert frame["user"].tolist() == ["u1"] * 3 + ['u,"2'] * 2 + ["ü3"] * 3
    assert frame["item"].tolist() == ["a", "b\nc", "é", "x", "a", "NA", "x", "a"]
    assert frame["rank"].tolist() == [1, 2, 3, 1, 2, 1, 2, 3]
    np.testing.assert_array_equal(
        frame["score"].to_numpy(np.float32), np.float32([3, 2.5, 1e-8, 0.3, -1, 7, 6, 5])
    )
    # pandas alone reads it too.
    if not name.endswith(".gz"):
        other = pd.read_json(tmp_path / name, lines=True, dtype={"user": str, "item": str})
        assert other["item"].tolist() == frame["item"].tolist()


def test_format_argument_overrides_suffix(tmp_path):
    write(tmp_path / "recs.out", format="csv")
    assert (tmp_path / "recs.out").read_text().startswith('"user","item","rank","score"') or (
        tmp_path / "recs.out"
    ).read_text().startswith("user,item,rank,score")


def test_unknown_suffix_and_format(tmp_path):
    with pytest.raises(ValueError, match="suffix .txt"):
        RecommendationWriter(tmp_path / "recs.txt")
    with pytest.raises(ValueError, match="format must be one of"):
        RecommendationWriter(tmp_path / "recs.csv", format="xlsx")
    assert format_from_path("A.CSV.GZ") == ("csv", "gzip")


@pytest.mark.parametrize("name", ["r.parquet", "r.csv", "r.jsonl.gz"])
def test_exception_leaves_no_file_and_no_temp(tmp_path, name):
    with pytest.raises(KeyError):
        with RecommendationWriter(tmp_path / name) as out:
            out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2], counts=COUNTS[:2])
            raise KeyError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_file(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old")
    with pytest.raises(ValueError):
        with RecommendationWriter(target) as out:
            out.write_batch(USERS[:1], BATCH_ITEMS[:1], np.array([[1.0, np.nan, 0.0]]))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_bad_input_is_named(tmp_path):
    with RecommendationWriter(tmp_path / "r.parquet") as out:
        with pytest.raises(ValueError, match=r"items must have shape \[B=2, k\]"):
            out.write_batch(USERS[:2], BATCH_ITEMS, BATCH_SCORES)
        with pytest.raises(ValueError, match="scores must have the shape of items"):
            out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2, :2])
        with pytest.raises(ValueError, match=r"counts must lie in \[0, 3\]"):
            out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2], counts=np.array([4, 1]))
        with pytest.raises(ValueError, match="not finite"):
            out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2])
        with pytest.raises(ValueError, match="empty ids"):
            out.write_batch(np.array([""]), BATCH_ITEMS[:1], BATCH_SCORES[:1])
        with pytest.raises(TypeError, match="must hold strings"):
            out.write_batch(np.array([None], dtype=object), BATCH_ITEMS[:1], BATCH_SCORES[:1])
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        out.write_batch(USERS[:1], BATCH_ITEMS[:1], BATCH_SCORES[:1])


def test_empty_counts_write_nothing(tmp_path):
    with RecommendationWriter(tmp_path / "r.parquet") as out:
        assert out.write_batch(USERS[:2], BATCH_ITEMS[:2], BATCH_SCORES[:2], counts=np.array([0, 0])) == 0
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 0


_ID = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")).filter(lambda c: not c.isspace())
    | st.sampled_from([",", '"', " ", "'", "\n"]),
    min_size=1,
    max_size=8,
).map(str.strip).filter(bool)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    suffix=st.sampled_from([".parquet", ".csv", ".jsonl"]),
)
def test_round_trip_property(tmp_path_factory, data, suffix):
    item_ids = data.draw(st.lists(_ID, min_size=1, max_size=12, unique=True), label="items")
    user_ids = data.draw(st.lists(_ID, min_size=1, max_size=6, unique=True), label="users")
    k = data.draw(st.integers(1, len(item_ids)), label="k")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    picks = np.stack([rng.permutation(len(item_ids))[:k] for _ in user_ids])
    scores = np.sort(rng.normal(size=(len(user_ids), k)).astype(np.float32) * 100, axis=1)[:, ::-1]
    counts = rng.integers(1, k + 1, len(user_ids))
    users, items = np.array(user_ids, dtype=object), np.array(item_ids, dtype=object)
    path = tmp_path_factory.mktemp("rt") / f"recs{suffix}"
    split = len(user_ids) // 2
    with RecommendationWriter(path) as out:
        for rows in (slice(0, split), slice(split, None)):
            out.write_batch(users[rows], items[picks[rows]], scores[rows], counts=counts[rows])
    mask = np.arange(k)[None, :] < counts[:, None]
    if suffix == ".jsonl":
        frame = read_jsonl(path)
        assert frame["user"].tolist() == np.repeat(users, counts).tolist()
        assert frame["item"].tolist() == items[picks][mask].tolist()
        assert frame["rank"].tolist() == np.tile(np.arange(1, k + 1), (len(users), 1))[mask].tolist()
        np.testing.assert_array_equal(frame["score"].to_numpy(np.float32), scores[mask])
        return
    topk, report = read_recommendations(path, user_ids=user_ids, item_ids=item_ids, k=k)
    assert report.rows == int(counts.sum())
    assert topk.users.tolist() == list(range(len(user_ids)))
    np.testing.assert_array_equal(topk.items, np.where(mask, picks, -1))
    np.testing.assert_array_equal(topk.scores, np.where(mask, scores, -np.inf).astype(np.float32))


def test_write_topk_maps_internal_indices(tmp_path):
    users = np.array([2, 0])
    items = np.array([[5, 3, -1], [0, 1, 2]])
    scores = np.array([[2.0, 1.0, -np.inf], [3.0, 2.0, 1.0]], dtype=np.float32)
    with RecommendationWriter(tmp_path / "r.parquet") as out:
        assert out.write_topk(users, items, scores, user_ids=USERS, item_ids=ITEMS) == 5
        with pytest.raises(ValueError, match="after -1 padding"):
            out.write_topk(users, np.array([[-1, 3, 1], [0, 1, 2]]), scores, user_ids=USERS, item_ids=ITEMS)
    topk, _ = read_recommendations(tmp_path / "r.parquet", user_ids=USERS, item_ids=ITEMS, k=3)
    assert topk.users.tolist() == [0, 2]
    assert topk.items.tolist() == [[0, 1, 2], [5, 3, -1]]
