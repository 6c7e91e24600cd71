"""The ablation table of every training report: sources alone, the hybrid, the hybrid minus each group.

One function serves the pipeline's report, the benchmark and the tests. It returns
data (an :class:`AblationTable`); printing and writing are the caller's.

Cost: every source is called once per batch of evaluated users (its lists and the
hybrid's come from the same rows, :func:`~training.ranker.evaluation.rank_users`);
the refits without a group reuse the full hybrid's featurised fitting lists, and
their test lists come from the full hybrid's featurised test candidates (column
subsets), so no source is called again. On a large log the ablated rows use a
seeded sample of users (``sample_users``), stated in the table; with a ``budget``
(fewer ensemble members) the refits are cheaper and a reference row refitted under the
same budget is what they compare with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import scipy.sparse as sp

from eval import EvalResult, evaluate
from eval.checks import positive_int
from eval.progress import progress_bar
from kg.graph import Graph
from training.base import sample_at_most
from training.ranker.context import RankerContext
from training.ranker.evaluation import HYBRID, rank_featurised, rank_users
from training.ranker.features import feature_names
from training.ranker.hybrid import HybridRanker, Scorer

__all__ = ["REFERENCE", "AblationTable", "RankerInputs", "ablation"]

REFERENCE = "hybrid (ablation budget)"
"""Name of the row of the full hybrid refitted under the ablation's budget."""


@dataclass(frozen=True)
class RankerInputs:
    """What the ranker's context is built from in one phase (fitting, or evaluation).

    Attributes:
        history: CSR ``[num_users, num_items]``: the interactions the sources were fitted on.
        source_scorers: name -> row scorer fitted on ``history``.
        history_times: CSR float64 timestamps of ``history``, or ``None``.
    """

    history: sp.csr_matrix
    source_scorers: Mapping[str, Scorer]
    history_times: Optional[sp.csr_matrix] = None

    def context(self, graph: Graph, item_text_embeddings: Optional[np.ndarray] = None) -> RankerContext:
        """The :class:`~training.ranker.context.RankerContext` of this phase."""
        return RankerContext.build(
            graph, self.history, item_text_embeddings=item_text_embeddings, history_times=self.history_times,
            source_scorers=self.source_scorers,
        )  # fmt: skip


@dataclass(frozen=True)
class AblationTable:
    """What :func:`ablation` returns.

    Attributes:
        rows: the table (see :func:`ablation`).
        results: the full :class:`~eval.EvalResult` of each source and of ``"hybrid"``
            over every evaluated user (not the sample), for the caller's report.
        sample_users: how many users the ablated rows were computed on when sampled
            (``None``: all); the source and hybrid rows of the table use the same users.
        sample_seed: the seed of that sample.
    """

    rows: list[dict[str, Any]]
    results: dict[str, EvalResult]
    sample_users: Optional[int] = None
    sample_seed: Optional[int] = None


def _row(name: str, kind: str, result: EvalResult) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "kind": kind}
    row.update(result.metrics)
    row.update(
        sparse_ndcg=result.sparse["ndcg"],
        sparse_recall=result.sparse["recall"],
        sparse_users=result.sparse["n_users"],
        users=result.n_users,
    )
    return row


