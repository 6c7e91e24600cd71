"""``graphrec.build --engine spark``: :func:`kg.build.build_graph`'s artifact, built with Spark.

What runs where (docs/SCALE.md has the plan for larger logs):

* executors: reading and validating every event (:mod:`kg.spark.events`), the
  distinct ids, their sort into indices, the join of events to indices, the
  deduplication into weighted pairs and the per-user split;
* driver: the id vocabularies and the deduplicated pairs (one row per distinct
  (user, item) pair, about 25 bytes each), which the existing artifact writer
  (:meth:`kg.graph.Graph.save`) turns into the same manifest, Parquet tables and
  checksums as the default engine.

Parity with the default engine, by construction:

* ids: the distinct ids (found on the executors) are sorted on the driver by
  :func:`kg.ids.external_order` itself (numeric order when every id of the kind
  is an integer, ties by spelling; code point order otherwise): index = rank in
  that order, never a Spark-generated id;
* pairs: count = events, weight = float64 sum of the float32 per-event weights,
  timestamp = the latest event;
* splits: :mod:`kg.split` draws ``default_rng(seed).random(n_pairs)`` over the
  pairs in (user, item) order, one key per pair. PCG64 can jump ahead, so a
  partition holding the users ``[a, b)`` (range-partitioned, sorted by (user,
  item)) draws exactly the keys of its global positions: the driver only needs
  the pair count per user (one int64 per user) to know where each partition
  starts. Validation draws ``default_rng(seed + 1)`` over the train pairs the
  same way.

Not supported here yet (a clear error; use the default engine): item/user side
tables, KG, link and social files, and the count / k-core filters.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kg.attributes import ColumnRoles
from kg.build import _meta, resolve_inputs
from kg.config import BuildConfig
from kg.edges import Pairs
from kg.errors import InputError, Rejections
from kg.filters import filter_nodes
from kg.graph import SPLIT_CODES, Graph
from kg.ids import external_order
from kg.interactions import resolve_roles
from kg.readers import open_table
from kg.spark.events import SparkLog, read_log
from kg.split import held_out
from kg.summary import degenerate_warnings, summarize
from kg.tables import knowledge_tables, string_column

__all__ = ["build_graph_spark"]

TRAIN, VALID, TEST = SPLIT_CODES["train"], SPLIT_CODES["valid"], SPLIT_CODES["test"]
_UNSUPPORTED = ("items", "users", "kg", "link", "social")


def build_graph_spark(config: BuildConfig, *, master: str | None = None, spark: Any = None) -> Graph:
    """Build the graph the config describes on Spark (see the module docstring).

    Args:
        config: what to read and how (see :class:`kg.BuildConfig`).
        master: Spark master URL (``None``: the session ``spark-submit`` made, else ``local[*]``).
        spark: an existing SparkSession (tests), instead of ``master``.

    Returns:
        A graph equal to :func:`kg.build.build_graph`'s for the same config (ids,
        pairs, splits), with ``meta["engine"] = "spark"``.

    Raises:
        InputError: bad input (as the default engine; strict mode names an example value).
        ValueError: settings this engine does not support yet, or an unusable configuration.
        kg.spark.session.SparkUnavailable: pyspark or Java missing.
    """
    started = time.perf_counter()
    config, siblings = resolve_inputs(config)
    given = [f"--{name}" for name in _UNSUPPORTED if getattr(config, name) is not None]
    if given or config.min_user_count or config.min_item_count or config.k_core:
        what = ", ".join(given + [f"--{n.replace('_', '-')}" for n in ("min_user_count", "min_item_count", "k_core")
                                  if getattr(config, n)])
        raise ValueError(f"--engine spark does not support {what} yet; build with the default engine (docs/SCALE.md)")
    if spark is None:
        from kg.spark.session import spark_session

        spark = spark_session(master)
    rejections = Rejections(lenient=config.lenient, max_examples=config.max_examples)
    explicit = {
        "user": config.user_column, "item": config.item_column, "timestamp": config.timestamp_column,
        "event": config.event_column, "weight": config.weight_column,
    }
    logs: dict[str, SparkLog] = {}
    notes: dict[str, Any] = {}
    for role in ("interactions", "test"):
        path = getattr(config, role)
        if path is None:
            continue
        source = open_table(path, rejections=rejections, format=config.format, delimiter=config.delimiter,
                            header=config.header, columns=config.columns, encoding=config.encoding)
        roles, detected = resolve_roles(source, explicit)
        logs[role] = read_log(spark, source, roles=roles, detected=detected, config=config, rejections=rejections)
        notes[os.fspath(path)] = source.notes
    method = config.split_method
    if method == "temporal" and not logs["interactions"].has_timestamp:
        raise ValueError(
            f"the temporal split needs a timestamp column; {config.interactions} has none "
            f"(its columns map to {logs['interactions'].roles}); pass --timestamp-column"
        )

    user_ids, user_index = _index_ids(spark, [log.events.select("user") for log in logs.values()], "user")
    item_ids, item_index = _index_ids(spark, [log.events.select("item") for log in logs.values()], "item")
    parts = {role: _dedup(log.events, user_index, item_index) for role, log in logs.items()}
    if method == "given":
        pairs, overlap = _merge_given(parts["interactions"], parts["test"])
    else:
        pairs, overlap = parts["interactions"].withColumn("is_test", _false()), 0
    table = _split(spark, pairs, num_users=len(user_ids), num_items=len(item_ids), method=method, config=config)
    for log in logs.values():
        log.events.unpersist()
    if table.num_rows == 0:
        refused = "; ".join(f"{path}: {reasons}" for path, reasons in rejections.report().items())
        raise InputError(
            f"no interaction left to build a graph from: every row was refused ({refused or 'none kept'}); "
            "expected at least one valid (user, item) row", path=config.interactions,
        )
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    pairs_np = Pairs(columns["user"].astype(np.int32), columns["item"].astype(np.int32),
                     columns["weight"].astype(np.float32), columns["count"].astype(np.int32),
                     columns["timestamp"].astype(np.float64))
    if method == "temporal" and not np.isfinite(pairs_np.timestamp).all():
        raise ValueError("the temporal split needs a timestamp on every interaction; the log has none (or some missing)")
    split = columns["split"].astype(np.int8)
    if not (split == TRAIN).any():
        why = (f"every pair of {config.interactions} is also in the test file {config.test}" if method == "given" and overlap
               else f"the {method} split put every pair in validation or test")
        raise InputError(f"no training pairs: {why}", path=config.test if method == "given" else config.interactions)
    _, _, filter_report = filter_nodes(pairs_np, num_users=len(user_ids), num_items=len(item_ids),
                                       min_user_count=0, min_item_count=0, k_core=0)

    entities, relations, triples = knowledge_tables([], None)
    interactions = pd.DataFrame({"user": pairs_np.user, "item": pairs_np.item, "weight": pairs_np.weight,
                                 "count": pairs_np.count, "timestamp": pairs_np.timestamp, "split": split})
    empty_roles = ColumnRoles(roles={})
    meta = _meta(config, siblings=siblings, logs=logs, roles={"item": empty_roles, "user": empty_roles}, notes=notes,
                 method=method, overlap=overlap, filter_report=filter_report, rejections=rejections, buckets={},
                 kg_report={}, social_report={})
    meta["engine"] = {"name": "spark", "master": spark.sparkContext.master, "spark": spark.version}
    graph = Graph(interactions=interactions, items=pd.DataFrame({"item_id": string_column(item_ids)}),
                  users=pd.DataFrame({"user_id": string_column(user_ids)}), entities=entities,
                  relations=relations, triples=triples, social=None, meta=meta)
    graph.meta["summary"] = summarize(graph)
    graph.meta["warnings"] = degenerate_warnings(graph)
    graph.meta["build_seconds"] = round(time.perf_counter() - started, 3)
    return graph


def _false():
    from pyspark.sql import functions as F

    return F.lit(False)


def _index_ids(spark: Any, frames: list, kind: str) -> tuple[pa.Array, Any]:
    """``(ids by index, DataFrame (kind, kind_index))``: the distinct ids, indexed by kg.ids' own rule.

    The distinct ids are found on the executors and collected (the artifact's node
    table holds them anyway); :func:`kg.ids.external_order` sorts them on the driver,
    so the indices are the default engine's by construction (a dense rank over the
    sorted unique ids), and the (id, index) table goes back to the executors for the join.
    """
    ids = frames[0].toDF(kind)
    for frame in frames[1:]:
        ids = ids.union(frame.toDF(kind))
    distinct = ids.distinct().toArrow().column(kind).combine_chunks().cast(pa.string())
    vocab = distinct.take(pa.array(external_order(distinct)))
    table = pa.table({kind: vocab, f"{kind}_index": pa.array(np.arange(len(vocab), dtype=np.int32))})
    return vocab, spark.createDataFrame(table)


def _dedup(events: Any, user_index: Any, item_index: Any) -> Any:
    """Distinct (user, item) index pairs: count, float64 sum of weights (stored float32), latest time."""
    from pyspark.sql import functions as F

    joined = events.join(user_index, "user").join(item_index, "item")
    return joined.groupBy(F.col("user_index").alias("user"), F.col("item_index").alias("item")).agg(
        F.sum(F.col("weight").cast("double")).cast("float").alias("weight"),
        F.count(F.lit(1)).cast("int").alias("count"),
        F.max("timestamp").alias("timestamp"),
    )


def _merge_given(train: Any, test: Any) -> tuple[Any, int]:
    """Train and test pairs joined; a pair in both files stays in test only (kg.split.merge_given)."""
    from pyspark.sql import functions as F

    test = test.withColumn("is_test", F.lit(True))
    both = train.join(test.select("user", "item"), ["user", "item"], "left_semi")
    overlap = both.count()
    kept = train.join(test.select("user", "item"), ["user", "item"], "left_anti").withColumn("is_test", F.lit(False))
    return kept.unionByName(test), int(overlap)


def _generator(seed: int, start: int) -> np.random.Generator:
    """``default_rng(seed)`` moved ``start`` draws ahead: its ``random(k)`` are draws ``start..start+k``."""
    bits = np.random.PCG64(np.random.SeedSequence(seed))
    bits.advance(int(start))
    return np.random.Generator(bits)


def _collect(spark: Any, frame: Any) -> pa.Table:
    """``frame``'s rows on the driver's Python, in partition order.

    With a local master the executors write Parquet part files into a temporary
    directory that pyarrow reads back, so the rows never sit in the JVM driver's heap:
    ``toArrow()`` holds every partition's result there at once (and counts it against
    ``spark.driver.maxResultSize``, 1g by default). At 100M events (85M pairs, about
    2 GB) that JVM grew past 9 GB and was OOM-killed on a 24 GiB machine
    (bench/scale_spark.py). Other masters keep ``toArrow()``: executors need not
    share a filesystem with the driver there.
    """
    if not spark.sparkContext.master.startswith("local"):
        return frame.toArrow()
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="graphrec-spark-") as tmp:
        out = os.path.join(tmp, "rows")
        frame.write.parquet(out)
        # part-00000-..., part-00001-...: one file per partition, named in partition order.
        files = sorted(glob.glob(os.path.join(out, "part-*.parquet")))
        if not files:
            return frame.limit(0).toArrow()
        return pa.concat_tables([pq.read_table(f) for f in files])


def _split(spark: Any, pairs: Any, *, num_users: int, num_items: int, method: str, config: BuildConfig) -> pa.Table:
    """Split code per pair, computed per range of users on the executors; the pairs come back sorted by (user, item)."""
    from pyspark.sql import functions as F

    pairs = pairs.persist()
    per_user = pairs.groupBy("user").agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("is_test").cast("long")).alias("t"))
    counts = per_user.toArrow()
    n_all = np.zeros(num_users, np.int64)
    n_test = np.zeros(num_users, np.int64)
    n_all[counts.column("user").to_numpy()] = counts.column("n").to_numpy()
    n_test[counts.column("user").to_numpy()] = counts.column("t").to_numpy()
    if method == "random" or method == "temporal":  # kg.split: the first ceil(train_fraction * n_u) by key stay in train
        n_train = np.ceil(config.train_fraction * n_all.astype(np.float64)).astype(np.int64)
    else:
        n_train = n_all - n_test
    starts = spark.sparkContext.broadcast((np.concatenate([[0], np.cumsum(n_all)[:-1]]),
                                           np.concatenate([[0], np.cumsum(n_train)[:-1]])))
    seed, train_fraction, valid_fraction = config.seed, config.train_fraction, config.valid_fraction

    def split_users(batches):
        tables = [pa.Table.from_batches([b]) for b in batches if b.num_rows]
        if not tables:
            return
        part = pa.concat_tables(tables).sort_by([("user", "ascending"), ("item", "ascending")])
        user, item = part.column("user").to_numpy(), part.column("item").to_numpy()
        timestamp = part.column("timestamp").to_numpy()
        all_start, train_start = starts.value
        n = len(user)
        split = np.full(n, TRAIN, np.int8)
        if method == "random":
            split[held_out(user, _generator(seed, all_start[user[0]]).random(n), train_fraction)] = TEST
        elif method == "temporal":
            split[held_out(user, timestamp, train_fraction, tie=item)] = TEST
        else:
            split[part.column("is_test").to_numpy(zero_copy_only=False)] = TEST
        if valid_fraction > 0:
            rows = np.flatnonzero(split == TRAIN)
            if method == "temporal":
                valid = held_out(user[rows], timestamp[rows], 1.0 - valid_fraction, tie=item[rows])
            else:
                keys = _generator(seed + 1, train_start[user[0]]).random(len(rows))
                valid = held_out(user[rows], keys, 1.0 - valid_fraction)
            split[rows[valid]] = VALID
        yield from part.drop_columns(["is_test"]).append_column("split", pa.array(split)).to_batches()

    schema = "user int, item int, weight float, count int, timestamp double, split byte"
    # Range partitions: each holds whole users, a contiguous run of the global (user, item) order.
    ranged = pairs.select("user", "item", "weight", "count", "timestamp", "is_test").repartitionByRange("user")
    # Range partitions come back in user order, each sorted: no global sort needed (checked below).
    table = _collect(spark, ranged.mapInArrow(split_users, schema))
    key = table.column("user").to_numpy().astype(np.int64) * max(num_items, 1) + table.column("item").to_numpy()
    if len(key) > 1 and not (np.diff(key) > 0).all():
        table = table.take(pa.array(np.argsort(key, kind="stable")))
    pairs.unpersist()
    starts.unpersist()
    return table
