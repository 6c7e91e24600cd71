"""Evaluation reports: the metrics as markdown and JSON, and two PNG plots.

Plots are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so no
display, no pyplot global state and no backend switch for the caller. matplotlib is
imported only when a report is written (it adds about a second to every import of
``eval`` otherwise).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eval.longtail import N_DECILES
from eval.result import EvalResult, write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["REPORT_FILES", "write_report"]

REPORT_FILES = ("metrics.md", "metrics.json", "recall_by_decile.png", "longtail_curve.png")


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def _recall_by_decile(result: EvalResult, title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    recalls = np.array([d["recall"] for d in result.deciles], dtype=np.float64)
    positions = np.arange(N_DECILES)
    axes.bar(positions, np.nan_to_num(recalls, nan=0.0), color="#4C72B0")
    for x, (value, decile) in enumerate(zip(recalls, result.deciles)):
        label = "n/a" if not np.isfinite(value) else f"{value:.3f}"
        height = value if np.isfinite(value) else 0.0
        axes.annotate(f"{label}\n{decile['n_users']}u", (x, height), ha="center", va="bottom", fontsize=7)
    axes.set_ylim(0, max(np.nanmax(recalls, initial=0.0), 0.05) * 1.2)
    axes.set_xticks(positions)
    axes.set_xlabel("item popularity decile (0 = most popular in train)")
    axes.set_ylabel(f"Recall@{result.k} within the decile")
    axes.set_title(f"{title}: recall by popularity decile")
    return figure


def _longtail_curve(result: EvalResult, title: str) -> Figure:
    from matplotlib.figure import Figure

    order = result.popularity_order
    rank = np.arange(1, len(order) + 1)
    train_share = result.train_counts[order] / max(result.train_counts.sum(), 1)
    rec_share = result.rec_counts[order] / max(result.rec_counts.sum(), 1)
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    axes.plot(rank, train_share, color="#4C72B0", label="share of train interactions")
    axes.scatter(rank, rec_share, s=4, color="#DD8452", label=f"share of top-{result.k} slots")
    axes.axvline(result.head_size + 0.5, color="grey", linestyle="--", linewidth=1, label="head | tail")
    # symlog keeps never-recommended items (share 0) on the plot, which a log scale would drop.
    axes.set_yscale("symlog", linthresh=1e-5)
    axes.set_ylim(0, max(train_share.max(initial=0.0), rec_share.max(initial=0.0), 1e-5) * 2)
    axes.set_xlabel("items by train popularity (rank)")
    axes.set_ylabel("share")
    axes.set_title(f"{title}: recommendation frequency vs popularity")
    axes.legend(fontsize=8)
    return figure


def write_report(result: EvalResult, directory: str | os.PathLike, *, title: str = "graphrec evaluation") -> list[Path]:
    """Write ``metrics.md``, ``metrics.json``, ``recall_by_decile.png`` and ``longtail_curve.png``.

    Each file is written atomically; the directory is created when missing and
    other files in it are left alone.

    Args:
        result: what :func:`eval.evaluate` returned.
        directory: where the files go.
        title: heading of the markdown file and the plots.

    Returns:
        The paths written, in :data:`REPORT_FILES` order.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"report directory {directory} exists and is not a directory")
    contents = {
        "metrics.md": f"# {title}\n\n{result.to_markdown()}".encode("utf-8"),
        "metrics.json": result.to_json().encode("utf-8"),
        "recall_by_decile.png": _png(_recall_by_decile(result, title)),
        "longtail_curve.png": _png(_longtail_curve(result, title)),
    }
    return [write_atomic(directory / name, contents[name]) for name in REPORT_FILES]
