"""Statistics of a built graph, and their text rendering for the CLI.

:func:`summarize` computes what a person checks first about a new graph:
counts, density, how concentrated interactions are on the most popular 20% of
items, degree statistics, and connected components of the user-item graph
(networkx up to :data:`NETWORKX_MAX_EDGES` edges, ``scipy.sparse.csgraph``
above, and the summary says which). :func:`format_summary` renders a
manifest's metadata (fresh or loaded) as plain text, including what was
detected and what was refused and why.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kg.graph import SPLIT_CODES, Graph

__all__ = ["NETWORKX_MAX_EDGES", "degenerate_warnings", "format_summary", "summarize"]

NETWORKX_MAX_EDGES = 200_000


def _degree_stats(degree: np.ndarray) -> dict[str, float]:
    if not len(degree):
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {
        "min": int(degree.min()),
        "median": float(np.median(degree)),
        "mean": round(float(degree.mean()), 3),
        "max": int(degree.max()),
    }


def _components(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> dict[str, Any]:
    n = num_users + num_items
    if n == 0:
        return {"count": 0, "largest_share": 0.0, "method": "none"}
    if len(users) <= NETWORKX_MAX_EDGES:
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(zip(users.tolist(), (items.astype(np.int64) + num_users).tolist()))
        sizes = [len(c) for c in nx.connected_components(graph)]
        method = "networkx"
    else:
        # CSR straight from the pairs (rows = users, columns = items shifted past the users);
        # interactions are sorted by user already, so no COO round trip.
        if len(users) > 1 and not (users[1:] >= users[:-1]).all():
            order = np.argsort(users, kind="stable")
            users, items = users[order], items[order]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n), out=indptr[1:])
        # float64 data: what csgraph validates to, so it makes no second copy.
        adjacency = sp.csr_matrix((np.ones(len(users)), items + np.int32(num_users), indptr), shape=(n, n))
        _, labels = connected_components(adjacency, directed=False)
        sizes = np.bincount(labels).tolist()
        method = "scipy.sparse.csgraph"
    return {
        "count": len(sizes),
        "largest_share": round(max(sizes) / n, 4),
        "isolated_nodes": int(sum(1 for s in sizes if s == 1)),
        "method": method,
    }


def summarize(graph: Graph) -> dict[str, Any]:
    """Counts, density, top-20% item share, degree stats and components (all splits).

    Returns:
        A JSON-serialisable dict, stored as ``meta["summary"]``.
    """
    inter = graph.interactions
    users = inter["user"].to_numpy()
    items = inter["item"].to_numpy()
    user_degree = np.bincount(users, minlength=graph.num_users)
    item_degree = np.bincount(items, minlength=graph.num_items)
    head = math.ceil(0.2 * graph.num_items)
    top_share = float(np.sort(item_degree)[::-1][:head].sum() / max(len(inter), 1))
    cells = graph.num_users * graph.num_items
    return {
        "counts": graph.counts(),
        "density": float(len(inter) / cells) if cells else 0.0,
        "top20_item_share": round(top_share, 4),
        "user_degree": _degree_stats(user_degree),
        "item_degree": _degree_stats(item_degree),
        "events": int(inter["count"].sum()),
        "components": _components(users, items, graph.num_users, graph.num_items),
    }


def degenerate_warnings(graph: Graph) -> list[str]:
    """What about a built graph's split makes training or evaluation weak or impossible.

    Empty validation or test splits, and users or items without a single train
    pair (a model learns nothing about them from the log). An empty graph or
    one without train pairs is refused by the build before this is asked.

    Returns:
        One sentence per problem (empty when the split is sound), stored as
        ``meta["warnings"]`` and printed by :func:`format_summary`.
    """
    inter = graph.interactions
    split = inter["split"].to_numpy()
    split_meta = graph.meta.get("split", {})
    out = []
    if len(inter) and not (split == SPLIT_CODES["test"]).any():
        hint = (
            f" (train_fraction {split_meta.get('train_fraction')} keeps every pair of a user with few pairs in train)"
            if split_meta.get("method") in ("random", "temporal") else ""
        )
        out.append(f"the test split is empty: nothing to evaluate on{hint}")
    if len(inter) and split_meta.get("valid_fraction", 0) > 0 and not (split == SPLIT_CODES["valid"]).any():
        out.append("the validation split is empty although valid_fraction > 0: the ranker has nothing to fit on")
    train = split == SPLIT_CODES["train"]
    for kind, column, total in (("users", "user", graph.num_users), ("items", "item", graph.num_items)):
        with_train = np.zeros(total, dtype=bool)
        with_train[inter[column].to_numpy()[train]] = True
        missing = int(total - with_train.sum())
        if missing:
            out.append(
                f"{missing:,} of {total:,} {kind} have no train pair (all their pairs are in validation or test, "
                "or they come only from a side table): models learn nothing about them from the log"
            )
    return out


def _lines_for(mapping: Mapping[str, Any], indent: str = "  ") -> list[str]:
    return [f"{indent}{key}: {value}" for key, value in mapping.items()]


def format_summary(meta: Mapping[str, Any]) -> str:
    """Plain-text report of a graph's metadata (``graph.meta`` or a loaded manifest)."""
    summary = meta.get("summary", {})
    counts = summary.get("counts", meta.get("counts", {}))
    out = ["graph summary"]
    out.append(
        "  users {users:,}  items {items:,}  interactions {interactions:,} "
        "(train {train:,} / valid {valid:,} / test {test:,})".format(**{k: counts.get(k, 0) for k in
            ("users", "items", "interactions", "train", "valid", "test")})
    )
    out.append(
        f"  entities {counts.get('entities', 0):,}  relations {counts.get('relations', 0):,}  "
        f"triples {counts.get('triples', 0):,}  social edges {counts.get('social', 0):,}"
    )
    if summary:
        out.append(f"  events {summary['events']:,} collapsed into {counts.get('interactions', 0):,} pairs")
        out.append(f"  density {summary['density']:.6f}  top-20% items hold {summary['top20_item_share']:.1%} of interactions")
        for kind in ("user", "item"):
            d = summary[f"{kind}_degree"]
            out.append(f"  {kind} degree: min {d['min']}  median {d['median']:g}  mean {d['mean']:g}  max {d['max']}")
        c = summary["components"]
        out.append(
            f"  connected components (user-item, {c['method']}): {c['count']:,}, largest holds "
            f"{c['largest_share']:.1%} of nodes, {c.get('isolated_nodes', 0):,} isolated"
        )
    split = meta.get("split", {})
    if split:
        fraction = "" if split.get("method") == "given" else f", train_fraction {split.get('train_fraction')}"
        out.append(f"split: {split.get('method')} (seed {split.get('seed')}{fraction}, validation {split.get('validation')})")
        if split.get("given_pairs_removed_from_train"):
            out.append(f"  {split['given_pairs_removed_from_train']:,} pairs in both train and test kept in test only")
    detected = meta.get("detected", {})
    if detected:
        out.append("detected:")
        if meta.get("recbole_siblings"):
            out.append(f"  RecBole side files: {meta['recbole_siblings']}")
        if detected.get("interaction_columns"):
            out.append(f"  interaction columns: {detected['interaction_columns']}")
        for kind in ("item", "user"):
            for column, why in detected.get(f"{kind}_columns", {}).items():
                role = meta.get("column_roles", {}).get(f"{kind}s", {}).get(column)
                out.append(f"  {kind} column {column!r}: {role} ({why})")
        for path, facts in detected.get("files", {}).items():
            if facts:
                out.append(f"  {path}: " + ", ".join(f"{k} {v!r}" for k, v in facts.items()))
    for name in ("filters", "kg", "social"):
        if meta.get(name):
            out.append(f"{name}:")
            out.extend(_lines_for(meta[name]))
    warnings = meta.get("warnings", [])
    if warnings:
        out.append("warnings:")
        out.extend(f"  {w}" for w in warnings)
    rejected = meta.get("rejected", {})
    if rejected:
        examples = meta.get("rejected_examples", {})
        out.append("rejected rows (lenient mode):")
        for path, reasons in rejected.items():
            for reason, count in reasons.items():
                shown = "; ".join(
                    f"line {e.get('line', '?')}" + (f" {e['value']}" if "value" in e else "")
                    for e in examples.get(path, {}).get(reason, [])
                )
                out.append(f"  {path}: {reason}: {count:,}" + (f" (e.g. {shown})" if shown else ""))
    else:
        out.append("rejected rows: none")
    return "\n".join(out)
