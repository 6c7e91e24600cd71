"""What :func:`eval.evaluate` returns, and its JSON and markdown renderings."""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = ["METRIC_KEYS", "EvalResult", "write_atomic"]

METRIC_KEYS = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map", "tail_recall", "aplt", "coverage", "gini")
"""The metric names of :attr:`EvalResult.metrics`, in report order."""

_LABELS = {
    "recall": "Recall",
    "ndcg": "NDCG",
    "precision": "Precision",
    "hit_rate": "HitRate",
    "mrr": "MRR",
    "map": "MAP",
    "tail_recall": "TailRecall",
    "aplt": "APLT",
    "coverage": "Coverage",
    "gini": "Gini",
}


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling and a rename.

    A crash never leaves a half-written file at ``path``. (``eval/`` may not
    import ``kg.artifact``; this is the single-file case only.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0o666 & ~umask like any output (mkstemp's 0o600 would make reports owner-only).
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


@dataclass
class EvalResult:
    """Metrics of one evaluation (docs/PROTOCOL.md).

    Attributes:
        metrics: ``recall``, ``ndcg``, ``precision``, ``hit_rate``, ``mrr``, ``map``,
            ``aplt`` (means over the ``n_users`` evaluated users), ``tail_recall``
            (over the ``n_tail_users`` users with a tail test item), ``coverage``,
            ``gini`` (over all lists). NaN where no user qualifies.
        k: the cut-off.
        n_users: users evaluated (those with at least one test item).
        sparse: ``threshold``, ``n_users``, ``recall``, ``ndcg`` of the users with at
            most ``threshold`` train items.
        deciles: 10 dicts, most popular first: ``decile``, ``n_items``,
            ``min_train_count``/``max_train_count``, ``recall`` (over users with a
            test item in the decile: hits in the decile / test items in the decile,
            averaged; NaN when none), ``n_users`` (that many), ``n_test_items``,
            ``n_hits``, ``rec_share`` (fraction of all recommendations in the decile).
        rec_counts: int64 ``[n_items]``, how often each item was recommended.
        train_counts: int64 ``[n_items]``, train interactions per item (popularity).
        popularity_order: int64 ``[n_items]``, item indices most popular first
            (docs/PROTOCOL.md tie-break); the head is its first ``head_size`` entries.
        head_size: ``ceil(0.2 * n_items)``.
        n_tail_users: users behind ``tail_recall``.
        n_short_lists: users whose list held fewer than ``k`` items.
        n_empty_lists: users with no list at all (counted in ``n_short_lists`` too).
        n_train_listed: train items found in the lists (0 for a scorer: masked).
        seconds: wall seconds to rank and score every evaluated user.
    """

    metrics: dict[str, float]
    k: int
    n_users: int
    sparse: dict[str, Any]
    deciles: list[dict[str, Any]]
    rec_counts: np.ndarray
    train_counts: np.ndarray
    popularity_order: np.ndarray
    head_size: int
    n_tail_users: int
    n_short_lists: int = 0
    n_empty_lists: int = 0
    n_train_listed: int = 0
    seconds: float = 0.0

    @property
    def n_items(self) -> int:
        return int(len(self.rec_counts))

    def longtail(self) -> dict[str, list]:
        """The binned long-tail curve (:func:`eval.longtail.binned_shares`): what the report plots."""
        from eval.longtail import binned_shares

        return binned_shares(self.train_counts, self.rec_counts, self.popularity_order)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: the metric keys at top level (NaN as ``None``), then
        ``k``, ``n_users``, ``n_items``, ``head_size``, ``n_tail_users``, ``sparse``,
        ``deciles``, ``longtail`` (:meth:`longtail`), ``lists`` (short/empty/train-item
        counts) and ``seconds``."""
        out: dict[str, Any] = {key: self.metrics[key] for key in METRIC_KEYS}
        out.update(
            k=self.k,
            n_users=self.n_users,
            n_items=self.n_items,
            head_size=self.head_size,
            n_tail_users=self.n_tail_users,
            sparse=dict(self.sparse),
            deciles=[dict(d) for d in self.deciles],
            longtail=self.longtail(),
            lists={
                "short": self.n_short_lists,
                "empty": self.n_empty_lists,
                "train_items_listed": self.n_train_listed,
            },
            seconds=self.seconds,
        )
        return _jsonable(out)

    def to_json(self, path: Optional[str | os.PathLike] = None) -> str:
        """The :meth:`to_dict` JSON text; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        if path is not None:
            write_atomic(path, text.encode("utf-8"))
        return text

    def notes(self) -> list[str]:
        """Sentences about how the lists were handled, for reports (empty when nothing to say)."""
        notes = []
        if self.n_short_lists:
            notes.append(
                f"{self.n_short_lists} of {self.n_users} users had fewer than {self.k} items "
                f"({self.n_empty_lists} had none); they were evaluated as short lists."
            )
        if self.n_train_listed:
            notes.append(
                f"{self.n_train_listed} recommended items are the user's train items; "
                "the lists were evaluated as given (not removed)."
            )
        return notes

    def to_markdown(self) -> str:
        """Markdown: the metrics table, the sparse-user row, the per-decile table, notes."""
        k = self.k
        lines = [f"| metric | @{k} |", "|---|---:|"]
        for key in METRIC_KEYS:
            label = f"{_LABELS[key]}@{k}"
            if key == "tail_recall":
                label += f" ({self.n_tail_users} users)"
            lines.append(f"| {label} | {_fmt(self.metrics[key])} |")
        sparse = self.sparse
        lines += [
            "",
            f"Evaluated users: {self.n_users}; items: {self.n_items}; head: {self.head_size} items.",
            "",
            f"| users | n | Recall@{k} | NDCG@{k} |",
            "|---|---:|---:|---:|",
            f"| sparse (<= {sparse['threshold']} train items) | {sparse['n_users']} | "
            f"{_fmt(sparse['recall'])} | {_fmt(sparse['ndcg'])} |",
            f"| all | {self.n_users} | {_fmt(self.metrics['recall'])} | {_fmt(self.metrics['ndcg'])} |",
            "",
            f"Per popularity decile (0 = most popular; Recall@{k} over users with a test item in the decile: "
            "hits in the decile / test items in the decile):",
            "",
            f"| decile | items | train count | test items | users | Recall@{k} | share of recs |",
            "|---:|---:|---|---:|---:|---:|---:|",
        ]
        for d in self.deciles:
            lines.append(
                f"| {d['decile']} | {d['n_items']} | {d['min_train_count']}-{d['max_train_count']} | "
                f"{d['n_test_items']} | {d['n_users']} | {_fmt(d['recall'])} | {d['rec_share']:.4f} |"
            )
        notes = self.notes()
        if notes:
            lines += [""] + [f"Note: {n}" for n in notes]
        return "\n".join(lines) + "\n"
