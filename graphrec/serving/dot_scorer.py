"""A fast inner-product scorer for serving factor models through :func:`eval.ranking.iter_topk`.

``user_vectors[users] @ item_vectors.T`` allocates a fresh ``[B, n_items]`` block per
batch; for 50k items and 1024 users that is 200 MB, which the allocator maps and the
kernel zeroes page by page on every call. :class:`DotScorer` instead writes each batch
into one reused output buffer (``torch.mm(..., out=)``) against a contiguous
``[d, n_items]`` copy of the item vectors, and slices (rather than gathers) the user
rows when the batch is a contiguous range, as it is when ranking all users in order.
On a 2-CPU machine this is the difference between being slower and being faster than
implicit's batched ``recommend`` (see ``bench/results/serving.md``).

The returned tensor is the buffer itself: it is valid until the next call. That is
what :func:`eval.ranking.iter_topk` expects (it never writes into, nor keeps, the
scorer's output); a caller that keeps scores must copy them. One scorer must not be
called from two threads at once.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

__all__ = ["DotScorer"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def _matrix(values: ArrayLike, name: str, device: Optional[torch.device]) -> torch.Tensor:
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be 2-d [n, d], got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {tensor.dtype}")
    return tensor.to(device=device if device is not None else tensor.device, dtype=torch.float32)


class DotScorer:
    """``scorer(users) -> user_vectors[users] @ item_vectors.T`` into a reused buffer.

    Args:
        user_vectors: ``[n_users, d]`` (numpy or torch; stored as float32).
        item_vectors: ``[n_items, d]``.
        device: where to score (default: the device of ``user_vectors``).

    Raises:
        ValueError: not 2-d, or the two widths ``d`` differ.
        TypeError: not floating point.
    """

    def __init__(
        self, user_vectors: ArrayLike, item_vectors: ArrayLike, *, device: Optional[Union[str, torch.device]] = None
    ) -> None:
        device = torch.device(device) if device is not None else None
        self.user_vectors = _matrix(user_vectors, "user_vectors", device).contiguous()
        items = _matrix(item_vectors, "item_vectors", self.user_vectors.device)
        if items.shape[1] != self.user_vectors.shape[1]:
            raise ValueError(
                f"user_vectors have {self.user_vectors.shape[1]} columns but item_vectors {items.shape[1]}"
            )
        self.items_t = items.T.contiguous()  # [d, n_items]: the layout GEMM streams best
        self._buffer: Optional[torch.Tensor] = None

    def fork(self) -> "DotScorer":
        """A scorer over the same vectors (shared, not copied) with its own output buffer.

        Use one per thread, e.g. ``iter_topk_parallel(scorer.fork, ...)``.
        """
        twin = DotScorer.__new__(DotScorer)
        twin.user_vectors, twin.items_t, twin._buffer = self.user_vectors, self.items_t, None
        return twin

    @property
    def num_items(self) -> int:
        return int(self.items_t.shape[1])

    def __call__(self, users: np.ndarray) -> torch.Tensor:
        """Scores ``[len(users), n_items]`` of the given internal user indices.

        Args:
            users: int indices into ``user_vectors``, ``[B]``.

        Returns:
            A view of the internal buffer, overwritten by the next call.

        Raises:
            IndexError: an index outside ``user_vectors``.
        """
        users = np.asarray(users, dtype=np.int64)
        n = len(users)
        if self._buffer is None or self._buffer.shape[0] < n:
            self._buffer = torch.empty((n, self.num_items), dtype=torch.float32, device=self.user_vectors.device)
        out = self._buffer[:n]
        if n == 0:
            return out
        first, last = int(users[0]), int(users[-1])
        n_users = self.user_vectors.shape[0]
        if last - first + 1 == n and 0 <= first and last < n_users and (n == 1 or (np.diff(users) == 1).all()):
            rows = self.user_vectors[first : last + 1]  # a view: no gather copy
        else:
            if users.min() < 0 or users.max() >= n_users:
                raise IndexError(f"user indices must lie in [0, {n_users}), got min {users.min()} max {users.max()}")
            rows = self.user_vectors[torch.as_tensor(users, device=self.user_vectors.device)]
        with torch.no_grad():
            torch.mm(rows, self.items_t, out=out)
        return out
