"""BPR training signal: positive pairs, uniform negative sampling, the loss."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

__all__ = ["NegativeSampler", "bpr_loss", "gathered_bpr_loss", "positive_pairs"]


def positive_pairs(user_items: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Every stored (user, item) entry of ``user_items`` as two int64 tensors ``[P]``."""
    users = np.repeat(np.arange(user_items.shape[0], dtype=np.int64), np.diff(user_items.indptr))
    return torch.from_numpy(users), torch.from_numpy(user_items.indices.astype(np.int64))


class NegativeSampler:
    """Uniform negative items that are, with high probability, not the user's positives.

    Candidates are drawn uniformly over the catalogue; those that hit one of the
    user's known items are redrawn, up to ``rounds`` times (a user who has seen
    almost everything keeps the last draw rather than looping forever).

    Args:
        user_items: ``[num_users, num_items]`` CSR of the known positives.
        num_negatives: negatives per positive pair.
        rounds: redraw rounds for candidates that hit a positive.
    """

    def __init__(self, user_items: sp.csr_matrix, num_negatives: int, *, rounds: int = 10) -> None:
        self.num_items = user_items.shape[1]
        self.num_negatives = num_negatives
        self.rounds = rounds
        users, items = positive_pairs(user_items)
        # Sorted (user, item) keys turn "is this pair a positive" into one searchsorted.
        self._keys = torch.sort(users * self.num_items + items).values

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean mask, same shape as ``items``, of pairs present in ``user_items``.

        Shapes:
            ``users``: ``[B]``; ``items``: ``[B, num_negatives]``.
        """
        if not len(self._keys):
            return torch.zeros(items.shape, dtype=torch.bool)
        keys = users.unsqueeze(1) * self.num_items + items
        found = torch.searchsorted(self._keys, keys).clamp_(max=len(self._keys) - 1)
        return self._keys[found] == keys

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negatives for each user of the batch.

        Args:
            users: int64 ``[B]`` (CPU).
            generator: the seeded CPU generator.

        Returns:
            int64 ``[B, num_negatives]`` item indices (CPU).
        """
        negatives = torch.randint(self.num_items, (len(users), self.num_negatives), generator=generator)
        rows = users.unsqueeze(1).expand_as(negatives)
        redo = self.is_positive(users, negatives).nonzero(as_tuple=True)
        for _ in range(self.rounds):
            if not len(redo[0]):
                break
            draws = torch.randint(self.num_items, (len(redo[0]),), generator=generator)
            negatives[redo] = draws
            still = self.is_positive(rows[redo], draws.unsqueeze(1)).squeeze(1)
            redo = (redo[0][still], redo[1][still])
        return negatives


def bpr_loss(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean Bayesian personalised ranking loss ``-log sigmoid(s(u, i) - s(u, j))``.

    Args:
        users: ``[B, d]`` user vectors.
        positives: ``[B, d]`` vectors of each user's positive item.
        negatives: ``[B, num_negatives, d]`` vectors of each pair's negatives.

    Returns:
        A scalar, averaged over the ``B * num_negatives`` (positive, negative) pairs.
    """
    positive_scores = (users * positives).sum(-1, keepdim=True)
    negative_scores = torch.einsum("bd,bnd->bn", users, negatives)
    return F.softplus(negative_scores - positive_scores).mean()


class _GatheredBPR(torch.autograd.Function):
    """:func:`bpr_loss` of rows gathered from one node matrix, with a hand-written backward.

    Autograd's version gathers the ``B (num_negatives + 2)`` rows, slices them into users,
    positives and negatives and back-propagates through each slice and the gather:
    a zero-filled copy of the batch per slice, a sorting ``index_put`` and a batched
    matrix product that is slow for one negative. The gradient of the mean softplus is simple enough
    to write down (``g = sigmoid(s_neg - s_pos) / (B num_negatives)``; ``dL/du = g (n - p)``,
    ``dL/dp = -g u``, ``dL/dn = g u``) and scatter with three ``index_add_``: on
    gowalla's 82k-pair batches it is most of a step's cost besides propagation.
    """

    @staticmethod
    def forward(ctx, nodes, users, positives, negatives):
        num_negatives = negatives.shape[1]
        user_vec = nodes[users]
        # n - p is all the backward needs of the items (dL/du = g (n - p)): one batch-sized
        # tensor saved instead of two, and one product for the margin instead of two.
        difference = nodes[negatives.reshape(-1)].view(len(users), num_negatives, -1)
        difference -= nodes[positives].unsqueeze(1)
        margin = (user_vec.unsqueeze(1) * difference).sum(-1)
        ctx.save_for_backward(users, positives, negatives, user_vec, difference, margin)
        ctx.num_nodes = nodes.shape[0]
        return torch.nn.functional.softplus(margin).mean()

    @staticmethod
    def backward(ctx, grad):
        users, positives, negatives, user_vec, difference, margin = ctx.saved_tensors
        size, num_negatives = margin.shape
        weight = torch.sigmoid(margin) * (grad / (size * num_negatives))  # [B, num_negatives]
        out = user_vec.new_zeros(ctx.num_nodes, user_vec.shape[1])
        out.index_add_(0, users, (weight.unsqueeze(-1) * difference).sum(1))
        weighted_user = weight.unsqueeze(-1) * user_vec.unsqueeze(1)  # [B, num_negatives, d]: dL/dn
        out.index_add_(0, negatives.reshape(-1), weighted_user.reshape(size * num_negatives, -1))
        out.index_add_(0, positives, weighted_user.sum(1), alpha=-1)
        return out, None, None, None


def gathered_bpr_loss(
    nodes: torch.Tensor, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """``bpr_loss(nodes[users], nodes[positives], nodes[negatives])`` with a cheaper backward.

    Args:
        nodes: ``[N, d]`` final node vectors.
        users: int64 ``[B]`` rows of the users.
        positives: int64 ``[B]`` rows of their positive items.
        negatives: int64 ``[B, num_negatives]`` rows of the negatives.

    Returns:
        The same scalar as :func:`bpr_loss` on the gathered rows.
    """
    return _GatheredBPR.apply(nodes, users, positives, negatives)
