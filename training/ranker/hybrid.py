"""The learned hybrid ranker: candidates from the sources, features, a fitted scorer.

A *source* is a name plus a row scorer ``scorer(users int64 [B]) -> [B, num_items]``
(a learner's ``score``, ``eval.MostPop``, a text-similarity scorer...). The ranker
learns to re-rank the union of every source's top-N with a small torch model over the
features of :mod:`training.ranker.features`, fitted on held-out (validation)
interactions: the sources are fitted on the rest of train, the ranker learns
which of them to trust for which user and item. When it ranks, the candidates are
the top-N of ``candidate_sources`` (by default all but the factor models that are not the
best source), and the factor models left out are scored at those candidates only.

Typical use (docs/PROTOCOL.md's validation split)::

    fit_context = RankerContext.build(
        graph, graph.matrix("train", weighted=True), item_text_embeddings=text,
        history_times=graph.timestamp_matrix("train"),
        source_scorers={Source.ALS: als.score, Source.POP: MostPop().fit(fit_matrix)},
    )
    ranker = HybridRanker(candidates_per_source=100).fit(fit_context, users, graph.matrix("valid"))
    # learners refitted on train + valid: new history, new item statistics, same weights
    ranker.bind(RankerContext.build(graph, graph.matrix("train", "valid", weighted=True), item_text_embeddings=text,
                                    history_times=graph.timestamp_matrix("train", "valid"), source_scorers=refitted))
    evaluate(ranker.score, train=..., test=graph.matrix("test"), item_ids=graph.item_ids)

This module holds configuration, fitting and persistence; scoring, binding a context and
explanations live in :mod:`training.ranker.scoring`. A loaded ranker is bound to a context
(``bind``) before it scores.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import choice, number, positive_float, positive_int
from training.base import Callback, as_user_index, as_user_items, load_state, resolve_device, save_state
from training.ranker.context import RankerContext
from training.ranker.features import ALL_GROUPS, DEFAULT_GROUPS, feature_names
from training.ranker.fitting import CandidateLists, FittingLists, collect_lists, fit_scorer, inner_validator
from training.ranker.model import LOSSES, MODELS, Ensemble, make_scorer
from training.ranker.scoring import RankerScoring, Scorer, is_factor_source

__all__ = ["HybridRanker", "Scorer"]


CANDIDATE_SETTINGS = ("auto", "all")


def _candidate_setting(value: Any) -> str | tuple[str, ...]:
    """``"auto"``, ``"all"`` or a tuple of source names, from the ``candidate_sources`` argument.

    Raises:
        ValueError: an empty list or name.
        TypeError: neither a string nor a sequence of strings.
    """
    if isinstance(value, str):
        if value in CANDIDATE_SETTINGS:
            return value
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"candidate_sources must be 'auto', 'all' or source names, got {value!r}")
    names = tuple(v.strip() for v in value)
    if not names or not all(names):
        raise ValueError(f"candidate_sources={value!r}: expected 'auto', 'all' or non-empty source names")
    return names


class HybridRanker(RankerScoring):
    """Learned fusion of several sources' scores with popularity, content, KG and context features.

    Args:
        candidates_per_source: N, the top-N of every source that forms the candidates.
        candidate_sources: which sources' top-N form the candidates when ranking (scoring, top-K,
            evaluation): ``"auto"``, ``"all"`` (the union of every source's, as in the fit), or
            source names (a list, or one string separated by commas). A source outside them that
            is a factor model (ALS, the GNNs) or popularity is scored at the candidates only, from
            its factors, not over the catalogue, which is most of the cost of a top-K when the
            catalogue is large. ``"auto"``: every source but those, plus the source whose top-N
            holds the most of the fitting users' held-out items (the diagnostics' candidate recall)
            if it is one of them. The fit always learns from the union of every source's top-N.
            The ``ranks`` feature group needs every source's top-N, so with it ``"auto"`` means all
            and a list is refused. Chosen on validation users the ranker was not fitted on
            (bench/candidate_sources.py): "auto" ranks as "all" does on ml-100k and lastfm and within
            0.0002 NDCG@20 on gowalla (test, 3 seeds: within 0.0004), where its batch top-K serves
            1.2-1.4x the users per second, 2.3-2.5x with ``graphfilter.neighbors=1024``.
        model: ``"mlp"`` (two hidden layers plus a linear skip) or ``"linear"``.
        hidden: width of the MLP's hidden layers.
        dropout: MLP dropout.
        loss: ``"listwise"`` (softmax cross-entropy over each candidate list) or ``"bpr"``.
        epochs: maximum training epochs.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_users: users per source call when featurising and scoring (memory:
            ``batch_users x num_items`` per source).
        train_batch_users: candidate lists per optimisation step.
        valid_fraction: share of the fitting users held out for early stopping.
        patience: epochs without inner-validation improvement before stopping.
        ensemble: scorers fitted (seeds ``seed``, ``seed + 1``, ...; each with its own
            inner split) whose scores are averaged.
        tail_weight: weight of a tail item's positive in the listwise target (1: none);
            above 1 trades a little NDCG for long-tail recall. BPR ignores it.
        valid_k: cut-off of the inner-validation NDCG.
        feature_groups: which groups of :data:`~training.ranker.features.ALL_GROUPS` to
            use; the default, :data:`~training.ranker.features.DEFAULT_GROUPS`, leaves
            out ``ranks`` (see there why).
        seed: seeds the inner split, initialisation and training order.
        device: where the scorer runs (features are built on the CPU).

    The defaults were chosen on validation only (``bench/ranker_cost.py``: 3-fold cross-validation
    over ml-100k's validation users, sources fitted on train; bench/results/ranker_cost.md):
    50 candidates per source score as 100 (NDCG@20 0.2998 vs 0.3000, one member) at half the
    rows, 30 lose (0.2976); no dropout scores as 0.1 (0.2998 vs 0.3005) and fits 4-5x faster
    (CPU dropout draws cost more than the layers); patience 5 stops 30% earlier at the same best
    epoch; each extra member still helps (1, 3, 5 members: 0.2998, 0.3027, 0.3049).
    """

    name: ClassVar[str] = "hybrid_ranker"

    def __init__(
        self,
        *,
        candidates_per_source: int = 50,
        candidate_sources: str | Sequence[str] = "auto",
        model: str = "mlp",
        hidden: int = 64,
        dropout: float = 0.0,
        loss: str = "listwise",
        epochs: int = 60,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_users: int = 256,
        train_batch_users: int = 32,
        valid_fraction: float = 0.1,
        patience: int = 5,
        ensemble: int = 5,
        tail_weight: float = 1.0,
        valid_k: int = 20,
        feature_groups: Sequence[str] = DEFAULT_GROUPS,
        seed: int = 2026,
        device: str = "cpu",
    ) -> None:
        for name in (
            "candidates_per_source", "hidden", "epochs", "batch_users", "train_batch_users", "patience", "ensemble",
            "valid_k",
        ):  # fmt: skip
            positive_int(locals()[name], name)
        positive_float(lr, "lr")
        positive_float(tail_weight, "tail_weight")
        choice(model, "model", MODELS)
        choice(loss, "loss", LOSSES)
        number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        positive_float(weight_decay, "weight_decay", allow_zero=True)
        number(valid_fraction, "valid_fraction", low=0.0, high=1.0, high_open=True)
        groups = tuple(feature_groups)
        unknown = [g for g in groups if g not in ALL_GROUPS]
        if unknown or not groups:
            raise ValueError(f"feature_groups={groups!r}: expected a non-empty subset of {ALL_GROUPS}")
        self.candidates_per_source = candidates_per_source
        self.candidate_sources = _candidate_setting(candidate_sources)
        if isinstance(self.candidate_sources, tuple) and "ranks" in groups:
            raise ValueError(
                "the ranks feature group needs every source's top-N: use candidate_sources='all' or 'auto' with it"
            )
        self.model = model
        self.hidden = hidden
        self.dropout = dropout
        self.loss = loss
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_users = batch_users
        self.train_batch_users = train_batch_users
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.ensemble = ensemble
        self.tail_weight = tail_weight
        self.valid_k = valid_k
        self.feature_groups = groups
        self.seed = seed
        self.device = str(device)

    # -- configuration ---------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The ``__init__`` keyword arguments, by name (``feature_groups`` as a list)."""
        names = (
            "candidates_per_source", "candidate_sources", "model", "hidden", "dropout", "loss", "epochs", "lr",
            "weight_decay", "batch_users", "train_batch_users", "valid_fraction", "patience", "ensemble", "tail_weight",
            "valid_k", "feature_groups", "seed", "device",
        )  # fmt: skip
        config = {name: getattr(self, name) for name in names}
        config["feature_groups"] = list(self.feature_groups)
        if isinstance(self.candidate_sources, tuple):
            config["candidate_sources"] = list(self.candidate_sources)
        return config

    def with_groups(self, groups: Sequence[str]) -> "HybridRanker":
        """An unfitted ranker with the same configuration but other feature groups."""
        return HybridRanker(**{**self.get_config(), "feature_groups": tuple(groups)})

    def __repr__(self) -> str:
        return f"HybridRanker({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        context: RankerContext,
        users: np.ndarray,
        labels: sp.csr_matrix,
        *,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
        lists: Optional[FittingLists] = None,
    ) -> "HybridRanker":
        """Learn the scorer from held-out interactions.

        Binds ``context`` (see :meth:`bind`). Candidates are every source's top-N outside the
        context's history; a candidate's
        label is whether it is in ``labels``. Users with no positive candidate are
        counted and skipped. The fitting users are split (``valid_fraction``, seeded)
        into training lists and an inner validation split for early stopping on
        NDCG@``valid_k`` (``eval.evaluate``); ``ensemble`` members are fitted so, each
        with its own seed and split, and averaged. Tail positives weigh ``tail_weight``.
        :attr:`diagnostics_` records the counts of users, the mean number of candidates,
        the candidate recall per source and for the union (share of the held-out
        positives among the candidates), the constant features and, per member, its
        split sizes, loss and inner-NDCG curves and best epoch.

        Args:
            context: the fitting phase: history, item statistics and the sources (name -> row
                scorer, fitted on that history only), e.g. ``RankerContext.build(...)``.
            users: int64 internal user indices to fit on.
            labels: CSR ``[num_users, num_items]``, the held-out (validation) interactions.
            show_progress: tqdm progress bars.
            callback: ``callback(epoch, elapsed_seconds, loss)`` after each epoch (epochs
                counted across ensemble members, seconds since ``fit`` began).
            lists: featurised candidate lists of these sources, users and labels, e.g. the
                :attr:`fitting_lists_` of the full hybrid when fitting its ablations
                (:meth:`FittingLists.select` keeps this ranker's feature columns; they
                must be a subset). Used instead of scoring and featurising every user.

        Returns:
            ``self``.

        Raises:
            TypeError: ``context`` is not a RankerContext, ``users`` are not integers or
                ``labels`` is not sparse.
            ValueError: no source, bad ``users``/``labels``, or no user with a positive candidate.
            ModelFitError: the loss diverged.
        """
        self.bind(context)
        self.__dict__.pop("candidate_sources_", None)  # a refit learns from every source's candidates again
        source_scorers = context.source_scorers
        if not source_scorers:
            raise ValueError("the context has no source_scorers; the hybrid needs at least one source")
        labels = as_user_items(labels, num_items=self.history_.shape[1], name="labels")
        if labels.shape[0] != self.history_.shape[0]:
            raise ValueError(f"labels has {labels.shape[0]} rows, expected one per user ({self.history_.shape[0]})")
        users = as_user_index(users, num_users=labels.shape[0])
        self.source_names_ = list(source_scorers)
        self.feature_names_ = feature_names(self.source_names_, self.feature_groups)
        if lists is not None:
            if list(lists.source_names) != self.source_names_:
                raise ValueError(f"lists were featurised for sources {lists.source_names}, not {self.source_names_}")
            lists = lists.select(self.feature_names_)
        else:
            collected, diagnostics = collect_lists(
                self._featurise_users,
                users,
                labels,
                num_features=len(self.feature_names_),
                batch_users=self.batch_users,
                show_progress=show_progress,
            )
            lists = FittingLists(collected, diagnostics, tuple(self.feature_names_), tuple(self.source_names_))
        self.fitting_lists_ = lists  # not saved: for the ablation's refits
        diagnostics = copy.deepcopy(lists.diagnostics)
        lists = lists.lists
        if not len(lists.users):
            raise ValueError("no fitting user has a held-out item among the candidates; raise candidates_per_source")
        self.feature_mean_ = lists.features.mean(dim=0)
        std = lists.features.std(dim=0, unbiased=False)
        self.feature_std_ = torch.where(std > 1e-6, std, torch.ones_like(std))
        # A constant feature (a group without data: no text, KG or timestamps) carries nothing.
        diagnostics["constant_features"] = [n for n, c in zip(self.feature_names_, (std <= 1e-6).tolist()) if c]
        # Tail positives weigh tail_weight in the listwise target (docs/PROTOCOL.md's tail, history counts).
        weights = torch.where(self.stats_.tail[lists.items] > 0, float(self.tail_weight), 1.0)
        lists = CandidateLists(
            users=lists.users, items=lists.items, features=self._normalise(lists.features),
            labels=lists.labels * weights, offsets=lists.offsets,
        )  # fmt: skip
        device = resolve_device(self.device)
        members, reports, epochs_done, started = [], [], [0], time.perf_counter()

        def report(epoch: int, elapsed: float, loss: float) -> None:
            epochs_done[0] += 1
            if callback is not None:
                callback(epochs_done[0] - 1, time.perf_counter() - started, loss)

        for member in range(self.ensemble):
            scorer, member_report = self._fit_member(lists, labels, self.seed + member, device, show_progress, report)
            members.append(scorer)
            reports.append(member_report)
        self.scorer_ = Ensemble(members).eval()
        factors = [name for name, scorer in source_scorers.items() if is_factor_source(scorer)]
        self.candidate_sources_ = self.choose_candidate_sources(diagnostics.get("candidate_recall", {}), factors)
        diagnostics.update(
            candidate_sources=list(self.candidate_sources_),
            best_valid_ndcg=float(np.mean([r["best_valid_ndcg"] for r in reports])),
            epochs_run=int(sum(r["epochs_run"] for r in reports)),
            members=reports,
        )
        self.diagnostics_ = diagnostics
        self.fitted_ = True
        return self

    def choose_candidate_sources(self, recall: Mapping[str, Any], factors: Sequence[str]) -> list[str]:
        """The sources whose top-N :attr:`candidate_sources` ranks (``fit`` sets :attr:`candidate_sources_` so).

        Args:
            recall: candidate recall per source on the fitting users (the diagnostics').
            factors: the sources that are factor models (scored at the candidates only when
                they are not candidate sources).

        Raises:
            ValueError: a named source is not one of the fitted sources.
        """
        setting = self.candidate_sources
        if isinstance(setting, tuple):
            unknown = [name for name in setting if name not in self.source_names_]
            if unknown:
                raise ValueError(f"candidate_sources {unknown} are not sources of this ranker: {self.source_names_}")
            return [name for name in self.source_names_ if name in setting]
        found = {name: float(recall[name]) for name in self.source_names_ if name in recall}
        if setting == "all" or "ranks" in self.feature_groups or not found:
            return list(self.source_names_)
        best = max(found, key=lambda name: (found[name], -self.source_names_.index(name)))
        return [name for name in self.source_names_ if name == best or name not in factors]

    def _fit_member(
        self,
        lists: CandidateLists,
        labels: sp.csr_matrix,
        seed: int,
        device: torch.device,
        show_progress: bool,
        callback: Callback,
    ) -> tuple[torch.nn.Module, dict[str, Any]]:
        """One ensemble member: its own seeded inner split, initialisation and order."""
        order = np.random.default_rng(seed).permutation(len(lists.users))
        n_valid = int(round(self.valid_fraction * len(order))) if len(order) >= 10 else 0
        inner_train, inner_valid = lists.subset(np.sort(order[n_valid:])), lists.subset(np.sort(order[:n_valid]))
        validate = None
        if n_valid:
            validate = inner_validator(
                inner_valid, self.history_, labels, k=self.valid_k, device=device
            )
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            scorer = make_scorer(self.model, len(self.feature_names_), self.hidden, self.dropout).to(device)
            epochs = fit_scorer(
                scorer,
                inner_train,
                validate=validate,
                loss=self.loss,
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
                batch_users=self.train_batch_users,
                patience=self.patience,
                seed=seed,
                device=device,
                show_progress=show_progress,
                callback=callback,
            )
        best = max(epochs, key=lambda e: e["valid_ndcg"]) if n_valid else epochs[-1]
        return scorer, {
            "seed": seed,
            "inner_train_users": len(inner_train.users),
            "inner_valid_users": len(inner_valid.users),
            "epochs_run": len(epochs),
            "best_epoch": int(best["epoch"]),
            "best_valid_ndcg": float(best["valid_ndcg"]),
            "loss_curve": [float(e["loss"]) for e in epochs],
            "valid_ndcg_curve": [float(e["valid_ndcg"]) for e in epochs],
        }

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` + ``state.safetensors`` into ``path`` (no pickle).

        Stored: configuration, scorer weights, feature normalisation statistics, the
        source and feature names and the fitting diagnostics. Not stored: the
        context (:meth:`bind` one after :meth:`load`).
        """
        self._check_fitted()
        state: dict[str, Any] = {f"scorer.{k}": v for k, v in self.scorer_.state_dict().items()}
        state.update(
            feature_mean=self.feature_mean_,
            feature_std=self.feature_std_,
            source_names=list(self.source_names_),
            candidate_sources=list(self.candidate_sources_),
            feature_names=list(self.feature_names_),
            diagnostics=self.diagnostics_,
        )
        save_state(path, kind=self.name, config=self.get_config(), state=state)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device | None = None) -> "HybridRanker":
        """Rebuild a ranker written by :meth:`save`; :meth:`bind` a context before scoring.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: ``path`` holds something else, or its feature layout does not
                match this version's.
        """
        kind, config, state = load_state(path)
        if kind != cls.name:
            raise ValueError(f"{path} holds a {kind!r}, not a {cls.name!r}")
        if device is not None:
            config["device"] = str(device)
        ranker = cls(**config)
        ranker.source_names_ = list(state["source_names"])
        # Rankers saved before candidate_sources ranked the union of every source's top-N.
        ranker.candidate_sources_ = list(state.get("candidate_sources", ranker.source_names_))
        ranker.feature_names_ = feature_names(ranker.source_names_, ranker.feature_groups)
        if ranker.feature_names_ != list(state["feature_names"]):
            raise ValueError(f"{path}: stored features {state['feature_names']} differ from {ranker.feature_names_}")
        ranker.feature_mean_ = torch.from_numpy(state["feature_mean"])
        ranker.feature_std_ = torch.from_numpy(state["feature_std"])
        num_features = len(ranker.feature_names_)
        scorer = Ensemble(
            [make_scorer(ranker.model, num_features, ranker.hidden, ranker.dropout) for _ in range(ranker.ensemble)]
        )
        weights = {k[len("scorer."):]: torch.from_numpy(v) for k, v in state.items() if k.startswith("scorer.")}
        scorer.load_state_dict(weights)
        ranker.scorer_ = scorer.to(resolve_device(ranker.device)).eval()
        ranker.diagnostics_ = dict(state.get("diagnostics", {}))
        ranker.fitted_ = True
        return ranker
