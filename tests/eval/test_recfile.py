"""Reading recommendations files: CSV and Parquet, ordering by rank, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval import read_recommendations

USER_IDS = ["u1", "u2", "NA", "u4"]
ITEM_IDS = ["10", "20", "30", "40", "50"]


def _write(tmp_path, rows, name="recs.csv", columns=("user", "item", "rank")):
    path = tmp_path / name
    frame = pd.DataFrame(rows, columns=list(columns))
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _read(path, k=3, ignore_unknown=False):
    return read_recommendations(path, user_ids=USER_IDS, item_ids=ITEM_IDS, k=k, ignore_unknown=ignore_unknown)


@pytest.mark.parametrize("name", ["recs.csv", "recs.parquet"])
def test_reads_lists_in_rank_order(tmp_path, name):
    rows = [
        ("u2", "30", 2, 0.5),
        ("u2", "10", 1, 0.9),
        ("NA", "50", 7, 0.1),
        ("u2", "40", 5, 0.2),
        ("u2", "20", 9, 0.0),
    ]
    lists, report = _read(_write(tmp_path, rows, name, ("user", "item", "rank", "score")))
    # "NA" is an id, not a missing value; ranks 1, 2, 5 keep their order with gaps closed; rank 9 is beyond k.
    assert lists.users.tolist() == [1, 2]
    assert lists.items.tolist() == [[0, 2, 3], [4, -1, -1]]
    np.testing.assert_allclose(lists.scores, [[0.9, 0.5, 0.2], [0.1, -np.inf, -np.inf]])
    assert report.to_dict() == {
        "rows": 5,
        "users": 2,
        "unknown_user_rows": 0,
        "unknown_item_rows": 0,
        "rows_beyond_k": 1,
    }


def test_integer_ids_in_parquet_are_compared_as_text(tmp_path):
    path = _write(tmp_path, [("u1", 40, 1)], "recs.parquet")
    lists, _ = _read(path)
    assert lists.items.tolist() == [[3, -1, -1]]


def test_unknown_ids_are_an_error_listing_examples_and_count(tmp_path):
    rows = [("u1", "10", 1), ("ghost", "10", 1), ("ghost", "20", 2), ("u1", "99", 2)]
    path = _write(tmp_path, rows)
    with pytest.raises(ValueError, match="2 rows name 1 user ids unknown to the graph, e.g. \\['ghost'\\]"):
        _read(path)
    lists, report = _read(path, ignore_unknown=True)
    assert (report.unknown_user_rows, report.unknown_item_rows) == (2, 1)
    assert lists.items.tolist() == [[0, -1, -1]]


@pytest.mark.parametrize(
    "rows, match",
    [
        ([("u1", "10", 1), ("u1", "20", 1)], "user 'u1' has rank 1 more than once"),
        ([("u4", "10", 1), ("u4", "10", 2)], "user 'u4' has item '10' more than once"),
        ([("u1", "10", 1.5)], "lines \\[2\\]: 'rank' is not a whole number"),
        ([("u1", "10", 1), ("u1", "20", "two")], "lines \\[3\\]: 'rank' is not a whole number"),
        ([("u1", "", 1)], "lines \\[2\\] have an empty 'item'"),
    ],
)
def test_bad_rows_are_errors_naming_the_user_or_line(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        _read(_write(tmp_path, rows))


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="missing columns \\['rank'\\]"):
        _read(_write(tmp_path, [("u1", "10")], columns=("user", "item")))
    with pytest.raises(ValueError, match="holds no recommendation rows"):
        _read(_write(tmp_path, [], name="empty.csv"))
    (tmp_path / "recs.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported recommendations format .json"):
        _read(tmp_path / "recs.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _read(tmp_path / "absent.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="unreadable"):
        _read(tmp_path / "broken.parquet")
