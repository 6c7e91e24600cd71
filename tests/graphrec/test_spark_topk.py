"""``graphrec.recommend --engine spark`` writes the in-process path's lists (local[2]).

Skipped with a message where pyspark or a Java runtime is missing.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'graphrec[spark]' to test --engine spark")
if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
    pytest.skip("no Java runtime (Java 17) for pyspark", allow_module_level=True)

from graphrec import recommend
from graphrec.serving.recommender import Recommender
from graphrec.serving.spark_topk import spark_recommend
from kg.spark.session import spark_session

pytestmark = pytest.mark.slow  # a JVM plus the demo model (shared with the other end-to-end tests)


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


def in_process(rec: Recommender, users: np.ndarray, k: int) -> pd.DataFrame:
    parts = []
    for block, items, scores in rec.iter_topk(users, k, batch_size=64):
        for user, row, score in zip(block, items, scores):
            keep = row >= 0
            parts.append(pd.DataFrame({"user": rec.user_ids[user], "item": rec.item_ids[row[keep]],
                                       "rank": np.arange(1, keep.sum() + 1, dtype=np.int32), "score": score[keep]}))
    return pd.concat(parts, ignore_index=True)


def same_lists(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    got = got.sort_values(["user", "rank"]).reset_index(drop=True)
    expected = expected.sort_values(["user", "rank"]).reset_index(drop=True)
    assert got["user"].tolist() == expected["user"].tolist()
    assert got["item"].tolist() == expected["item"].tolist()
    assert got["rank"].tolist() == expected["rank"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(np.float64), expected["score"].to_numpy(np.float64), rtol=1e-5, atol=1e-6)


def test_spark_topk_equals_in_process_lists(spark, demo_model, tmp_path):
    base, _ = demo_model
    rec = Recommender.load(base / "model", device="cpu")
    users = np.arange(len(rec.user_ids), dtype=np.int64)
    out = tmp_path / "topk"
    rows = spark_recommend(base / "model", out, users=None, num_users=len(users), k=10, batch_size=32,
                           partitions=3, spark=spark)
    got = pd.read_parquet(out)
    assert rows == len(got)
    assert list(got.columns) == ["user", "item", "rank", "score"]
    assert len(list(out.glob("part-*.parquet"))) >= 2  # one part file per user block
    same_lists(in_process(rec, users, 10), got)


def test_cli_engine_spark_with_a_user_list(spark, demo_model, tmp_path, capsys):
    base, _ = demo_model
    rec = Recommender.load(base / "model", device="cpu")
    chosen = list(rec.user_ids[[5, 0, 3]])
    listing = tmp_path / "users.txt"
    listing.write_text("user\n" + "\n".join(chosen) + "\n")
    out = tmp_path / "topk"
    code = recommend.main(["--model", str(base / "model"), "--out", str(out), "--users", str(listing), "--k", "5",
                           "--engine", "spark", "--spark-master", "local[2]"])
    assert code == 0, capsys.readouterr().err
    expected = in_process(rec, np.array([5, 0, 3], dtype=np.int64), 5)
    same_lists(expected, pd.read_parquet(out))
    assert recommend.main(["--model", str(base / "model"), "--out", str(out), "--engine", "spark"]) == 2
    assert "exists" in capsys.readouterr().err


def test_cli_engine_spark_unknown_cold_equals_in_process(spark, demo_model, tmp_path, capsys):
    base, _ = demo_model
    rec = Recommender.load(base / "model", device="cpu")
    chosen = [rec.user_ids[4], "ghost-1", rec.user_ids[1], "ghost-2", "ghost-1"]
    listing = tmp_path / "users.txt"
    listing.write_text("user\n" + "\n".join(chosen) + "\n")
    common = ["--model", str(base / "model"), "--users", str(listing), "--k", "6", "--quiet"]
    assert recommend.main([*common, "--out", str(tmp_path / "spark"), "--engine", "spark"]) == 2
    assert "--unknown cold" in capsys.readouterr().err  # unknown ids still fail without --unknown cold
    code = recommend.main([*common, "--unknown", "cold", "--out", str(tmp_path / "local.parquet")])
    assert code == 0, capsys.readouterr().err
    code = recommend.main([*common, "--unknown", "cold", "--out", str(tmp_path / "spark"), "--engine", "spark",
                           "--spark-master", "local[2]", "--partitions", "2"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    expected, got = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "spark")
    assert set(got["user"]) == {rec.user_ids[4], rec.user_ids[1], "ghost-1", "ghost-2"}
    assert (got.groupby("user").size() == 6).all()
    same_lists(expected, got)
    ghosts = got[got["user"] == "ghost-1"]["item"].tolist()
    assert ghosts == got[got["user"] == "ghost-2"]["item"].tolist()  # one popularity list for every unknown id


def test_spark_topk_of_a_user_sample_model_equals_in_process(spark, sampled_demo_model, tmp_path):
    base, _ = sampled_demo_model
    rec = Recommender.load(base / "model", device="cpu")
    users = np.arange(len(rec.user_ids), dtype=np.int64)
    out = tmp_path / "topk"
    spark_recommend(base / "model", out, users=None, num_users=len(users), k=8, batch_size=32, partitions=2,
                    spark=spark)  # fmt: skip
    same_lists(in_process(rec, users, 8), pd.read_parquet(out))
