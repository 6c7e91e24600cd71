"""The demo path of ``python -m graphrec.train`` with no arguments: generate, write, build.

The demo goes through exactly what a user's data goes through: the synthetic
generator writes the usual files (Parquet log, item/user tables, KG triples,
social edges) and :func:`kg.build_graph` turns them into a graph artifact.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from graphrec.datasets import SyntheticConfig, generate, write
from kg.build import build_graph
from kg.config import BuildConfig

__all__ = ["DEMO_EVENT_WEIGHTS", "DEMO_SIZES", "build_demo"]

DEMO_EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "purchase": 5.0}
"""How much each demo event type weighs in the graph (a purchase says more than a view)."""

DEMO_SIZES = {
    "tiny": SyntheticConfig(num_users=300, num_items=200, num_interactions=6_000, num_topics=6),
    "small": SyntheticConfig(num_users=1_000, num_items=600, num_interactions=25_000, num_topics=8),
    "default": SyntheticConfig(),
}
"""Demo sizes: ``tiny`` (tests), ``small`` (the no-argument ``train``), ``default`` (the generator's defaults)."""


def build_demo(directory: str | os.PathLike, *, size: str = "small", seed: int = 2026, overwrite: bool = False) -> Path:
    """Write the demo files into ``directory/data`` and build ``directory/graph``.

    An existing, complete demo graph is reused (building is deterministic from the seed).

    Args:
        directory: where ``data/`` and ``graph/`` go.
        size: one of :data:`DEMO_SIZES`.
        seed: the generator's seed (the split keeps its own default seed).
        overwrite: rebuild even when a demo graph exists.

    Returns:
        The graph artifact directory.

    Raises:
        ValueError: unknown ``size``.
    """
    if size not in DEMO_SIZES:
        raise ValueError(f"size must be one of {', '.join(DEMO_SIZES)}, got {size!r}")
    directory = Path(directory)
    graph_dir = directory / "graph"
    if (graph_dir / "manifest.json").is_file() and not overwrite:
        return graph_dir
    config = DEMO_SIZES[size]
    files = write(generate(replace(config, seed=seed)), directory / "data", overwrite=True)
    build = BuildConfig(
        interactions=str(files.interactions), items=str(files.items), users=str(files.users),
        kg=str(files.kg), social=str(files.social),
        event_weights=DEMO_EVENT_WEIGHTS,
    )  # fmt: skip
    graph = build_graph(build)
    graph.save(graph_dir, overwrite=True)
    return graph_dir
