"""Serving a trained model: what answers a request or writes top-K lists, given a model artifact.

``graphrec.recommend`` (the verb) and the Python API (``graphrec.Recommender``) run on
this package; training never imports it. One file per idea:

* :mod:`~graphrec.serving.recommender`: :class:`Recommender`, the facade: top-K for known
  and new users, similar items, explanations, items added after training.
* :mod:`~graphrec.serving.filters`: ``k``, ``exclude`` and ``candidates`` checked and applied
  as score masks, seen items padded to the catalogue.
* :mod:`~graphrec.serving.coldstart`: new items placed from their content, new users from
  their attributes.
* :mod:`~graphrec.serving.batch_topk`: which batch top-K path a model takes (one factor
  model's dot product, the hybrid's candidates) and the drivers running it on every core,
  over :mod:`~graphrec.serving.topk_workers` and :mod:`~graphrec.serving.dot_scorer`.
* :mod:`~graphrec.serving.diversity`: MMR re-ranking and intra-list diversity.
* :mod:`~graphrec.serving.topk_writer` and :mod:`~graphrec.serving.spark_topk`: the lists
  streamed to Parquet/CSV/JSON lines, in process or on Spark executors.

The model artifact these read is not here but in :mod:`graphrec.artifacts`, because
training writes it and evaluation reads it without serving anything.
"""
