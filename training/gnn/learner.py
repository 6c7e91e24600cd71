"""What LightGCN and the GAT share: fitting, scoring, fold-in and state.

A :class:`GraphLearner` is layer-0 embeddings (:mod:`training.gnn.init`) fed
through an encoder (LightGCN's propagation or the relation-aware GAT) over the
propagation graph (:mod:`training.gnn.adjacency`), trained with BPR
(:mod:`training.gnn.trainer`); the pieces of one fit are in
:mod:`training.gnn.fitting`. Subclasses only build the encoder. After ``fit``
(or ``load``) the final propagated embeddings are cached, so scoring never
propagates again and a loaded learner needs no graph.
"""

from __future__ import annotations

import abc
import functools
import inspect
import os
from typing import Any, ClassVar, Optional, Union

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from eval.checks import choice, int_or_auto, positive_float, positive_int
from kg.graph import Graph
from training.base import Callback, Learner, as_user_index, as_user_items, resolve_device
from training.gnn.adjacency import GraphEdges, build_edges, compact_entities, normalized_adjacency, to_torch_csr
from training.gnn.bpr import NegativeSampler, positive_pairs
from training.gnn.fitting import (
    BPRStep,
    build_model,
    final_embeddings,
    fit_features,
    fit_fingerprint,
    full_view,
    load_warm_start,
    neighbor_sampler,
    validation_ndcg,
)
from training.gnn.init import INITS, ITEM_L2, TEXT_COMPONENTS, TEXT_SCALE, USER_INITS, apply_text_map
from training.gnn.schedule import AUTO, Schedule, resolve_schedule, validation_sample
from training.gnn.trainer import train

__all__ = ["GraphLearner", "MODES"]

MODES = ("full", "sampled")


