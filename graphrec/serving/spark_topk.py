"""``graphrec.recommend --engine spark``: batch top-K on Spark executors.

Users are split into contiguous blocks (``spark.range`` partitions); each
executor's Python worker loads the model once (:meth:`Recommender.load` from the
model directory, which every executor must be able to read: local mode, or a
shared filesystem on a cluster) and scores its blocks with the in-process path
(:meth:`Recommender.iter_topk`), so the lists are the in-process ones by
construction, whatever the sources (ALS/GNN factors, item-KNN, EASE, the hybrid
ranker). The item-side parts thus travel to the executors once per worker
through the filesystem, not with every task. Rows come back as Arrow batches
and Spark writes them as Parquet part files under ``--out`` with the columns of
:data:`graphrec.serving.topk_writer.SCHEMA` (``user, item, rank, score``).

Users the model never saw (``--unknown cold``) all get the one list
:meth:`Recommender.recommend_new_user` gives a user with no items, as in process:
the driver computes it once, and the executors repeat it for each such user id.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["SPARK_SCHEMA", "spark_recommend", "topk_rows"]

SPARK_SCHEMA = "user string, item string, rank int, score float"
_LOADED: dict[str, Any] = {}  # one Recommender per model path per Python worker


def topk_rows(users: np.ndarray, items: np.ndarray, scores: np.ndarray, *, user_ids: np.ndarray, item_ids: np.ndarray):
    """One :func:`eval.ranking.iter_topk` batch as an Arrow table of ``user, item, rank, score`` rows.

    Shapes:
        ``users`` ``[B]`` internal indices; ``items`` / ``scores`` ``[B, k]`` (``-1`` / ``-inf`` padding at the end).
    """
    import pyarrow as pa

    from graphrec.serving.topk_writer import SCHEMA

    listed = np.asarray(items) >= 0
    counts = listed.sum(axis=1)
    ranks = np.tile(np.arange(1, items.shape[1] + 1, dtype=np.int32), (len(users), 1))
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(user_ids)[np.repeat(np.asarray(users), counts)], type=pa.string()),
            pa.array(np.asarray(item_ids)[items[listed]], type=pa.string()),
            pa.array(ranks[listed], type=pa.int32()),
            pa.array(np.asarray(scores)[listed].astype(np.float32), type=pa.float32()),
        ],
        schema=SCHEMA,
    )


def _scorer(model: str, k: int, batch_size: int, options: dict):
    def run(batches):
        from graphrec.serving.recommender import Recommender

        recommender = _LOADED.get(model)
        if recommender is None:
            recommender = _LOADED[model] = Recommender.load(model, device="cpu")
        for batch in batches:
            users = batch.column(0).to_numpy().astype(np.int64)
            if len(users) == 0:
                continue
            for block, items, scores in recommender.iter_topk(users, k, batch_size=batch_size, **options):
                table = topk_rows(block, items, scores, user_ids=recommender.user_ids, item_ids=recommender.item_ids)
                yield from table.to_batches()

    return run


def _cold_scorer(items: np.ndarray, scores: np.ndarray):
    """Rows of the one cold-start list (item ids ``[k']``, scores ``[k']``) for each user id of the batches."""

    def run(batches):
        import pyarrow as pa

        from graphrec.serving.topk_writer import SCHEMA

        width = len(items)
        for batch in batches:
            ids = batch.column(0).to_numpy(zero_copy_only=False)
            if not len(ids) or not width:
                continue
            table = pa.Table.from_arrays(
                [
                    pa.array(np.repeat(ids.astype(object), width), type=pa.string()),
                    pa.array(np.tile(np.asarray(items, dtype=object), len(ids)), type=pa.string()),
                    pa.array(np.tile(np.arange(1, width + 1, dtype=np.int32), len(ids)), type=pa.int32()),
                    pa.array(np.tile(np.asarray(scores, dtype=np.float32), len(ids)), type=pa.float32()),
                ],
                schema=SCHEMA,
            )
            yield from table.to_batches()

    return run


def spark_recommend(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    users: np.ndarray | None,
    num_users: int,
    k: int,
    batch_size: int = 256,
    options: dict | None = None,
    master: str | None = None,
    partitions: int | None = None,
    spark: Any = None,
    cold: tuple[list[str], np.ndarray, np.ndarray] | None = None,
) -> int:
    """Score every user (or ``users``) on Spark and write Parquet part files under ``out``.

    Args:
        model: model directory (``python -m graphrec.train``), readable by every executor.
        out: output directory (must not exist); any path Spark can write (local, HDFS, S3).
        users: internal user indices to score, or ``None`` for all ``num_users``.
        num_users: users of the model.
        k: items per user.
        batch_size: users per scoring batch inside a task.
        options: :meth:`Recommender.iter_topk` keywords (``filter_seen``, ``exclude``, ``diversity``).
        master: Spark master URL (``None``: spark-submit's, else ``local[*]``).
        partitions: user blocks (default: the session's default parallelism).
        spark: an existing session (tests).
        cold: ``(user ids, item ids [k'], scores [k'])``: users the model does not know and
            the one list they all get (``recommend_new_user([])`` on the driver), or ``None``.

    Returns:
        Rows written.
    """
    import pyarrow as pa

    if spark is None:
        from kg.spark.session import spark_session

        spark = spark_session(master)
    partitions = partitions or spark.sparkContext.defaultParallelism
    if users is None:
        frame = spark.range(0, num_users, numPartitions=max(1, min(partitions, num_users))).toDF("user")
    else:
        frame = spark.createDataFrame(pa.table({"user": pa.array(np.asarray(users, np.int64))}))
        frame = frame.repartitionByRange(max(1, min(partitions, len(users))), "user")
    scored = frame.mapInArrow(_scorer(os.path.abspath(os.fspath(model)), k, batch_size, dict(options or {})), SPARK_SCHEMA)
    if cold is not None and len(cold[0]):
        ids, items, scores = cold
        unknown = spark.createDataFrame(pa.table({"user": pa.array([str(i) for i in ids], type=pa.string())}))
        unknown = unknown.repartition(max(1, min(partitions, len(ids))))
        lists = unknown.mapInArrow(_cold_scorer(np.asarray(items), np.asarray(scores)), SPARK_SCHEMA)
        scored = scored.unionByName(lists)
    scored.write.mode("errorifexists").parquet(os.fspath(out))
    return spark.read.parquet(os.fspath(out)).count()
