"""``--engine spark`` builds the same graph as the default engine (local[2]).

Skipped with a message where pyspark or a Java runtime is missing. One Spark
session serves the whole module (starting one costs seconds).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'graphrec[spark]' to test --engine spark")
if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
    pytest.skip("no Java runtime (Java 17) for pyspark", allow_module_level=True)

from graphrec.datasets.synthetic import SyntheticConfig, generate
from kg.build import build_graph
from kg.config import BuildConfig
from kg.errors import InputError
from kg.graph_io import load_graph
from kg.spark.build import build_graph_spark
from kg.spark.session import spark_session

pytestmark = pytest.mark.slow  # a JVM and a dozen Spark jobs per build: ~40 s on an idle 2-core machine

ML100K = Path("/work/shared/data/ml-100k/ml-100k.inter")


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    config = SyntheticConfig(num_users=120, num_items=90, num_interactions=1500, num_creators=10, num_series=4, seed=7)
    return generate(config).interactions


def assert_same_graph(default, spark) -> None:
    for column in ("user", "item", "weight", "count", "timestamp", "split"):
        want, got = default.interactions[column].to_numpy(), spark.interactions[column].to_numpy()
        assert want.dtype == got.dtype, column
        assert np.array_equal(want, got, equal_nan=want.dtype.kind == "f"), column
    assert default.users["user_id"].tolist() == spark.users["user_id"].tolist()
    assert default.items["item_id"].tolist() == spark.items["item_id"].tolist()
    for key in ("split", "events", "rejected", "interaction_columns"):
        assert default.meta[key] == spark.meta[key], key


def test_ml100k_csv_matches_default_build_and_round_trips(spark, tmp_path):
    if not ML100K.is_file():
        pytest.skip(f"{ML100K} is absent (the shared data folder); the synthetic tests still cover parity")
    log = pd.read_csv(ML100K, sep="\t")
    log.columns = [name.split(":")[0] for name in log.columns]
    path = tmp_path / "ml100k.csv"
    log.to_csv(path, index=False)
    config = BuildConfig(interactions=os.fspath(path))
    default, built = build_graph(config), build_graph_spark(config, spark=spark)
    assert_same_graph(default, built)
    assert built.meta["engine"]["name"] == "spark"
    built.save(tmp_path / "graph")
    loaded = load_graph(tmp_path / "graph")
    assert np.array_equal(loaded.interactions["split"].to_numpy(), default.interactions["split"].to_numpy())


def test_synthetic_parquet_temporal_split_matches(spark, synthetic, tmp_path):
    path = tmp_path / "log.parquet"
    synthetic.to_parquet(path, index=False)
    # "purchase" is not configured: those rows are refused as an unknown event type.
    config = BuildConfig(interactions=os.fspath(path), split="temporal", event_weights={"view": 1.0, "click": 2.5},
                         lenient=True)
    default = build_graph(config)
    assert default.meta["rejected"][os.fspath(path)] == {"unknown event type": 140}
    assert_same_graph(default, build_graph_spark(config, spark=spark))


def test_lenient_csv_with_bad_rows_random_split_matches(spark, synthetic, tmp_path):
    log = synthetic.drop(columns="event").astype({"timestamp": str})
    bad = pd.DataFrame({"user_id": ["", "u_bad", "u000001", "u000002"], "item_id": ["i00001", "", "i00002", "i00003"],
                        "timestamp": ["1700000000", "1700000000", "not a time", "2024-05-01T10:00:00Z"]})
    # The ids that only appear on refused rows must not become nodes.
    log = pd.concat([log.iloc[:700], bad, log.iloc[700:]], ignore_index=True)
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    config = BuildConfig(interactions=os.fspath(path), lenient=True, seed=11, valid_fraction=0.25)
    default, built = build_graph(config), build_graph_spark(config, spark=spark)
    assert default.meta["rejected"][os.fspath(path)] == {"missing user id": 1, "missing item id": 1,
                                                         "non-numeric timestamp": 1}
    assert_same_graph(default, built)


def test_given_split_matches(spark, synthetic, tmp_path):
    log = synthetic.drop(columns="event")
    test_rows = log.sample(frac=0.2, random_state=3)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    # Some test pairs also in train (kept in test only), some test-only users and items.
    log.to_json(train, orient="records", lines=True)
    pd.concat([test_rows, pd.DataFrame({"user_id": ["u_new"], "item_id": ["i_new"], "timestamp": [1700000000]})]).to_json(
        test, orient="records", lines=True)
    config = BuildConfig(interactions=os.fspath(train), test=os.fspath(test), split="given")
    default, built = build_graph(config), build_graph_spark(config, spark=spark)
    assert default.meta["split"]["given_pairs_removed_from_train"] > 0
    assert_same_graph(default, built)


def test_strict_bad_row_and_unsupported_settings_are_clear_errors(spark, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating\nu1,i1,5\nu2,i2,-1\n")
    with pytest.raises(InputError, match=r"weight below 0.*--lenient") as caught:
        build_graph_spark(BuildConfig(interactions=os.fspath(path)), spark=spark)
    assert "log.csv" in str(caught.value)
    with pytest.raises(ValueError, match="does not support --k-core"):
        build_graph_spark(BuildConfig(interactions=os.fspath(path), k_core=2), spark=spark)


def test_cli_engine_spark_builds_a_loadable_artifact(spark, tmp_path, capsys):
    from graphrec.build import main

    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating\n" + "".join(f"u{u},i{(u * 7 + j) % 13},{1 + j % 5}\n"
                                                          for u in range(30) for j in range(6)))
    out = tmp_path / "graph"
    code = main(["--interactions", str(path), "--out", str(out), "--engine", "spark", "--spark-master", "local[2]",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    default = build_graph(BuildConfig(interactions=os.fspath(path)))
    assert_same_graph(default, load_graph(out))
    assert main(["--interactions", str(path), "--out", str(tmp_path / "g2"), "--spark-master", "local[2]"]) == 2
    assert "--spark-master needs --engine spark" in capsys.readouterr().err


def test_cli_executor_error_is_one_line_exit_2(spark, tmp_path, capsys):
    from graphrec.build import main

    path = tmp_path / "log.jsonl"
    path.write_text('{"user_id": [1, 2], "item_id": "a"}\n{"user_id": [3], "item_id": "b"}\n')
    code = main(["--interactions", str(path), "--out", str(tmp_path / "graph"), "--engine", "spark",
                 "--spark-master", "local[2]", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the Spark job failed" in err and "user id" in err and "Traceback" not in err