def ablation(
    ranker: HybridRanker,
    graph: Graph,
    *,
    fit_inputs: RankerInputs,
    fit_users: np.ndarray,
    labels: sp.csr_matrix,
    eval_inputs: RankerInputs,
    test: sp.csr_matrix,
    item_text_embeddings: Optional[np.ndarray] = None,
    k: int = 20,
    users: Optional[np.ndarray] = None,
    sparse_max_train: int = 5,
    sample_users: Optional[int] = None,
    seed: int = 2026,
    budget: Optional[Mapping[str, Any]] = None,
    show_progress: bool = False,
) -> AblationTable:
    """Evaluate each source alone, the fitted hybrid, and the hybrid refitted without each group.

    Every ablated hybrid is fitted exactly as the full one (on ``fit_inputs``' context,
    ``labels`` of ``fit_users``) and evaluated as it (on ``eval_inputs``' context, on
    ``test`` with ``eval_inputs.history`` masked, the docs/PROTOCOL.md "train"). The
    ranker itself is not modified (it is evaluated through a copy bound to the
    evaluation context).

    Args:
        ranker: the fitted hybrid.
        graph: side information, item ids.
        fit_inputs: the phase the ranker was fitted in.
        fit_users: the users the ranker was fitted on.
        labels: CSR ``[num_users, num_items]``, the held-out interactions it learned from.
        eval_inputs: the phase to evaluate (e.g. sources refitted on train + valid).
        test: CSR ``[num_users, num_items]`` of test interactions.
        item_text_embeddings: as given to ``RankerContext.build``.
        k: the cut-off.
        users: restrict the evaluation to these users.
        sparse_max_train: users with at most this many ``eval_inputs.history`` items
            form the sparse-user row (docs/PROTOCOL.md: 5, or the lowest quintile, stated).
        sample_users: when more users than this are fitted or evaluated, the ablated
            refits fit and the table's rows evaluate on a seeded sample of this many
            (``None``: all users). :attr:`AblationTable.results` always covers all.
        seed: seeds the sample.
        budget: ``HybridRanker`` arguments of the refits (e.g. ``{"ensemble": 1}``), to make
            the table cheaper than refitting the full configuration once per group. When they
            change the ranker's configuration, the full hybrid is refitted under the same
            budget as well (row ``"hybrid (ablation budget)"``, kind ``"reference"``) and the
            ablated rows are to be compared with that row, like with like.
        show_progress: progress bars.

    Returns:
        :class:`AblationTable` whose rows are ``{"name", "kind" ("source" | "hybrid" |
        "ablation"), the EvalResult metrics (ndcg, recall, tail_recall, ...),
        "sparse_ndcg", "sparse_recall", "sparse_users", "users"}``: one per source (in the
        ranker's source order), then ``"hybrid"``, then ``"hybrid - {group}"`` per
        feature group (none when the ranker uses a single group; a group whose features
        were all constant in fitting, such as ``content`` without text, is skipped);
        with a budget that changes the configuration, the reference row comes before them;
        with a sample, every row also holds ``"sample_users"``.
    """
    if not ranker.is_fitted:
        raise ValueError("ablation needs a fitted ranker; call ranker.fit() first")
    missing = [s for s in ranker.source_names_ if s not in eval_inputs.source_scorers]
    if missing:
        raise ValueError(f"eval_inputs.source_scorers lacks {missing}; the ranker was fitted on {ranker.source_names_}")
    if sample_users is not None:
        positive_int(sample_users, "sample_users")
    eval_context = eval_inputs.context(graph, item_text_embeddings)
    evaluated = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    if users is not None:
        evaluated = np.intersect1d(evaluated, np.asarray(users, dtype=np.int64))
    fit_users = np.asarray(fit_users, dtype=np.int64)
    everyone = np.union1d(evaluated, fit_users)
    sample = None
    if sample_users is not None and len(everyone) > sample_users:
        sample = sample_at_most(everyone, sample_users, seed)
    table_users = evaluated if sample is None else np.intersect1d(evaluated, sample)

    def run(lists, on: np.ndarray) -> EvalResult:
        return evaluate(
            lists, train=eval_context.history, test=test, item_ids=graph.item_ids, k=k, users=on,
            sparse_max_train=sparse_max_train,
        )  # fmt: skip

    ranked = rank_users(ranker, eval_context, evaluated, k=k, keep=table_users, show_progress=show_progress)
    names = list(ranker.source_names_) + [HYBRID]
    results = {name: run(ranked.lists[name], evaluated) for name in names}
    shown = results if sample is None else {name: run(ranked.lists[name], table_users) for name in names}
    rows = [_row(name, "source", shown[name]) for name in ranker.source_names_]
    rows.append(_row(HYBRID, "hybrid", shown[HYBRID]))
    constant = set(ranker.diagnostics_.get("constant_features", []))
    groups = [
        g for g in ranker.feature_groups if not set(feature_names(ranker.source_names_, (g,))) <= constant
    ]  # a group with no data in fitting (all constant): dropping it changes nothing
    if len(ranker.feature_groups) > 1 and groups:
        fit_scorers = {name: fit_inputs.source_scorers[name] for name in ranker.source_names_}
        fit_context = fit_inputs.context(graph, item_text_embeddings).with_scorers(fit_scorers)
        cached = getattr(ranker, "fitting_lists_", None)
        if cached is not None and sample is not None:
            keep = np.flatnonzero(np.isin(cached.lists.users, sample))
            cached = dataclasses.replace(cached, lists=cached.lists.subset(keep))
        refit_users = fit_users if sample is None else np.intersect1d(fit_users, sample)
        config = {**ranker.get_config(), **dict(budget or {})}
        refits = [(f"hybrid - {g}", "ablation", [x for x in ranker.feature_groups if x != g]) for g in groups]
        if config != ranker.get_config():
            refits.insert(0, (REFERENCE, "reference", list(ranker.feature_groups)))
        for name, kind, kept in progress_bar(refits, desc="ablation", unit="refit", disable=not show_progress):
            reduced = HybridRanker(**{**config, "feature_groups": tuple(kept)})
            # one [ablation] bar for the refits; a bar per refit was the noise issue 10.8 is about
            reduced.fit(fit_context, refit_users, labels, lists=cached)
            lists = rank_featurised(reduced, ranked.featurised, eval_context, k=k)
            row = _row(name, kind, run(lists, table_users))
            if kind == "reference":
                row["budget"] = dict(budget or {})
            rows.append(row)
    if sample is not None:
        for row in rows:
            row["sample_users"] = len(sample)
    return AblationTable(
        rows=rows, results=results, sample_users=None if sample is None else len(sample),
        sample_seed=None if sample is None else seed,
    )  # fmt: skip