class GraphLearner(Learner):
    """Base of the GNN learners. See :class:`training.gnn.LightGCN` for the arguments.

    Subclasses set :attr:`view_kind` (``"adjacency"``: the encoder reads the
    normalised sparse adjacency; ``"edges"``: it reads ``edge_index``/``edge_type``)
    and implement :meth:`_make_encoder`.
    """

    view_kind: ClassVar[str] = "adjacency"
    factor_scores = True

    def __init__(
        self,
        *,
        embedding_dim: int = 64,
        num_layers: int = 3,
        lr: float = 1e-2,
        l2: float = 1e-3,
        epochs: Union[int, str] = AUTO,
        batch_size: Union[int, str] = AUTO,
        num_negatives: Union[int, str] = AUTO,
        init: str = "text",
        use_kg: bool = True,
        use_social: bool = True,
        user_init: str = "mean_items",
        init_std: float = 0.1,
        patience: Union[int, str] = AUTO,
        eval_every: Union[int, str] = AUTO,
        min_gain: Union[float, str] = AUTO,
        mode: str = "full",
        num_neighbors: int = 10,
        seed: int = 0,
        device: str = "auto",
        text_components: int = TEXT_COMPONENTS,
        text_scale: float = TEXT_SCALE,
        item_l2: float = ITEM_L2,
    ) -> None:
        positive_int(embedding_dim, "embedding_dim")
        positive_int(num_layers, "num_layers")
        positive_int(num_neighbors, "num_neighbors")
        for name, value in (
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("num_negatives", num_negatives),
            ("patience", patience),
            ("eval_every", eval_every),
        ):
            int_or_auto(value, name)
        if not (isinstance(min_gain, str) and min_gain == AUTO):
            positive_float(min_gain, "min_gain", allow_zero=True)
        positive_int(seed, "seed", minimum=0)
        positive_float(lr, "lr")
        positive_float(l2, "l2", allow_zero=True)
        positive_float(init_std, "init_std")
        positive_int(text_components, "text_components", minimum=0)
        positive_float(text_scale, "text_scale")
        positive_float(item_l2, "item_l2", allow_zero=True)
        choice(init, "init", INITS)
        choice(user_init, "user_init", USER_INITS)
        choice(mode, "mode", MODES)
        for name, value in (("use_kg", use_kg), ("use_social", use_social)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        if not isinstance(device, str):
            raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {device!r}")
        given = locals()
        for name in list(inspect.signature(GraphLearner.__init__).parameters)[1:]:  # stored as given
            setattr(self, name, given[name])

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _make_encoder(self, edges: GraphEdges, generator: torch.Generator) -> nn.Module:
        """The encoder module: ``encoder(x0 [n, d], view) -> [n, d]``."""

    # -- fitting ------------------------------------------------------------------------
    def fit(
        self,
        graph: Graph,
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        item_features: Optional[np.ndarray] = None,
        entity_features: Optional[np.ndarray] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
        checkpoint_dir: Optional[str | os.PathLike] = None,
        warm_start: Optional["GraphLearner"] = None,
    ) -> "GraphLearner":
        """Train on ``user_items`` over the graph; cache the final embeddings.

        Args:
            graph: side information: KG/attribute triples (``use_kg``), social
                edges (``use_social``); fixes ``num_users``/``num_items``.
            user_items: ``[num_users, num_items]`` CSR of the interactions to
                learn from (every stored entry is one positive, whatever its value).
            valid_items: held-out interactions, same shape; validation NDCG@20
                (``eval.evaluate``, ``user_items`` masked) every ``eval_every``
                epochs picks the best epoch and stops after ``patience``
                evaluations without improvement. ``None``: train ``epochs`` epochs.
            item_features: ``[num_items, d_text]`` precomputed text embeddings;
                required when ``init="text"`` (ignored with ``"random"``).
            entity_features: ``[num_entities, d_ent]`` text embeddings of entity
                names; all-NaN rows mark entities without text. Optional.
            show_progress: tqdm bar over epochs.
            callback: ``callback(epoch, epoch_seconds, mean_loss)`` after every epoch.
            checkpoint_dir: write a checkpoint there after every epoch, and resume
                from the one found there (same configuration and data) with
                results identical to an uninterrupted run.
            warm_start: a fitted learner of the same class and architecture on the
                same graph (the fit phase's): its layer-0 parameters replace the
                initialisation, so the fit continues from them (a fresh Adam) on
                ``user_items``. Users without interactions in its fit that have some
                here start as ``user_init`` says, from the warm item vectors. See
                :func:`training.gnn.schedule.warm_epochs` for how many epochs.

        Returns:
            ``self``, with ``best_epoch_``, ``history_`` and the embeddings set.

        Raises:
            TypeError: ``user_items``/``valid_items`` is not a scipy sparse matrix,
                or features are not numpy arrays.
            ValueError: a matrix or feature array has the wrong shape or values;
                ``init="text"`` without ``item_features``; a ``warm_start`` whose
                parameters do not fit this model.
            training.base.ModelFitError: the loss diverged.
        """
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a kg.graph.Graph, got {type(graph).__name__}")
        num_users, num_items = graph.num_users, graph.num_items
        user_items = as_user_items(user_items, num_items=num_items, num_users=num_users)
        valid = None
        if valid_items is not None:
            valid = as_user_items(valid_items, num_items=num_items, num_users=num_users, name="valid_items")
            valid = validation_sample(valid, seed=self.seed)
        schedule = self.schedule(user_items.nnz)
        item_features, entity_features = fit_features(
            graph, item_features, entity_features, init=self.init, use_kg=self.use_kg
        )
        device = resolve_device(self.device)
        generator = torch.Generator().manual_seed(self.seed)

        full_edges = build_edges(graph, user_items, use_kg=self.use_kg, use_social=self.use_social)
        # Entities without edges are left out of the node space (their vectors are zero).
        edges, kept_entities = compact_entities(full_edges)
        model, view, step = self._trainable(
            edges, user_items, item_features, None if entity_features is None else entity_features[kept_entities],
            schedule=schedule, device=device, generator=generator, warm_start=warm_start,
        )  # fmt: skip
        validate = None if valid is None else functools.partial(
            validation_ndcg, model, view, edges.layout, user_items=user_items, valid=valid, item_ids=graph.item_ids,
            device=device,
        )  # fmt: skip
        pair_users, pair_items = positive_pairs(user_items)
        progress = train(
            model,
            step=step,
            users=pair_users,
            items=pair_items,
            sampler=NegativeSampler(user_items, schedule.num_negatives),
            validate=validate,
            schedule=schedule,
            lr=self.lr,
            generator=generator,
            checkpoint_dir=checkpoint_dir,
            fingerprint=fit_fingerprint(self, user_items, edges, item_features, entity_features, warm_start),
            show_progress=show_progress,
            callback=callback,
        )
        self.user_factors_, self.item_factors_, self.entity_factors_ = final_embeddings(
            model, view, edges.layout, kept_entities, num_entities=full_edges.layout.num_entities
        )
        self.parameters_ = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.best_epoch_ = progress.best_epoch
        self.history_ = progress.history
        self.schedule_ = schedule
        self.user_counts_ = np.diff(user_items.indptr).astype(np.int64)
        self.warm_started_ = warm_start is not None
        self.fitted_ = True
        return self

    def _trainable(
        self, edges: GraphEdges, user_items: sp.csr_matrix, item_features: Optional[np.ndarray],
        entity_features: Optional[np.ndarray], *, schedule: Schedule, device: torch.device,
        generator: torch.Generator, warm_start: Optional["GraphLearner"],
    ) -> tuple[nn.Module, Any, BPRStep]:  # fmt: skip
        """The model to train (warm-started if asked), the full view it propagates over, its BPR step."""
        model = build_model(
            edges, lambda: self._make_encoder(edges, generator), embedding_dim=self.embedding_dim,
            item_features=item_features, entity_features=entity_features, user_items=user_items,
            user_init=self.user_init, init_std=self.init_std, generator=generator, device=device,
            text_components=self.text_components, text_scale=self.text_scale,
            item_l2=self.item_l2,
        )  # fmt: skip
        if warm_start is not None:
            load_warm_start(model, warm_start, user_items, learner=self)
        normalized = normalized_adjacency(edges) if self.view_kind == "adjacency" else None
        view = full_view(edges, normalized, device)
        step = BPRStep(
            model, edges.layout, num_negatives=schedule.num_negatives, l2=self.l2, device=device, view=view,
            sampler=None if self.mode == "full" else neighbor_sampler(
                edges, normalized, num_neighbors=self.num_neighbors, num_layers=self.num_layers, device=device
            ),
            generator=generator,
        )  # fmt: skip
        return model, view, step

    def schedule(self, num_pairs: int) -> Schedule:
        """The loop settings a fit on ``num_pairs`` positives uses (``"auto"`` resolved, see :mod:`.schedule`)."""
        return resolve_schedule(
            num_pairs, batch_size=self.batch_size, num_negatives=self.num_negatives, epochs=self.epochs,
            eval_every=self.eval_every, patience=self.patience, min_gain=self.min_gain,
        )  # fmt: skip

    # -- scoring ------------------------------------------------------------------------
    def _factor_device(self) -> torch.device:
        return self.item_factors_.device

    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for known users, from the cached final embeddings.

        Args:
            users: int64 internal user indices, shape ``[B]``.

        Returns:
            float32 ``[B, num_items]`` on the learner's device.

        Raises:
            NotFittedError: before ``fit``/``load``.
            TypeError: ``users`` is not integer.
            ValueError: ``users`` is not 1-D or holds an index out of range.
        """
        self._check_fitted()
        users = as_user_index(users, num_users=len(self.user_factors_))
        index = torch.from_numpy(users).to(self._factor_device())
        return self.user_factors_[index] @ self.item_factors_.T

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """Fold in users from their items: the user vector is the weighted mean of their items' final vectors.

        Args:
            user_items: CSR ``[B, num_items]``; values weight the items.

        Returns:
            float32 ``[B, num_items]``; rows of users without items are zero.
        """
        self._check_fitted()
        rows = as_user_items(user_items, num_items=len(self.item_factors_))
        totals = np.asarray(rows.sum(axis=1)).ravel()
        weights = sp.csr_matrix(sp.diags(1.0 / np.where(totals > 0, totals, 1.0)) @ rows, dtype=np.float32)
        vectors = to_torch_csr(weights, self._factor_device()) @ self.item_factors_
        return vectors @ self.item_factors_.T

    def embed_new_items(
        self, features: np.ndarray, reference: np.ndarray, *, neighbors: int = 10, temperature: float = 0.05
    ) -> np.ndarray:
        """Final-layer vectors of items the graph has never seen, from their text features.

        A new item has no edges, so the graph says nothing about it directly; its text
        says which known items it resembles. Its vector is the softmax-weighted mean of
        the final vectors of its ``neighbors`` most text-similar known items
        (cosine of the text vectors after the fitted text map of
        :func:`training.gnn.init.fit_text_map`, saved with the learner: centred on
        the catalogue's mean and whitened as the GNN's own inputs were; weights
        ``exp(cos / temperature)``), so an item whose text matches a known
        item's lands next to that item, and one between several lands between them.
        (The isolated-node estimate, the learned projection alone, ignores everything
        propagation and the ID residuals learned and drifts away from trained items as
        training goes on.) A learner saved before the map was kept centres on
        ``reference``'s mean instead.

        Args:
            features: ``[n, d_text]`` text embeddings of the new items.
            reference: ``[num_items, d_text]`` the ``item_features`` given to ``fit``.
            neighbors: known items averaged per new item.
            temperature: softmax temperature over the cosine similarities.

        Returns:
            float32 ``[n, embedding_dim]``, comparable with :meth:`item_embeddings`.

        Raises:
            ValueError: the model was fitted with ``init="random"`` (it was never given
                item text), or ``reference``/``features`` do not match the fitted items
                and their text width.
        """
        self._check_fitted()
        if self.parameters_.get("embedding.item_projection.weight") is None:
            raise ValueError(f"{self.name} was fitted with init='random'; it has no text projection for new items")
        items = torch.as_tensor(self.item_embeddings(), dtype=torch.float32)
        reference = np.nan_to_num(np.asarray(reference, dtype=np.float32))
        if reference.ndim != 2 or reference.shape[0] != items.shape[0]:
            raise ValueError(f"reference must have {items.shape[0]} rows (one per item), got shape {reference.shape}")
        mean = self.parameters_.get("embedding.item_text_mean")
        if mean is None:  # saved before the map was kept: centre only (encoders share a large common component)
            mean, basis = reference.mean(axis=0), np.eye(reference.shape[1], dtype=np.float32)
        else:
            mean, basis = mean.cpu().numpy(), self.parameters_["embedding.item_text_basis"].cpu().numpy()
        known = torch.from_numpy(apply_text_map(reference, mean, basis))
        known = known / known.norm(dim=1, keepdim=True).clamp_min(1e-12)
        query = torch.from_numpy(apply_text_map(np.asarray(features, dtype=np.float32), mean, basis))
        query = query / query.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sims, top = torch.topk(query @ known.T, min(int(neighbors), items.shape[0]), dim=1)
        weights = torch.softmax(sims / float(temperature), dim=1)
        return (weights.unsqueeze(-1) * items[top]).sum(dim=1).numpy().astype(np.float32)

    def item_embeddings(self) -> Optional[np.ndarray]:
        """Final propagated item vectors ``[num_items, embedding_dim]``."""
        self._check_fitted()
        return self.item_factors_.detach().cpu().numpy()

    def user_embeddings(self) -> Optional[np.ndarray]:
        """Final propagated user vectors ``[num_users, embedding_dim]``."""
        self._check_fitted()
        return self.user_factors_.detach().cpu().numpy()

    def entity_embeddings(self) -> np.ndarray:
        """Final propagated entity vectors ``[num_entities, embedding_dim]`` (``[0, d]`` without ``use_kg``).

        Entities without an edge in the propagation graph (leaves, see
        :func:`~training.gnn.adjacency.build_edges`) are left out of training: zero rows.
        """
        self._check_fitted()
        return self.entity_factors_.detach().cpu().numpy()

    # -- state --------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "entity_factors": self.entity_factors_,
            "best_epoch": int(self.best_epoch_),
            "history": self.history_,
        }
        if getattr(self, "user_counts_", None) is not None:
            state["user_counts"] = np.asarray(self.user_counts_, dtype=np.int64)
        state.update({f"param.{k}": v for k, v in self.parameters_.items()})
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        device = resolve_device(self.device)
        factors = {}
        for key in ("user_factors", "item_factors", "entity_factors"):
            if key not in state:
                raise ValueError(f"saved {self.name} state has no {key!r}; it was not written by this learner")
            factors[key] = torch.from_numpy(np.asarray(state[key], dtype=np.float32)).to(device)
        self.user_factors_ = factors["user_factors"]
        self.item_factors_ = factors["item_factors"]
        self.entity_factors_ = factors["entity_factors"]
        self.parameters_ = {
            k[len("param.") :]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith("param.")
        }
        self.best_epoch_ = int(state.get("best_epoch", 0))
        self.history_ = list(state.get("history", []))
        counts = state.get("user_counts")
        self.user_counts_ = None if counts is None else np.asarray(counts, dtype=np.int64)
