"""Which batch top-K path a model takes, and the drivers that run it on every core.

Two paths are faster than ranking :meth:`Recommender.score_users` batch by batch:

* a model of one ALS or GNN source and no ranker scores by ``user . item``: a
  :class:`~graphrec.serving.dot_scorer.DotScorer` per thread (bench/serving_throughput.py);
* a model with the hybrid ranker ranks each user's candidates only (bench/hybrid_topk.py).

Both give each worker thread whole batches with one torch thread each, which beats
threading one matmul (:mod:`graphrec.serving.topk_workers`), and restore torch's
thread count afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.serving.dot_scorer import DotScorer
from graphrec.serving.topk_workers import iter_topk_parallel, map_batches_parallel
from training.sources.names import Source

__all__ = ["dot_model", "parallel_dot_topk", "parallel_hybrid_topk"]

Batches = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]


def dot_model(model) -> Optional[DotScorer]:
    """Without a ranker, a model of one ALS or GNN source (MostPop aside) scores by ``user . item``; else ``None``."""
    learners = [name for name in model.sources if name != Source.POP]
    if model.ranker is not None or len(learners) != 1 or learners[0] not in (Source.ALS, Source.GNN):
        return None
    source = model.sources[learners[0]]
    return DotScorer(source.user_embeddings(), source.item_embeddings())


@contextmanager
def _one_torch_thread() -> Iterator[int]:
    """Run the block with one torch thread; yields the thread count before (the number of workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def parallel_dot_topk(
    dot: DotScorer, users: np.ndarray, k: int, seen: Optional[sp.csr_matrix], batch_size: int, show_progress: bool
) -> Batches:
    """Top-``k`` by ``user . item`` with ``seen`` masked, whole batches on one thread per core."""
    with _one_torch_thread() as workers:
        yield from iter_topk_parallel(
            dot.fork, users, k, exclude=seen, batch_size=batch_size, workers=workers, show_progress=show_progress
        )


def parallel_hybrid_topk(ranker, users: np.ndarray, k: int, batch_size: int, show_progress: bool) -> Batches:
    """The hybrid's top-``k`` over each user's candidates, whole batches on one thread per core.

    History items are never candidates, so the lists equal ranking ``score_users`` with
    the history masked, with or without ``filter_seen``.
    """

    def rank(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        items, scores = ranker.topk(batch, k)
        return batch, items, scores

    users = np.asarray(users, dtype=np.int64)
    with _one_torch_thread() as workers:
        yield from map_batches_parallel(rank, users, batch_size=batch_size, workers=workers, show_progress=show_progress)
