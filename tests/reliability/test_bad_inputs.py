"""Issue 11, points 4, 6 and 7 (serving): every bad input found by hand, one test each.

Each used to crash with a traceback (point 4), pass silently (point 6) or serve
a wrong list quietly (point 7). Now a build either stops with exit status 2 and
one line naming the file, row, column or setting, or (``--lenient``) counts the
rows per reason in the manifest; serving dedupes users and says when lists fall
short of ``k``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphrec.build import main as build
from tests.reliability import kit

LOG = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{i},{100 + u + i}\n" for u in range(4) for i in range(5))


def run_build(capsys, out: Path, *args: str) -> tuple[int, str, dict]:
    """``python -m graphrec.build`` in process: (status, stderr, manifest or {})."""
    status = build([*args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text()) if status == 0 else {}
    return status, err, manifest


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return path


# -- point 4: tracebacks -------------------------------------------------------------------


def test_lenient_null_and_missing_ids_in_jsonl_are_counted(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"user_id": "u1", "item_id": "i1"}\n{"user_id": null, "item_id": "i2"}\n{"item_id": "i3"}\n'
        '{"user_id": "u2", "item_id": "i1"}\n{"user_id": "u2", "item_id": "i2"}\n'
    )
    status, err, manifest = run_build(capsys, tmp_path / "g", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"missing user id": 2}}
    status, err, _ = run_build(capsys, tmp_path / "g2", "--interactions", str(path))
    assert status == 2 and f"{path}, line 2, column 'user_id': missing user id" in err


def test_lenient_null_id_in_parquet_is_counted(tmp_path, capsys):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": ["u1", None, "u2", "u2"], "item_id": ["i1", "i2", "i1", None]}), path)
    status, err, manifest = run_build(capsys, tmp_path / "g", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"missing user id": 1, "missing item id": 1}}
    assert manifest["counts"]["interactions"] == 2


@pytest.mark.parametrize("ids", [pa.array([[1, 2], [3], [4]]), pa.array([{"a": 1}, {"a": 2}, {"a": 3}])], ids=["list", "struct"])
def test_parquet_list_and_struct_id_columns_are_refused(tmp_path, capsys, ids):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": ids, "item_id": ["i1", "i2", "i3"]}), path)
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(path))
    assert status == 2
    assert f"{path}, line 1, column 'user_id': nested user id: expected one user id per row" in err
    assert "Traceback" not in err
    # Lenient: every row is refused and counted, so nothing is left to build (and it says so).
    status, err, _ = run_build(capsys, tmp_path / "g2", "--interactions", str(path), "--lenient")
    assert status == 2 and "every row was refused" in err and "'nested user id': 3" in err


def test_unknown_encoding_is_refused(log, tmp_path, capsys):
    for encoding in ("no-such-codec", "rot13"):
        status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(log), "--encoding", encoding)
        assert status == 2
        assert f"unknown text encoding {encoding!r}" in err and "--encoding" in err


# -- point 6: silently accepted ------------------------------------------------------------


def test_item_table_without_an_id_column_is_refused(log, tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_text("title,genre\nA Movie,drama\nAnother Movie,comedy\n")
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(log), "--items", str(items))
    assert status == 2
    assert f"{items}, column 'title': no column is named item_id/item/itemid/id, so the first column 'title' was taken" in err
    # A named id column that shares no id with the log is refused too; an explicit one is trusted.
    items.write_text("item_id,genre\n0001,drama\n0002,comedy\n")
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(log), "--items", str(items))
    assert status == 2 and "only 0 of its 2 values are item ids of the interaction log" in err
    status, err, manifest = run_build(
        capsys, tmp_path / "g", "--interactions", str(log), "--items", str(items), "--item-id-column", "item_id"
    )
    assert status == 0, err
    assert manifest["counts"]["items"] == 7


def test_nan_ids_in_parquet_are_missing_not_a_user_named_nan(tmp_path, capsys):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": [1.0, math.nan, 2.0, math.inf], "item_id": ["i1", "i2", "i1", "i2"]}), path)
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(path))
    assert status == 2 and f"{path}, line 2, column 'user_id': missing user id" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"missing user id": 2}}
    users = pq.read_table(tmp_path / "g2" / "users.parquet").column(0).to_pylist()
    assert users == ["1", "2"]


def test_nested_json_ids_are_refused(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"user_id": [1, 2], "item_id": "i1"}\n{"user_id": {"a": 1}, "item_id": "i2"}\n'
        '{"user_id": "u1", "item_id": "i1"}\n{"user_id": "u1", "item_id": "i2"}\n'
    )
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(path))
    assert status == 2 and f"{path}, line 1, column 'user_id': nested user id" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"nested user id": 2}}
    assert manifest["counts"]["users"] == 1


@pytest.mark.parametrize(
    "flags, named", [(("--k-core", "50"), "the k_core filter (k=50)"), (("--min-user-count", "9"), "the min_count filter")]
)
def test_a_filter_that_removes_everything_is_refused(log, tmp_path, capsys, flags, named):
    out = tmp_path / "g"
    status, err, _ = run_build(capsys, out, "--interactions", str(log), *flags)
    assert status == 2
    assert f"{named}" in err and "removed every interaction (20 pairs" in err and "an empty graph is not written" in err
    assert not out.exists()


def test_test_file_identical_to_train_is_refused(log, tmp_path, capsys):
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(log), "--test", str(log))
    assert status == 2
    assert f"no training pairs: every pair of {log} is also in the test file {log}" in err


def test_one_bad_value_does_not_turn_a_numeric_user_column_into_identifiers(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n" + "".join(f"u{u},i{(u + j) % 9}\n" for u in range(30) for j in range(4)))
    users = tmp_path / "users.csv"
    users.write_text("user_id,age\n" + "".join(f"u{u},{'unknown' if u == 7 else 18 + u}\n" for u in range(30)))
    args = ("--interactions", str(log), "--users", str(users))
    status, err, _ = run_build(capsys, tmp_path / "g", *args)
    assert status == 2 and f"{users}, line 9, column 'age': non-numeric age value: expected a number; found 'unknown'" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", *args, "--lenient")
    assert status == 0, err
    assert manifest["column_roles"]["users"]["age"] == "numeric"
    assert manifest["rejected"] == {str(users): {"non-numeric age value": 1}}
    assert manifest["user_attribute_columns"] == ["age"]


def test_non_integer_tokens_in_the_lightgcn_format_are_refused(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_text("0 1 2 3 4 5\n1 2 x 3.5 4\nu7 1 2\n2 1 3\n")
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(path))
    assert status == 2 and f"{path}, line 2: non-integer item id" in err and "found 'x'" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"non-integer item id": 2, "non-integer user id": 2}}
    assert manifest["counts"]["users"] == 3


def test_timestamp_out_of_range_is_refused(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1e20\nu1,i2,5\nu2,i1,1700000000000\nu2,i2,-1e30\n")
    status, err, _ = run_build(capsys, tmp_path / "g", "--interactions", str(path))
    assert status == 2 and f"{path}, line 2, column 'timestamp': timestamp out of range" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", "--interactions", str(path), "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(path): {"timestamp out of range": 2}}


def test_kg_and_link_rows_to_unknown_entities_and_items_are_counted(log, tmp_path, capsys):
    kg = tmp_path / "kg.tsv"
    kg.write_text("head\trelation\ttail\ne1\tby\tp1\ne2\tby\tp2\nx\tby\ty\n")
    link = tmp_path / "link.tsv"
    link.write_text("item_id\tentity_id\ni1\te1\ni2\te2\nnope\te3\ni3\tghost\n")
    args = ("--interactions", str(log), "--kg", str(kg), "--link", str(link))
    status, err, _ = run_build(capsys, tmp_path / "g", *args)
    assert status == 2 and f"{link}, line 4: unknown item id" in err
    status, err, manifest = run_build(capsys, tmp_path / "g2", *args, "--lenient")
    assert status == 0, err
    assert manifest["rejected"] == {str(link): {"unknown item id": 1, "unknown entity id": 1}}
    assert manifest["kg"]["not_connected_to_items"] == 1  # x -by-> y reaches no item
    assert manifest["kg"]["item_endpoints"] == 2


def test_summary_warns_about_a_degenerate_split(tmp_path, capsys):
    # Four pairs per user: ceil(0.8 * 4) = 4 stay in train, so the test split is empty.
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u in range(3) for i in range(4)))
    status = build(["--interactions", str(log), "--out", str(tmp_path / "g")])
    printed = capsys.readouterr().out
    assert status == 0
    assert "warnings:\n  the test split is empty: nothing to evaluate on" in printed
    assert "the validation split is empty although valid_fraction > 0" in printed
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert any("test split is empty" in w for w in manifest["warnings"])


# -- point 7 (serving) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return kit.tiny_model(tmp_path_factory)


def test_recommend_answers_a_repeated_user_once(model, tmp_path, capsys):
    from graphrec.recommend import main as recommend
    from graphrec.serving.recommender import Recommender
    from training.base import GraphrecWarning

    rec = Recommender.load(model)
    a, b = rec.user_ids[:2]
    with pytest.warns(GraphrecWarning, match="1 repeated user id"):
        out = rec.recommend([b, a, b], k=3)
    assert out["user"].tolist() == [b] * 3 + [a] * 3
    users = tmp_path / "users.txt"
    users.write_text(f"user\n{b}\n{a}\n{b}\n{b}\n")
    target = tmp_path / "top.csv"
    assert recommend(["--model", str(model), "--users", str(users), "--out", str(target), "--k", "3", "--quiet"]) == 0
    assert "2 repeated user id(s); each user is answered once" in capsys.readouterr().err
    assert pd.read_csv(target, dtype=str)["user"].tolist() == [b] * 3 + [a] * 3


def test_k_above_the_candidate_pool_is_refused_or_counted(model, tmp_path, capsys):
    from graphrec.recommend import main as recommend
    from graphrec.serving.recommender import Recommender
    from training.base import GraphrecWarning

    rec = Recommender.load(model)
    user = rec.user_ids[0]
    with pytest.raises(ValueError, match=r"k=6 is larger than the 5 candidate items"):
        rec.recommend([user], k=6, candidates=rec.item_ids[:5])
    with pytest.raises(ValueError, match=r"k=5 is larger than the 4 candidate items left after exclude"):
        rec.recommend([user], k=5, candidates=rec.item_ids[:5], exclude=rec.item_ids[:1])
    # The hybrid ranks only its sources' candidates: a k beyond them gets a shorter, counted list.
    k = rec.num_items
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = rec.recommend([user], k=k)
    short = [w for w in caught if issubclass(w.category, GraphrecWarning) and "fewer than k" in str(w.message)]
    assert len(out) < k and len(short) == 1
    assert f"({k - len(out)} rows short)" in str(short[0].message)
    users = tmp_path / "users.txt"
    users.write_text(f"{user}\n")
    target = tmp_path / "top.csv"
    assert recommend(["--model", str(model), "--users", str(users), "--out", str(target), "--k", str(k), "--quiet"]) == 0
    rows = len(pd.read_csv(target, dtype=str))
    assert rows == len(out)
    assert f"{k - rows:,} rows short of --k {k} per user" in capsys.readouterr().err
    assert np.isfinite(out["score"]).all()
