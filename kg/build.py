"""Logs and side tables in, a :class:`kg.graph.Graph` out: :func:`build_graph`.

Order of work, each step in its own module:

1. read and validate the log (and the test file) in streamed batches,
   registering ids (:mod:`kg.interactions`, :mod:`kg.ids`);
2. read the item and user tables and the social edges, whose ids join the
   node sets (:mod:`kg.sidetables`, :mod:`kg.knowledge`);
3. sort ids into final indices; deduplicate events into pairs (:mod:`kg.edges`);
4. apply the count / k-core filters (:mod:`kg.filters`) and split
   (:mod:`kg.split`);
5. turn attribute columns and KG triples into entities, relations and typed
   triples (:mod:`kg.attributes`, :mod:`kg.knowledge`);
6. record everything a reader of the artifact needs to trust it in
   ``Graph.meta``: the resolved config, column roles, what was detected, the
   split settings, the filter report and the per-file, per-reason report of
   refused rows (:mod:`kg.summary` adds the statistics).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from kg.attributes import AttributeEdges, ColumnRoles, attribute_edges, detect_roles
from kg.config import BuildConfig
from kg.edges import Events, dedup_events
from kg.errors import InputError, Rejections
from kg.filters import filter_nodes, refuse_emptied
from kg.graph import SPLIT_CODES, Graph
from kg.ids import IdEncoder
from kg.interactions import read_events
from kg.knowledge import read_kg_edges, read_link, read_social, social_frame
from kg.readers import open_table, recbole_siblings
from kg.sidetables import SideTable, node_rows, read_side_table
from kg.split import assign_splits, merge_given
from kg.summary import degenerate_warnings, summarize
from kg.tables import knowledge_tables, side_frame, string_column

__all__ = ["build_graph", "resolve_inputs"]


def resolve_inputs(config: BuildConfig) -> tuple[BuildConfig, dict[str, str]]:
    """Fill in RecBole sibling files the config leaves open.

    With ``format="recbole"`` (or ``auto`` on a ``.inter`` file), ``.item``,
    ``.user``, ``.kg`` and ``.link`` files with the log's stem are used for the
    side tables not given explicitly.

    Returns:
        ``(config, found)``: the config with those paths set, and ``{role: path}``
        of the siblings it picked up.

    Raises:
        ValueError: no interaction log configured.
    """
    if config.interactions is None:
        raise ValueError("interactions is required: the path of the interaction log (--interactions)")
    fmt = config.format
    if fmt == "auto" and Path(config.interactions).suffix.lower() == ".inter":
        fmt = "recbole"
    if fmt != "recbole":
        return config, {}
    found = {role: os.fspath(path) for role, path in recbole_siblings(config.interactions).items() if getattr(config, role) is None}
    return (config.replace(**found) if found else config), found


def build_graph(
    config: BuildConfig, *, show_progress: bool = False, progress: Optional[Callable[..., Any]] = None
) -> Graph:
    """Build the graph the config describes.

    Args:
        config: what to read and how (see :class:`kg.BuildConfig`).
        show_progress: progress bars while reading large logs.
        progress: their factory (tqdm's arguments; default ``tqdm``); the CLI passes
            :func:`eval.progress.progress_bar` (``kg`` imports no project code).

    Returns:
        The graph; ``graph.meta`` holds the manifest metadata (``build_config``,
        ``item_text_columns``, ``item_attribute_columns``, ``split``, ``rejected``,
        ``rejected_examples``, ``filters``, ``detected``, ``summary``, ...).

    Raises:
        InputError: bad input (strict mode): names file, line and column; an empty
            graph (every row refused, or a filter that removes every interaction) or
            a split without training pairs.
        ValueError: an unusable configuration (e.g. a temporal split without timestamps).
    """
    started = time.perf_counter()
    config, siblings = resolve_inputs(config)
    run = _Run(config, Rejections(lenient=config.lenient, max_examples=config.max_examples))
    _read_inputs(run, show_progress=show_progress, progress=progress)
    pairs, given_test, overlap, social_pairs = _pairs(run)
    pairs, split, keep_user, keep_item, filter_report = _filter_and_split(run, pairs, given_test, overlap)
    frames, roles, buckets, attr_edges = _side_tables(run, keep_user, keep_item)
    (entities, relations, triples), kg_report = _knowledge(run, attr_edges)
    social, social_report = None, {}
    if social_pairs is not None:
        social, social_report = social_frame(*social_pairs, user_map=run.user_map)

    interactions = pd.DataFrame(
        {"user": pairs.user, "item": pairs.item, "weight": pairs.weight, "count": pairs.count,
         "timestamp": pairs.timestamp, "split": split},
        copy=False,
    )
    del pairs
    meta = _meta(
        config, siblings=siblings, logs=run.logs, roles=roles, notes=run.notes, method=config.split_method,
        overlap=overlap, filter_report=filter_report, rejections=run.rejections, buckets=buckets, kg_report=kg_report,
        social_report=social_report,
    )
    graph = Graph(
        interactions=interactions, items=frames["item"], users=frames["user"], entities=entities,
        relations=relations, triples=triples, social=social, meta=meta,
    )
    graph.meta["summary"] = summarize(graph)
    graph.meta["warnings"] = degenerate_warnings(graph)
    graph.meta["build_seconds"] = round(time.perf_counter() - started, 3)
    return graph


@dataclass
class _Run:
    """What the phases of one :func:`build_graph` share: the config, the id encoders, what was read."""

    config: BuildConfig
    rejections: Rejections
    users: IdEncoder = field(default_factory=lambda: IdEncoder("user"))
    items: IdEncoder = field(default_factory=lambda: IdEncoder("item"))
    notes: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, SideTable] = field(default_factory=dict)
    social_batches: Any = None
    side_index: dict[str, np.ndarray] = field(default_factory=dict)
    user_map: Optional[np.ndarray] = None
    item_map: Optional[np.ndarray] = None

    @property
    def read(self) -> dict[str, Any]:
        """The keyword arguments every reader takes."""
        return dict(rejections=self.rejections, encoding=self.config.encoding, batch_rows=self.config.batch_rows)


def _read_inputs(run: _Run, *, show_progress: bool, progress: Optional[Callable[..., Any]]) -> None:
    """Phases 1-2: everything that defines nodes, ids registered as they stream past."""
    config = run.config
    explicit_roles = {
        "user": config.user_column, "item": config.item_column, "timestamp": config.timestamp_column,
        "event": config.event_column, "weight": config.weight_column,
    }
    for role in ("interactions", "test"):
        path = getattr(config, role)
        if path is None:
            continue
        source = open_table(
            path, format=config.format, delimiter=config.delimiter, header=config.header, columns=config.columns,
            **run.read,
        )
        run.logs[role] = read_events(
            source, users=run.users, items=run.items, rejections=run.rejections, explicit_roles=explicit_roles,
            event_weights=config.event_weights, show_progress=show_progress, progress=progress,
        )
        run.notes[os.fspath(path)] = source.notes
    if config.split_method == "temporal" and run.logs["interactions"].timestamp is None:
        raise ValueError(
            f"the temporal split needs a timestamp column; {config.interactions} has none "
            f"(its columns map to {run.logs['interactions'].roles}); pass --timestamp-column"
        )
    for kind, path, id_name in (("item", config.items, config.item_id_column), ("user", config.users, config.user_id_column)):
        if path is not None:
            encoder = run.items if kind == "item" else run.users
            run.tables[kind] = read_side_table(path, kind=kind, encoder=encoder, id_column_name=id_name, **run.read)
            run.notes[run.tables[kind].path] = run.tables[kind].notes
    if config.social is not None:
        run.social_batches = read_social(config.social, users=run.users, **run.read)


def _pairs(run: _Run):
    """Phase 3: final indices; events deduplicated into pairs; the given test merged.

    Returns ``(pairs, given_test, overlap, social_pairs)``.
    """
    config, users, items = run.config, run.users, run.items
    users.finish()
    items.finish()
    pa.default_memory_pool().release_unused()
    num_users, num_items = len(users), len(items)
    pair_parts = {}
    for role, log in run.logs.items():
        # The per-event arrays are handed over (no reference kept here), so dedup frees each as
        # soon as it is folded into the pairs: memory stays bounded by the compact arrays.
        events = Events(users.codes(log.user_batches), items.codes(log.item_batches), *log.take_arrays())
        pa.default_memory_pool().release_unused()
        pair_parts[role] = dedup_events(events, num_items=num_items)
    run.side_index = {kind: (users if kind == "user" else items).codes(t.handle) for kind, t in run.tables.items()}
    social_pairs = None
    if run.social_batches is not None:
        social_pairs = users.codes(run.social_batches[0]), users.codes(run.social_batches[1])
        known = np.zeros(num_users, dtype=bool)
        for part in pair_parts.values():
            known[part.user] = True
        if "user" in run.side_index:
            known[run.side_index["user"]] = True
        run.notes[config.social] = {"users only in the social edges": int(num_users - known.sum())}
    overlap = 0
    if config.split_method == "given":
        pairs, given_test, overlap = merge_given(pair_parts["interactions"], pair_parts["test"], num_items=num_items)
    else:
        pairs, given_test = pair_parts["interactions"], None
    del pair_parts
    if len(pairs) == 0:
        refused = "; ".join(f"{path}: {reasons}" for path, reasons in run.rejections.report().items())
        raise InputError(
            f"no interaction left to build a graph from: every row was refused ({refused or 'none kept'}); "
            "expected at least one valid (user, item) row",
            path=config.interactions,
        )
    return pairs, given_test, overlap, social_pairs


def _filter_and_split(run: _Run, pairs, given_test, overlap: int):
    """Phase 4: count / k-core filters (nodes renumbered), then the split.

    Returns ``(pairs, split codes, keep_user, keep_item, filter report)``; sets ``run.user_map``/``item_map``.
    """
    config, method = run.config, run.config.split_method
    keep_user, keep_item, filter_report = filter_nodes(
        pairs, num_users=len(run.users), num_items=len(run.items), min_user_count=config.min_user_count,
        min_item_count=config.min_item_count, k_core=config.k_core,
    )
    refuse_emptied(filter_report, num_pairs=len(pairs))
    run.user_map, run.item_map = _compact(keep_user), _compact(keep_item)
    if not (keep_user.all() and keep_item.all()):
        alive = keep_user[pairs.user] & keep_item[pairs.item]
        pairs = pairs.take(alive)
        pairs.user = run.user_map[pairs.user].astype(np.int32)
        pairs.item = run.item_map[pairs.item].astype(np.int32)
        if given_test is not None:
            given_test = given_test[alive]
    split = assign_splits(
        pairs, method=method, seed=config.seed, train_fraction=config.train_fraction,
        valid_fraction=config.valid_fraction, given_test=given_test,
    )
    pa.default_memory_pool().release_unused()  # the sorts' index buffers
    if not (split == SPLIT_CODES["train"]).any():
        why = (
            f"every pair of {config.interactions} is also in the test file {config.test} (a pair in both is kept in "
            "test only); expected a test file of held-out pairs, not a copy of the training log"
            if method == "given" and overlap else f"the {method} split put every pair in validation or test"
        )
        raise InputError(f"no training pairs: {why}", path=config.test if method == "given" else config.interactions)
    return pairs, split, keep_user, keep_item, filter_report


def _side_tables(run: _Run, keep_user: np.ndarray, keep_item: np.ndarray):
    """Phase 5a: item and user tables: column roles, attribute edges, the tables the artifact keeps.

    Returns ``(frames, roles, buckets, attribute edges)`` keyed by ``"item"`` / ``"user"``.
    """
    frames, roles, attr_edges, buckets = {}, {}, [], {}
    for kind, ids, keep, node_map in (
        ("item", run.items.ids.filter(pa.array(keep_item)), keep_item, run.item_map),
        ("user", run.users.ids.filter(pa.array(keep_user)), keep_user, run.user_map),
    ):
        table = run.tables.get(kind)
        if table is None:
            frames[kind] = pd.DataFrame({f"{kind}_id": string_column(ids)})
            roles[kind] = ColumnRoles(roles={})
            continue
        roles[kind] = detect_roles(
            table.chunk.table, table.types, explicit=_explicit_roles(run.config, kind),
            multi_separator=run.config.multi_separator, numeric_buckets=run.config.numeric_buckets,
            text_min_length=run.config.text_min_length, path=table.path,
        )
        node = node_map[run.side_index[kind]]
        edges, column_buckets = attribute_edges(
            table.chunk, roles[kind], node, numeric_buckets=run.config.numeric_buckets,
            path=table.path, rejections=run.rejections,
        )
        alive = edges.node >= 0
        edges = AttributeEdges(edges.node[alive], edges.relation.filter(pa.array(alive)),
                               edges.entity_id.filter(pa.array(alive)), edges.entity_name.filter(pa.array(alive)))
        attr_edges.append((kind, edges))
        buckets[kind] = column_buckets
        rows = node_rows(run.side_index[kind], len(keep))[keep]
        if (rows < 0).any():
            run.notes[table.path][f"{kind}s without a row here"] = int((rows < 0).sum())
        frames[kind] = side_frame(table, roles[kind], rows, ids)
    return frames, roles, buckets, attr_edges


def _knowledge(run: _Run, attr_edges):
    """Phase 5b: the KG file's triples (items through the link file) joined with the attribute edges.

    Returns ``((entities, relations, triples), kg report)``.
    """
    config, kg, kg_report = run.config, None, {}
    if config.kg is not None:
        kg, kg_report = read_kg_edges(config.kg, items=run.items, link_path=config.link, item_map=run.item_map, **run.read)
    elif config.link is not None:
        read_link(config.link, items=run.items, **run.read)  # checked, though nothing uses it without a KG
        run.notes.setdefault(os.fspath(config.link), {})["unused"] = "no KG file to link to"
    return knowledge_tables(attr_edges, kg), kg_report


def _compact(keep: np.ndarray) -> np.ndarray:
    """Old index -> new index after removing nodes (-1 for removed ones)."""
    return np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)


def _explicit_roles(config: BuildConfig, kind: str) -> dict[str, tuple[str, ...] | None]:
    return {role: getattr(config, f"{kind}_{role}_columns") for role in ("text", "categorical", "multi", "numeric")}


def _meta(config, *, siblings, logs, roles, notes, method, overlap, filter_report, rejections, buckets, kg_report, social_report):
    item_roles, user_roles = roles["item"], roles["user"]
    attribute_roles = ("categorical", "multi", "numeric")
    log = logs["interactions"]
    return {
        "build_config": config.to_dict(),
        "recbole_siblings": siblings,
        "interaction_columns": log.roles,
        "item_text_columns": item_roles.columns("text"),
        "item_attribute_columns": item_roles.columns(*attribute_roles),
        "user_text_columns": user_roles.columns("text"),
        "user_attribute_columns": user_roles.columns(*attribute_roles),
        "column_roles": {"items": item_roles.roles, "users": user_roles.roles},
        "detected": {
            "interaction_columns": log.detected,
            "item_columns": item_roles.detected,
            "user_columns": user_roles.detected,
            "files": notes,
        },
        "numeric_buckets": buckets,
        "events": {
            role: {"rows_read": lg.rows_read, "event_types": lg.event_counts} for role, lg in logs.items()
        },
        "split": {
            "method": method,
            "seed": config.seed,
            "train_fraction": config.train_fraction,
            "valid_fraction": config.valid_fraction,
            "validation": "none" if config.valid_fraction == 0 else ("temporal" if method == "temporal" else f"random, seed {config.seed + 1}"),
            "given_pairs_removed_from_train": overlap,
        },
        "filters": filter_report,
        "kg": kg_report,
        "social": social_report,
        "rejected": rejections.report(),
        "rejected_examples": rejections.examples(),
    }
