"""Validation-driven tuning of the collaborative sources within a time budget (Optuna).

``graphrec.train`` with ``tune.budget_minutes > 0`` calls :func:`tune_source` before it
fits a tuned source: Optuna's TPE sampler proposes the source's key settings, each
proposal is fitted on the fit-phase matrix (train) and scored by NDCG@K on the
validation split (docs/PROTOCOL.md ranking, the fit matrix masked) for a seeded sample
of validation users; the search stops at the time budget or the trial cap. The first
trial is always the configured setting, so the result is never worse than it on
validation. Test data never reaches the tuner: it sees only the two matrices it is
given (the pipeline passes train and valid).

Search spaces (one function per source, :data:`SPACES`):

* ``graphfilter``: kind (linear/Chebyshev), alpha, rank, sharpening time and order,
  Chebyshev order and flatness, degree power; one SVD at the largest rank is fitted
  once and every trial reuses it (:meth:`GraphFilter.with_filter`), so trials cost
  scoring only;
* ``als``: factors, regularization, alpha (a fit per trial);
* ``itemknn``: similarity, neighbors, BM25 k1/b (a fit per trial);
* ``ease``: regularization (a fit per trial).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp

from eval import evaluate
from kg.graph import Graph
from training.base import Learner, sample_at_most
from training.sources.names import Source

__all__ = ["SPACES", "TuneResult", "tune_source"]


@dataclass
class TuneResult:
    """What a search found: the settings to fit with, the fitted learner, the history.

    Attributes:
        source: the source's name.
        best: learner keyword arguments of the best trial (complete: every ``__init__`` argument).
        changed: the tuned settings of the best trial (the searched subset of ``best``).
        best_value: its validation NDCG@K.
        default_value: validation NDCG@K of the configured setting (trial 0).
        learner: the best trial's learner, fitted on the fit-phase matrix.
        history: one entry per finished trial: ``number``, ``params``, ``value``, ``seconds``.
        users: validation users scored per trial.
        seconds: wall seconds of the whole search.
    """

    source: str
    best: dict[str, Any]
    changed: dict[str, Any]
    best_value: float
    default_value: float
    learner: Learner
    history: list[dict[str, Any]] = field(default_factory=list)
    users: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for the manifest and report (the learner left out)."""
        return {
            "source": self.source, "best": self.changed, "best_valid_ndcg": self.best_value,
            "default_valid_ndcg": self.default_value, "trials": len(self.history), "valid_users": self.users,
            "seconds": round(self.seconds, 1), "history": self.history,
        }  # fmt: skip


# -- search spaces: (trial, defaults) -> the settings this trial tries ----------------------
def _graphfilter_space(trial, defaults: dict[str, Any]) -> dict[str, Any]:
    kind = trial.suggest_categorical("kind", ["linear", "chebyshev"])
    params: dict[str, Any] = {
        "kind": kind,
        "alpha": trial.suggest_float("alpha", 0.01, 10.0, log=True),
        "rank": trial.suggest_categorical("rank", [0.25, 0.5, 0.75, 1.0]),  # share of the largest rank searched
        "degree_power": trial.suggest_float("degree_power", 0.0, 0.5),
    }
    if kind == "linear":
        params["sharpen"] = trial.suggest_float("sharpen", 0.0, 3.0)
        params["sharpen_order"] = trial.suggest_categorical("sharpen_order", [1, 2, 4])
    else:
        params["sharpen"] = 0.0
        params["order"] = trial.suggest_categorical("order", [4, 6, 8])
        params["flatness"] = trial.suggest_float("flatness", 1.0, 3.0)
        params["ideal_exponent"] = params["degree_power"] or None
    return params


def _als_space(trial, defaults: dict[str, Any]) -> dict[str, Any]:
    return {
        "factors": trial.suggest_categorical("factors", [32, 64, 128, 256]),
        "regularization": trial.suggest_float("regularization", 0.1, 300.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 20.0, log=True),
    }


def _itemknn_space(trial, defaults: dict[str, Any]) -> dict[str, Any]:
    similarity = trial.suggest_categorical("similarity", ["cosine", "bm25", "tfidf"])
    params = {"similarity": similarity, "neighbors": trial.suggest_int("neighbors", 10, 1000, log=True)}
    if similarity == "bm25":
        params["bm25_k1"] = trial.suggest_float("bm25_k1", 0.2, 3.0)
        params["bm25_b"] = trial.suggest_float("bm25_b", 0.0, 1.0)
    return params


