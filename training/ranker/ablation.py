"""The ablation table of every training report: sources alone, the hybrid, the hybrid minus each group.

One function serves the pipeline's report, the benchmark and the tests. It returns
data (a list of dict rows); printing and writing are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import scipy.sparse as sp

from eval import EvalResult, evaluate
from kg.graph import Graph
from training.ranker.features import feature_names
from training.ranker.hybrid import HybridRanker, Scorer

__all__ = ["RankerInputs", "ablation"]


@dataclass(frozen=True)
class RankerInputs:
    """What the ranker is prepared with in one phase (fitting, or evaluation).

    Attributes:
        history: CSR ``[num_users, num_items]``: the interactions the sources were fitted on.
        source_scorers: name -> row scorer fitted on ``history``.
        history_times: CSR float64 timestamps of ``history``, or ``None``.
    """

    history: sp.csr_matrix
    source_scorers: Mapping[str, Scorer]
    history_times: Optional[sp.csr_matrix] = None


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
    show_progress: bool = False,
    results: Optional[dict[str, EvalResult]] = None,
) -> list[dict[str, Any]]:
    """Evaluate each source alone, the fitted hybrid, and the hybrid refitted without each group.

    Every ablated hybrid is fitted exactly as the full one (prepared on ``fit_inputs``,
    fitted on ``labels`` for ``fit_users``) and evaluated as it (prepared on
    ``eval_inputs``, evaluated on ``test`` with ``eval_inputs.history`` masked, the
    PROTOCOL.md "train"). ``ranker`` is left prepared on ``eval_inputs``.

    Args:
        ranker: the fitted hybrid.
        graph: side information, item ids.
        fit_inputs: the phase the ranker was fitted in.
        fit_users: the users the ranker was fitted on.
        labels: CSR ``[num_users, num_items]``, the held-out interactions it learned from.
        eval_inputs: the phase to evaluate (e.g. sources refitted on train + valid).
        test: CSR ``[num_users, num_items]`` of test interactions.
        item_text_embeddings: as given to ``prepare``.
        k: the cut-off.
        users: restrict the evaluation to these users.
        sparse_max_train: users with at most this many ``eval_inputs.history`` items
            form the sparse-user row (PROTOCOL.md: 5, or the lowest quintile, stated).
        show_progress: progress bars.
        results: when given, filled with the full :class:`~eval.EvalResult` of each source
            and of ``"hybrid"``, so a caller that reports them need not evaluate again.

    Returns:
        Rows ``{"name", "kind" ("source" | "hybrid" | "ablation"), the EvalResult
        metrics (ndcg, recall, tail_recall, ...), "sparse_ndcg", "sparse_recall",
        "sparse_users", "users"}``: one per source (in the ranker's source order), then
        ``"hybrid"``, then ``"hybrid - {group}"`` per feature group (none when the
        ranker uses a single group; a group whose features were all constant in
        fitting, such as ``content`` without text, is skipped).
    """
    if not ranker.is_fitted:
        raise ValueError("ablation needs a fitted ranker; call ranker.fit() first")
    missing = [s for s in ranker.source_names_ if s not in eval_inputs.source_scorers]
    if missing:
        raise ValueError(f"eval_inputs.source_scorers lacks {missing}; the ranker was fitted on {ranker.source_names_}")

    def run(source: Scorer) -> EvalResult:
        return evaluate(
            source, train=eval_inputs.history, test=test, item_ids=graph.item_ids, k=k, users=users,
            sparse_max_train=sparse_max_train, show_progress=show_progress,
        )  # fmt: skip

    def prepare(model: HybridRanker, inputs: RankerInputs) -> None:
        model.prepare(
            graph, inputs.history, item_text_embeddings=item_text_embeddings,
            history_times=inputs.history_times, source_scorers=inputs.source_scorers,
        )  # fmt: skip

    evaluated = results if results is not None else {}
    for name in ranker.source_names_:
        evaluated[name] = run(eval_inputs.source_scorers[name])
    prepare(ranker, eval_inputs)
    evaluated["hybrid"] = run(ranker.score)
    rows = [_row(name, "source", evaluated[name]) for name in ranker.source_names_]
    rows.append(_row("hybrid", "hybrid", evaluated["hybrid"]))
    constant = set(ranker.diagnostics_.get("constant_features", []))
    if len(ranker.feature_groups) > 1:
        for group in ranker.feature_groups:
            if set(feature_names(ranker.source_names_, (group,))) <= constant:
                continue  # no data for this group in fitting: dropping it changes nothing
            reduced = ranker.with_groups([g for g in ranker.feature_groups if g != group])
            prepare(reduced, fit_inputs)
            fit_scorers = {name: fit_inputs.source_scorers[name] for name in ranker.source_names_}
            reduced.fit(fit_scorers, fit_users, labels, show_progress=show_progress, reuse=ranker)
            prepare(reduced, eval_inputs)
            rows.append(_row(f"hybrid - {group}", "ablation", run(reduced.score)))
    return rows
