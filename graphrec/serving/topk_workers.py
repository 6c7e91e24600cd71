"""Top-K for many users on several CPU threads, in order, memory-bounded.

:func:`eval.ranking.iter_topk` ranks one batch at a time and leaves parallelism to
torch's intra-op threads. On CPUs, ``torch.topk`` and a thin ``[B, d] x [d, n]``
matmul gain little from intra-op threads; giving each thread whole batches instead
(what implicit does in its ``recommend``) keeps every core busy. :func:`iter_topk_parallel`
runs ``iter_topk`` on batches in a small thread pool (torch releases the GIL in its
kernels), at most ``2 * workers`` batches in flight, and yields the results in user
order, exactly as ``iter_topk`` would.

Each worker thread gets its own scorer from ``make_scorer`` (a scorer such as
:class:`graphrec.serving.dot_scorer.DotScorer` reuses an output buffer, so it must not be
shared). For the best throughput set ``torch.set_num_threads(1)`` and ``workers`` to
the number of cores; this module does not change torch's global settings.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Optional

import numpy as np
import scipy.sparse as sp

from eval.checks import positive_int
from eval.progress import progress_bar
from eval.ranking import Scorer, as_user_array, iter_topk

__all__ = ["iter_topk_parallel", "map_batches_parallel"]


def iter_topk_parallel(
    make_scorer: Callable[[], Scorer],
    users,
    k: int,
    *,
    exclude: Optional[sp.csr_matrix] = None,
    batch_size: int = 512,
    workers: int = 2,
    show_progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`eval.ranking.iter_topk` with batches ranked on ``workers`` threads.

    Args:
        make_scorer: called once per worker thread; returns that thread's scorer
            ``scorer(users int64 [B]) -> [B, num_items]``.
        users: internal user indices ``[n]``, in output order.
        k: list length, >= 1.
        exclude: users x items CSR of items never to recommend (as in ``iter_topk``).
        batch_size: users per batch.
        workers: threads; 1 runs ``iter_topk`` in the calling thread.
        show_progress: tqdm progress bar over users.

    Yields:
        ``(users_batch int64 [B], items int64 [B, k], scores float32 [B, k])`` in
        the order of ``users``, identical to what ``iter_topk`` yields.

    Raises:
        ValueError, TypeError: as ``iter_topk`` (bad arguments, or a scorer's bad
            output, raised when that batch is reached).
    """
    k = positive_int(k, "k")
    batch_size = positive_int(batch_size, "batch_size")
    workers = positive_int(workers, "workers")
    if exclude is not None:
        if not sp.issparse(exclude):
            raise TypeError(f"exclude must be a scipy sparse users x items matrix, got {type(exclude).__name__}")
        exclude = sp.csr_matrix(exclude)
    users = as_user_array(users, num_users=None if exclude is None else exclude.shape[0])
    if workers == 1:
        yield from iter_topk(
            make_scorer(), users, k, exclude=exclude, batch_size=batch_size, show_progress=show_progress
        )
        return

    local = threading.local()

    def rank(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scorer = getattr(local, "scorer", None)
        if scorer is None:
            scorer = local.scorer = make_scorer()
        return next(iter_topk(scorer, batch, k, exclude=exclude, batch_size=len(batch)))

    yield from map_batches_parallel(rank, users, batch_size=batch_size, workers=workers, show_progress=show_progress)


def map_batches_parallel(
    rank: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    users: np.ndarray,
    *,
    batch_size: int,
    workers: int,
    show_progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``rank(batch)`` for consecutive batches of ``users`` on ``workers`` threads, yielded in user order.

    At most ``2 * workers`` batches are in flight, so memory stays bounded. ``rank``
    must be safe to call from several threads at once and return a tuple whose first
    element is the batch (its length drives the progress bar).
    """
    batch_size = positive_int(batch_size, "batch_size")
    workers = positive_int(workers, "workers")
    starts = iter(range(0, len(users), batch_size))
    pending: deque[Future] = deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graphrec-topk")
    try:
        with progress_bar(total=len(users), unit="user", desc="top-k", disable=not show_progress) as bar:
            while True:
                while len(pending) < 2 * workers:
                    start = next(starts, None)
                    if start is None:
                        break
                    pending.append(executor.submit(rank, users[start : start + batch_size]))
                if not pending:
                    break
                result = pending.popleft().result()
                bar.update(len(result[0]))
                yield result
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)
