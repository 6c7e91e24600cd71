"""Minimum-count and k-core filters over users and items, with a report.

Thresholds count distinct pairs (after deduplication) over every split. They
apply to every user and item node, side-table-only nodes (no pairs) included;
a removed node disappears from the whole graph (its pairs, side-table row,
attribute and KG triples, social edges), and the report says how many nodes
and pairs each filter removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kg.edges import Pairs
from kg.errors import InputError

__all__ = ["filter_nodes", "refuse_emptied"]


def _degrees(pairs: Pairs, keep: np.ndarray, num_users: int, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.bincount(pairs.user[keep], minlength=num_users),
        np.bincount(pairs.item[keep], minlength=num_items),
    )


def filter_nodes(
    pairs: Pairs,
    *,
    num_users: int,
    num_items: int,
    min_user_count: int = 0,
    min_item_count: int = 0,
    k_core: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Which users and items survive the filters.

    ``min_user_count`` and ``min_item_count`` are applied once, together; then
    ``k_core`` removes users and items with fewer than ``k`` pairs repeatedly
    until none is left (the k-core of the bipartite graph).

    Args:
        pairs: every deduplicated pair (all splits).
        num_users, num_items: node counts.
        min_user_count: users with fewer distinct items are removed (0: off).
        min_item_count: items with fewer distinct users are removed (0: off).
        k_core: k of the iterative core (0: off).

    Returns:
        ``(keep_user, keep_item, report)``: boolean masks over nodes and
        ``{filter: {"users_removed", "items_removed", "pairs_removed", ...}}``
        (empty when every filter is off).

    Shapes:
        ``keep_user``: ``[num_users]``; ``keep_item``: ``[num_items]``.
    """
    keep_user = np.ones(num_users, dtype=bool)
    keep_item = np.ones(num_items, dtype=bool)
    alive = np.ones(len(pairs), dtype=bool)
    report: dict[str, Any] = {}

    def record(name: str, new_user: np.ndarray, new_item: np.ndarray, extra: dict[str, Any]) -> None:
        nonlocal alive
        new_alive = alive & new_user[pairs.user] & new_item[pairs.item]
        report[name] = {
            **extra,
            "users_removed": int((keep_user & ~new_user).sum()),
            "items_removed": int((keep_item & ~new_item).sum()),
            "pairs_removed": int((alive & ~new_alive).sum()),
        }
        keep_user[:] = new_user
        keep_item[:] = new_item
        alive = new_alive

    if min_user_count or min_item_count:
        user_degree, item_degree = _degrees(pairs, alive, num_users, num_items)
        record(
            "min_count",
            keep_user & (user_degree >= min_user_count),
            keep_item & (item_degree >= min_item_count),
            {"min_user_count": min_user_count, "min_item_count": min_item_count},
        )
    if k_core:
        rounds = 0
        new_user, new_item = keep_user.copy(), keep_item.copy()
        live = alive.copy()
        while True:
            user_degree, item_degree = _degrees(pairs, live, num_users, num_items)
            next_user = new_user & (user_degree >= k_core)
            next_item = new_item & (item_degree >= k_core)
            if np.array_equal(next_user, new_user) and np.array_equal(next_item, new_item):
                break
            rounds += 1
            new_user, new_item = next_user, next_item
            live = live & new_user[pairs.user] & new_item[pairs.item]
        record("k_core", new_user, new_item, {"k": k_core, "rounds": rounds})
    return keep_user, keep_item, report


_SETTINGS = {"min_count": "--min-user-count / --min-item-count", "k_core": "--k-core"}


def refuse_emptied(report: dict[str, Any], *, num_pairs: int) -> None:
    """Refuse filters that leave no interaction, naming the one that removed the last pairs.

    Args:
        report: what :func:`filter_nodes` returned.
        num_pairs: pairs before the filters.

    Raises:
        InputError: the filters removed every pair.
    """
    left = num_pairs
    for name, step in report.items():
        if left and step["pairs_removed"] >= left:
            settings = ", ".join(f"{k}={v}" for k, v in step.items() if k in ("k", "min_user_count", "min_item_count"))
            raise InputError(
                f"the {name} filter ({settings}) removed every interaction ({left:,} pairs, "
                f"{step['users_removed']:,} users, {step['items_removed']:,} items): an empty graph is not written; "
                f"expected settings that keep some interactions: lower {_SETTINGS.get(name, name)}"
            )
        left -= step["pairs_removed"]
