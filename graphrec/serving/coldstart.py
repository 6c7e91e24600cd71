"""Cold start without retraining: items added after training, users known only by attributes.

New items get a text vector from the (fine-tuned) encoder and, where the GNN starts
from text, a graph vector from its learned projection
(:meth:`training.gnn.learner.GraphLearner.embed_new_items`). They have no
interactions, so the hybrid ranker has no features for them; instead a new item takes
the rank that its content score (GNN, else text) gives it among the known items, and
the hybrid score of the item at that rank, just below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from kg.graph import Graph
from training.base import Learner
from training.sources.names import Source

__all__ = ["NewItems", "attribute_neighbors", "attribute_popularity"]


def attribute_neighbors(graph: Graph, attributes: Mapping[str, Any]) -> Optional[np.ndarray]:
    """Indices of known users who share ``attributes`` (user-table columns), or ``None`` for everyone.

    Categorical columns match by equal value; numeric columns take the fifth of users
    closest in value. Users matching every attribute are preferred; when none does,
    users matching any; when none matches at all, ``None`` (overall popularity).

    Raises:
        ValueError: a column the user table does not have (naming the known ones).
    """
    if not attributes:
        return None
    users = graph.users
    matches = []
    for column, value in attributes.items():
        if column not in users.columns or column == "user_id":
            known = [c for c in users.columns if c != "user_id"]
            raise ValueError(f"unknown user attribute {column!r}; the user table has {known or 'no attributes'}")
        values = users[column]
        if pd.api.types.is_numeric_dtype(values) and isinstance(value, (int, float)) and not isinstance(value, bool):
            distance = (values.astype(float) - float(value)).abs()
            matches.append(np.flatnonzero((distance <= distance.quantile(0.2)).to_numpy()))
        else:
            matches.append(np.flatnonzero((values.astype("string") == str(value)).fillna(False).to_numpy()))
    every = matches[0]
    for found in matches[1:]:
        every = np.intersect1d(every, found)
    if len(every):
        return every
    anyone = np.unique(np.concatenate(matches))
    return anyone if len(anyone) else None


def attribute_popularity(model, attributes: Mapping[str, Any]) -> torch.Tensor:
    """Scores ``[1, known items]`` for a user who has seen nothing: ``log1p`` of each item's count among
    the known users sharing ``attributes`` (:func:`attribute_neighbors`), else among everyone.

    Raises:
        ValueError: an attribute the user table does not have.
    """
    neighbors = attribute_neighbors(model.graph, attributes)
    history = model.history if neighbors is None else model.history[neighbors]
    return torch.log1p(torch.as_tensor(np.asarray(history.sum(axis=0), dtype=np.float32)))


@dataclass
class NewItems:
    """Items added after training (see :meth:`graphrec.serving.recommender.Recommender.add_items`).

    ``ids [m]`` external ids, ``text [m, d]`` their text vectors, ``graph [m, d']`` their
    GNN vectors (``None`` when the GNN does not start from text).
    """

    ids: np.ndarray
    text: np.ndarray
    graph: Optional[np.ndarray] = None

    @classmethod
    def empty(cls) -> "NewItems":
        return cls(ids=np.array([], dtype=object), text=np.zeros((0, 0), np.float32))

    def add(self, model, items: Sequence[Mapping[str, Any]], *, known: pd.Index) -> np.ndarray:
        text_source = model.sources.get(Source.TEXT)
        if not isinstance(text_source, Learner):
            raise ValueError("the model has no text source; new items need the text encoder (text.enabled)")
        ids = []
        for position, item in enumerate(items):
            if "item_id" not in item or item["item_id"] is None or str(item["item_id"]) == "":
                raise ValueError(f"items[{position}] has no item_id")
            ids.append(str(item["item_id"]))
        taken = set(known) | set(self.ids)
        clash = sorted({i for i in ids if i in taken} | {i for i in ids if ids.count(i) > 1})
        if clash:
            raise ValueError(f"item ids already in the model or repeated: {clash[:5]}")
        start = len(known) + len(self.ids)
        vectors = np.asarray(text_source.embed_items(list(items)), dtype=np.float32)
        self.text = vectors if not len(self.ids) else np.concatenate([self.text, vectors])
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=object)])
        gnn = model.sources.get(Source.GNN)
        if isinstance(gnn, Learner) and model.item_text is not None and hasattr(gnn, "embed_new_items"):
            try:
                self.graph = gnn.embed_new_items(self.text, model.item_text)
            except ValueError:  # a randomly initialised GNN has no text projection
                self.graph = None
        return np.arange(start, start + len(ids), dtype=np.int64)

    # -- vectors -------------------------------------------------------------------------
    def vectors(self, name: str, model, dim: int) -> np.ndarray:
        """The new items' vectors in the space of source ``name`` (zeros where it has none)."""
        if not len(self.ids):
            return np.zeros((0, dim), np.float32)
        if name == Source.GNN and self.graph is not None:
            return self.graph
        if name == Source.TEXT:
            return self.text
        return np.zeros((len(self.ids), dim), np.float32)

    # -- scores --------------------------------------------------------------------------
    def append(
        self, scores: torch.Tensor, model, *, users: Optional[np.ndarray] = None,
        history: Optional[sp.csr_matrix] = None, folded: Optional[np.ndarray] = None,
    ) -> torch.Tensor:  # fmt: skip
        """``scores [B, known items]`` followed by the new items' hybrid-scale scores ``[B, m]``.

        Args:
            scores: the hybrid's scores of the batch.
            model: the model artifact.
            users: the batch's user indices (known users), or
            history: its rows (users known by their items only).
            folded: bool ``[B]`` with ``users``: the users outside a user sample, whose
                content profile comes from their rows (the sources hold nothing of them).
        """
        if not len(self.ids):
            return scores
        if folded is not None and folded.any():
            content = _merge_rows(
                folded,
                self.content_scores(model, history=model.history[users[folded]]),
                self.content_scores(model, users=users[~folded]) if (~folded).any() else None,
            )  # fmt: skip
        else:
            content = self.content_scores(model, users=users, history=history)
        return torch.cat([scores, self.insert(scores.cpu(), content).to(scores.device)], dim=1)

    def content_scores(self, model, *, users=None, history=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(catalogue [B, n], new [B, m])`` scores of the content source (GNN, else text)."""
        gnn = model.sources.get(Source.GNN)
        if isinstance(gnn, Learner) and self.graph is not None:
            items = torch.as_tensor(gnn.item_embeddings())
            if users is not None:
                profile = torch.as_tensor(gnn.user_embeddings()[users])
            else:
                profile = _mean_rows(history, items)
            return profile @ items.T, profile @ torch.as_tensor(self.graph).T
        items = torch.as_tensor(model.item_text)
        rows = model.history[users] if users is not None else history
        profile = _mean_rows(rows, items)
        return profile @ items.T, profile @ torch.as_tensor(self.text).T

    @staticmethod
    def insert(hybrid: torch.Tensor, content: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Hybrid-scale scores ``[B, m]`` for new items from their rank under the content source."""
        catalogue, new = content
        ranks = (catalogue.unsqueeze(1) > new.unsqueeze(2)).sum(dim=2)  # [B, m]: known items scoring higher
        ordered = torch.sort(hybrid, dim=1, descending=True).values
        finite = torch.isfinite(ordered).sum(dim=1, keepdim=True)
        at = ordered.gather(1, ranks.clamp(max=ordered.shape[1] - 1))
        below = at - 1e-6 * at.abs().clamp_min(1.0)
        return torch.where(ranks < finite, below, torch.full_like(below, -torch.inf))


def _mean_rows(rows: sp.csr_matrix, items: torch.Tensor) -> torch.Tensor:
    rows = sp.csr_matrix(rows, dtype=np.float32)
    totals = np.asarray(rows.sum(axis=1)).ravel()
    weights = sp.diags(1.0 / np.where(totals > 0, totals, 1.0)) @ rows
    return torch.as_tensor(np.asarray(weights @ items.numpy(), dtype=np.float32))


def _merge_rows(first: np.ndarray, firsts: tuple, others: Optional[tuple]) -> tuple:
    """Interleave two tuples of row tensors: rows where ``first`` is true from ``firsts``, the rest from ``others``."""
    merged = []
    for position, part in enumerate(firsts):
        out = torch.empty((len(first), part.shape[1]), dtype=part.dtype)
        out[torch.from_numpy(first)] = part.cpu()
        if others is not None:
            out[torch.from_numpy(~first)] = others[position].cpu()
        merged.append(out)
    return tuple(merged)