def _ease_space(trial, defaults: dict[str, Any]) -> dict[str, Any]:
    return {"regularization": trial.suggest_float("regularization", 1.0, 10_000.0, log=True)}


SPACES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    Source.GRAPHFILTER: _graphfilter_space,
    Source.ALS: _als_space,
    Source.ITEMKNN: _itemknn_space,
    Source.EASE: _ease_space,
}
"""Source name -> a function of ``(optuna trial, configured kwargs)`` giving the trial's settings."""


def tune_source(
    name: str,
    graph: Graph,
    fit_items: sp.csr_matrix,
    valid_items: sp.csr_matrix,
    make: Callable[..., Learner],
    *,
    budget_seconds: float,
    seed: int,
    valid_users: int = 2000,
    max_trials: int = 0,
    k: int = 20,
    log: Optional[Callable[[str], None]] = None,
) -> TuneResult:
    """Search ``name``'s settings by validation NDCG@K within ``budget_seconds``.

    Args:
        name: a key of :data:`SPACES`.
        graph: fixes the shapes and item ids.
        fit_items: the matrix every trial is fitted on (the fit phase: train); its stored
            entries are masked from the ranked lists.
        valid_items: held-out items the trials are scored on (the validation split).
        make: ``make(**changes)`` builds the learner with the configured settings, changed
            by ``changes``; ``make()`` is the configured learner (trial 0).
        budget_seconds: stop proposing trials after this long (the running trial finishes);
            at least trial 0 runs.
        seed: seeds the sampler and the validation-user sample.
        valid_users: validation users scored per trial (a seeded sample; 0: all).
        max_trials: stop after this many trials (0: only the budget stops the search).
        k: the cut-off of NDCG@K.
        log: called with one line per trial.

    Returns:
        :class:`TuneResult`.

    Raises:
        ValueError: an unknown source, a budget <= 0, shapes that disagree, or an empty
            validation split.
    """
    users = _validation_users(name, graph, fit_items, valid_items, budget_seconds, valid_users, seed)
    start = time.perf_counter()
    search = _Search(name, graph, fit_items, sp.csr_matrix(valid_items), users, make, k=k, log=log)
    _optimize(search.objective, seed=seed, budget_seconds=budget_seconds, max_trials=max_trials, start=start)
    learner = search.kept["learner"]
    sparse = name == Source.GRAPHFILTER and fit_items.shape[1] > search.defaults.get("dense_max_items", 0)
    if sparse and search.defaults.get("neighbors"):  # trials ran the exact filter; it is held as an operator
        search.say(f"  {name}: building the chosen filter's operator ({search.defaults['neighbors']} per item)")
        learner = learner.with_filter(neighbors=search.defaults["neighbors"])
    return TuneResult(
        source=name, best=learner.get_config(), changed=_plain(search.kept["changes"]),
        best_value=search.kept["value"], default_value=search.history[0]["value"], learner=learner,
        history=search.history, users=len(users), seconds=time.perf_counter() - start,
    )  # fmt: skip


def _validation_users(
    name: str, graph: Graph, fit_items: sp.csr_matrix, valid_items: sp.csr_matrix, budget_seconds: float,
    valid_users: int, seed: int,
) -> np.ndarray:  # fmt: skip
    """The arguments checked; the (seeded sample of ``valid_users``) users with validation items."""
    if name not in SPACES:
        raise ValueError(f"no tuner for source {name!r}; tunable: {sorted(SPACES)}")
    if not (isinstance(budget_seconds, (int, float)) and budget_seconds > 0):
        raise ValueError(f"budget_seconds must be > 0, got {budget_seconds!r}")
    if fit_items.shape != valid_items.shape or fit_items.shape != (graph.num_users, graph.num_items):
        raise ValueError(
            f"fit matrix {fit_items.shape} and valid matrix {valid_items.shape} must both be "
            f"({graph.num_users}, {graph.num_items})"
        )
    valid_items = sp.csr_matrix(valid_items)
    users = np.flatnonzero(np.diff(valid_items.indptr) > 0)
    if not len(users):
        raise ValueError("the validation matrix has no items: nothing to tune on")
    return sample_at_most(users, valid_users, seed)


