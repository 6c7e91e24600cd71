"""Fitting the hybrid's scorer on cached candidate lists.

The candidate lists of every fitting user are featurised once and kept flat
(``[P, F]`` with per-user offsets); each mini-batch pads its users' lists to
``[b, C, F]``. Training runs epochs over a seeded user permutation and keeps the
parameters of the epoch with the best listwise NDCG of an inner validation split.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from eval.metrics import ndcg as ndcg_per_user
from eval.progress import progress_bar
from training.base import Callback, ModelFitError
from training.ranker.candidates import Candidates, candidate_recall, history_mask, segment_topk
from training.ranker.model import list_bpr_loss, listwise_loss

__all__ = ["CandidateLists", "FittingLists", "collect_lists", "fit_scorer", "inner_validator", "pad_lists"]

Featurise = Callable[[np.ndarray], tuple[Candidates, torch.Tensor, torch.Tensor, torch.Tensor]]
"""``featurise(users) -> (candidates, rows, items, features [P, F])`` for a batch of users."""


@dataclass(frozen=True)
class CandidateLists:
    """Featurised candidate lists of a set of users.

    Attributes:
        users: int64 ``[U]``, the users (internal indices).
        items: int64 ``[P]``, the candidate items, user by user.
        features: float32 ``[P, F]``.
        labels: float32 ``[P]``, the listwise target: 0 for negatives, the positive's
            weight (1, or the ranker's ``tail_weight`` for tail items) for held-out positives.
        offsets: int64 ``[U + 1]``; user ``i`` owns ``offsets[i]:offsets[i + 1]``.
    """

    users: np.ndarray
    items: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    offsets: torch.Tensor

    def subset(self, keep: np.ndarray) -> "CandidateLists":
        """The lists of users ``keep`` (positions into :attr:`users`), in that order."""
        starts, stops = self.offsets[:-1].numpy()[keep], self.offsets[1:].numpy()[keep]
        pieces = [np.arange(a, b) for a, b in zip(starts, stops)]
        index = torch.from_numpy(np.concatenate(pieces) if pieces else np.zeros(0, np.int64))
        offsets = torch.zeros(len(keep) + 1, dtype=torch.int64)
        offsets[1:] = torch.from_numpy(np.cumsum(stops - starts))
        return CandidateLists(
            users=self.users[keep],
            items=self.items[index],
            features=self.features[index],
            labels=self.labels[index],
            offsets=offsets,
        )


@dataclass(frozen=True)
class FittingLists:
    """A ranker's featurised fitting lists, reusable by rankers over a subset of its features.

    Attributes:
        lists: the candidate lists (features laid out as ``feature_names``).
        diagnostics: :func:`collect_lists`'s diagnostics of them.
        feature_names: the feature columns.
        source_names: the sources the candidates came from.
    """

    lists: CandidateLists
    diagnostics: dict[str, Any]
    feature_names: tuple[str, ...]
    source_names: tuple[str, ...]

    def select(self, names: Sequence[str]) -> "FittingLists":
        """The same lists with only the feature columns ``names`` (in that order).

        Raises:
            ValueError: a name is not among :attr:`feature_names`.
        """
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise ValueError(f"features {missing} are not in the cached lists ({list(self.feature_names)})")
        columns = [self.feature_names.index(n) for n in names]
        lists = dataclasses.replace(self.lists, features=self.lists.features[:, columns])
        return FittingLists(lists, self.diagnostics, tuple(names), self.source_names)


def pad_lists(
    lists: CandidateLists, positions: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``(features [b, C, F], labels [b, C], mask [b, C])`` of users ``positions``."""
    offsets = lists.offsets
    starts = offsets[:-1][positions]
    sizes = offsets[1:][positions] - starts
    width = int(sizes.max()) if len(positions) else 0
    column = torch.arange(width)
    mask = column.unsqueeze(0) < sizes.unsqueeze(1)
    index = torch.where(mask, starts.unsqueeze(1) + column, 0)
    return (
        lists.features[index].to(device),
        lists.labels[index].masked_fill(~mask, 0.0).to(device),
        mask.to(device),
    )


@contextlib.contextmanager
def one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """Run the block with one torch thread on the CPU, restoring the setting after.

    The scorer's matrices are tiny (a few thousand rows by tens of features): intra-op
    threads only add synchronisation, and on a busy machine OpenMP's barriers made a
    ranker fit 13x slower with 2 threads than with 1 (measured on the demo graph).
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_scorer(
    scorer: nn.Module,
    lists: CandidateLists,
    *,
    validate: Optional[Callable[[nn.Module], float]],
    loss: str,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_users: int,
    patience: int,
    seed: int,
    device: torch.device,
    show_progress: bool = False,
    callback: Optional[Callback] = None,
) -> list[dict[str, float]]:
    """Train ``scorer`` in place; leaves it at its best epoch.

    Args:
        scorer: the module to train (on ``device``).
        lists: the training users' lists (every one with a positive).
        validate: returns the inner-validation NDCG of the scorer (higher is
            better); ``None`` trains all epochs and keeps the last.
        loss: ``"listwise"`` or ``"bpr"``.
        epochs: maximum number of passes over ``lists``.
        lr, weight_decay: Adam's.
        batch_users: lists per optimisation step.
        patience: epochs without improvement before stopping.
        seed: seeds the user order and negative sampling (the caller seeds
            torch's global generator, which dropout draws from).
        device: where the scorer lives.
        show_progress: tqdm over epochs.
        callback: ``callback(epoch, elapsed_seconds, mean_loss)`` after each epoch.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``valid_ndcg`` (NaN without validation).

    Raises:
        ModelFitError: the loss became NaN or infinite.
    """
    with one_thread_on_cpu(device):
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(scorer.parameters(), lr=lr, weight_decay=weight_decay)
        history: list[dict[str, float]] = []
        best_value, best_state, stale = -np.inf, copy.deepcopy(scorer.state_dict()), 0
        started = time.perf_counter()
        for epoch in progress_bar(range(epochs), desc="ranker", unit="epoch", disable=not show_progress):
            scorer.train()
            order = torch.randperm(len(lists.users), generator=generator).numpy()
            total, steps = 0.0, 0
            for start in range(0, len(order), batch_users):
                features, labels, mask = pad_lists(lists, order[start : start + batch_users], device)
                scores = scorer(features)
                if loss == "listwise":
                    value = listwise_loss(scores, labels, mask)
                else:
                    value = list_bpr_loss(scores, labels, mask, generator)
                if not torch.isfinite(value):
                    raise ModelFitError(f"the ranker's {loss} loss became {value.item()} at epoch {epoch}; lower lr={lr}")
                optimiser.zero_grad()
                value.backward()
                optimiser.step()
                total, steps = total + float(value.detach()), steps + 1
            scorer.eval()
            mean_loss = total / max(steps, 1)
            ndcg = validate(scorer) if validate is not None else float("nan")
            history.append({"epoch": epoch, "loss": mean_loss, "valid_ndcg": ndcg})
            if callback is not None:
                callback(epoch, time.perf_counter() - started, mean_loss)
            if validate is None:
                continue
            if ndcg > best_value:
                best_value, best_state, stale = ndcg, copy.deepcopy(scorer.state_dict()), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        if validate is not None:
            scorer.load_state_dict(best_state)
        scorer.eval()
        return history


def collect_lists(
    featurise: Featurise,
    users: np.ndarray,
    labels: sp.csr_matrix,
    *,
    num_features: int,
    batch_users: int,
    show_progress: bool = False,
) -> tuple[CandidateLists, dict[str, Any]]:
    """Featurise every fitting user's candidates; keep the users with a positive candidate.

    Args:
        featurise: builds a batch's candidates and features.
        users: int64 fitting users; those without labels are skipped at once.
        labels: CSR ``[num_users, num_items]`` of held-out positives.
        num_features: F (for the empty case).
        batch_users: users per ``featurise`` call.
        show_progress: tqdm over batches.

    Returns:
        The lists, and diagnostics: ``users``, ``users_with_labels``,
        ``users_with_positive_candidate``, ``users_without_positive_candidate``,
        ``mean_candidates`` and ``candidate_recall`` (per source and ``union``: share of
        the held-out positives found among the candidates).
    """
    with_labels = users[np.diff(labels.indptr)[users] > 0]
    found: dict[str, list[int]] = {}
    kept_users, items, features, targets, sizes = [], [], [], [], []
    batches = range(0, len(with_labels), batch_users)
    for start in progress_bar(batches, desc="ranker features", unit="batch", disable=not show_progress):
        batch = with_labels[start : start + batch_users]
        candidates, rows, batch_items, batch_features = featurise(batch)
        batch_labels = labels[batch]
        for name, (hits, total) in candidate_recall(candidates, batch_labels).items():
            counts = found.setdefault(name, [0, 0])
            counts[0], counts[1] = counts[0] + hits, counts[1] + total
        target = history_mask(batch_labels)[rows, batch_items].float()
        has_positive = torch.zeros(len(batch)).index_add_(0, rows, target) > 0
        keep = has_positive[rows]
        kept_users.append(batch[has_positive.numpy()])
        items.append(batch_items[keep])
        features.append(batch_features[keep])
        targets.append(target[keep])
        sizes.append(candidates.sizes()[has_positive])
    all_sizes = torch.cat(sizes) if sizes else torch.zeros(0, dtype=torch.int64)
    offsets = torch.zeros(len(all_sizes) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(all_sizes, 0)
    lists = CandidateLists(
        users=np.concatenate(kept_users) if kept_users else np.zeros(0, np.int64),
        items=torch.cat(items) if items else torch.zeros(0, dtype=torch.int64),
        features=torch.cat(features) if features else torch.zeros((0, num_features)),
        labels=torch.cat(targets) if targets else torch.zeros(0),
        offsets=offsets,
    )
    diagnostics = {
        "users": int(len(users)),
        "users_with_labels": int(len(with_labels)),
        "users_with_positive_candidate": int(len(lists.users)),
        "users_without_positive_candidate": int(len(with_labels) - len(lists.users)),
        "mean_candidates": float(all_sizes.float().mean()) if len(all_sizes) else 0.0,
        "candidate_recall": {name: hits / max(total, 1) for name, (hits, total) in found.items()},
    }
    return lists, diagnostics


def inner_validator(
    lists: CandidateLists,
    history: sp.csr_matrix,
    labels: sp.csr_matrix,
    *,
    k: int,
    device: torch.device,
) -> Callable[[nn.Module], float]:
    """NDCG@k of a scorer on ``lists`` under docs/PROTOCOL.md's full ranking (``eval.metrics.ndcg``).

    Items outside a user's candidates rank last (``-inf``) and history items are never
    candidates, so the full ranking's top-k is the top-k of the candidates: computed on
    the ``[P]`` candidate pairs, not on ``[users, num_items]`` rows. The ideal DCG counts
    every held-out item of the user, found among the candidates or not.
    """
    k = min(k, history.shape[1])
    rows = torch.repeat_interleave(torch.arange(len(lists.users)), lists.offsets[1:] - lists.offsets[:-1])
    features = lists.features.to(device)
    positive = np.append(lists.labels.numpy() > 0, False)  # index -1 (padding): no hit
    relevant = np.diff(labels[lists.users].indptr)

    def validate(scorer: nn.Module) -> float:
        with torch.no_grad():
            values = scorer(features).float().cpu()
        positions, _ = segment_topk(rows, values, lists.offsets, k)
        hits = positive[positions.numpy()]
        return float(ndcg_per_user(hits, relevant).mean()) if len(relevant) else float("nan")

    return validate
