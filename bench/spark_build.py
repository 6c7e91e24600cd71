"""The Spark build next to the default build on one synthetic log: wall time and parity.

    python bench/spark_build.py --events 1000000 --master 'local[2]'

Generates the log (``graphrec.datasets``, interactions only, as Parquet in a
temporary directory), builds it with :func:`kg.build.build_graph` and with
:func:`kg.spark.build.build_graph_spark`, prints a table of wall seconds and
whether the id maps, pairs and splits are identical. A first measurement, not
the issue-14 scale bench (bench/scale_spark.py: 10M-100M events, peak memory per
stage, bench/results/scale_spark.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from graphrec.datasets.synthetic import SyntheticConfig, generate
from kg.build import build_graph
from kg.config import BuildConfig
from kg.spark.build import build_graph_spark
from kg.spark.session import spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    args = parser.parse_args()
    users = max(1, args.events * 3 // 100)
    log = generate(SyntheticConfig(num_users=users, num_items=max(12, users // 2), num_interactions=args.events)).interactions
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        log.drop(columns="event").to_parquet(path, index=False)
        config = BuildConfig(interactions=str(path))
        started = time.perf_counter()
        default = build_graph(config)
        default_s = time.perf_counter() - started
        spark = spark_session(args.master, conf={"spark.sql.shuffle.partitions": str(args.shuffle_partitions),
                                                    "spark.driver.memory": "4g"})
        started = time.perf_counter()
        built = build_graph_spark(config, spark=spark)
        spark_s = time.perf_counter() - started
    same = all(
        np.array_equal(default.interactions[c].to_numpy(), built.interactions[c].to_numpy(), equal_nan=True)
        for c in default.interactions.columns
    ) and default.users.equals(built.users) and default.items.equals(built.items)
    print(f"| events | pairs | default build s | spark build s ({args.master}) | identical |")
    print("|---|---|---|---|---|")
    print(f"| {args.events:,} | {len(default.interactions):,} | {default_s:.1f} | {spark_s:.1f} | {same} |")


if __name__ == "__main__":
    main()