class _Search:
    """One tuning search's trials: build each trial's learner, score it on validation, keep the best."""

    def __init__(
        self, name: str, graph: Graph, fit_items: sp.csr_matrix, valid_items: sp.csr_matrix, users: np.ndarray,
        make: Callable[..., Learner], *, k: int, log: Optional[Callable[[str], None]],
    ) -> None:  # fmt: skip
        self.name, self.graph, self.fit_items, self.valid_items, self.users = name, graph, fit_items, valid_items, users
        self.make, self.k, self.say = make, k, log or (lambda line: None)
        self.exclude = sp.csr_matrix(fit_items)
        self.defaults = make().get_config()
        self.trial_learner = (
            _graphfilter_trials(graph, fit_items, make, self.defaults) if name == Source.GRAPHFILTER else None
        )
        self.kept: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    def build(self, changes: dict[str, Any]) -> Learner:
        if self.trial_learner is not None:
            return self.trial_learner(changes)
        return self.make(**changes).fit(self.graph, self.fit_items)

    def score(self, learner: Learner) -> float:
        result = evaluate(
            learner.score, train=self.exclude, test=self.valid_items, item_ids=self.graph.item_ids, k=self.k,
            users=self.users,
        )  # fmt: skip
        return float(result.metrics["ndcg"])

    def objective(self, trial) -> float:
        began = time.perf_counter()
        changes = {} if trial.number == 0 else SPACES[self.name](trial, self.defaults)
        learner = self.build(changes)
        changes = {key: learner.get_config()[key] for key in changes}  # e.g. the graph filter's rank share -> rank
        value = self.score(learner)
        if not self.kept or value > self.kept["value"]:
            self.kept.update(value=value, learner=learner, changes=changes)
        entry = {"number": trial.number, "params": _plain(changes) or "configured",
                 "value": value, "seconds": round(time.perf_counter() - began, 2)}  # fmt: skip
        self.history.append(entry)
        self.say(f"  tune {self.name} trial {trial.number}: valid NDCG@{self.k} {value:.4f} {entry['params']}")
        return value


def _optimize(
    objective: Callable[[Any], float], *, seed: int, budget_seconds: float, max_trials: int, start: float
) -> None:
    """Trial 0 (the configured setting) whatever the budget, then seeded TPE trials until the budget or
    ``max_trials`` runs out."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE (models the settings jointly) is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=1)  # the configured setting, whatever the budget
    left = budget_seconds - (time.perf_counter() - start)
    if left > 0 and (max_trials == 0 or max_trials > 1):
        study.optimize(objective, timeout=left, n_trials=(max_trials - 1) if max_trials else None)


def _graphfilter_trials(graph: Graph, fit_items, make, defaults) -> Callable[[dict[str, Any]], Learner]:
    """Trials of the graph filter: one SVD at the largest rank, every trial a :meth:`with_filter` copy.

    The space's ``rank`` is a share of the largest rank: twice the configured one (``auto``
    resolved; ``auto`` when 0 is configured), at most 512 unless the configured rank is
    larger, so the search adapts to the catalogue; trial 0 is the configured filter.
    Trials score the exact filter (``neighbors=0``: no sparse operator is built per trial);
    the chosen one gets the configured ``neighbors`` after the search.
    """
    from training.sources.graphfilter import auto_rank

    configured = make()
    rank = auto_rank(fit_items.shape[1]) if configured.rank == "auto" else configured.rank
    rank = rank or auto_rank(fit_items.shape[1])
    top = max(1, min(max(rank, min(2 * rank, 512)), min(fit_items.shape) - 1))
    base = make(rank=top, alpha=configured.alpha or 1.0, neighbors=0).fit(graph, fit_items)

    def trial(changes: dict[str, Any]) -> Learner:
        if not changes:
            return base.with_filter(alpha=defaults["alpha"], rank=defaults["rank"])
        return base.with_filter(**{**changes, "rank": max(1, int(math.ceil(changes["rank"] * top)))})

    return trial


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in changes.items()}
