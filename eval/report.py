"""Evaluation reports: the metrics as markdown and JSON, and PNG plots of every source.

The plots compare models, which is the point of a hybrid recommender: how each
source and the hybrid recall items of each popularity decile, how often each
recommends items along the popularity curve (binned, so a catalogue of thousands
of items stays readable), and how validation NDCG evolved while the GNN and the
ranker trained. They are drawn from :meth:`EvalResult.to_dict` data (what the
model manifest stores), so a report can be redrawn without re-evaluating.
``plots.json`` holds the numbers behind every plot.

Plots are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so no
display, no pyplot global state and no backend switch for the caller. matplotlib is
imported only when a report is written (it adds about a second to every import of
``eval`` otherwise).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from eval.longtail import N_DECILES
from eval.result import EvalResult, write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOT_FILES", "REPORT_FILES", "plot_data", "write_plots", "write_report"]

PLOT_FILES = {
    "recall_by_decile": "recall_by_decile.png",
    "longtail": "longtail_curve.png",
    "training_curves": "training_curves.png",
}
"""Plot name -> file name, as written by :func:`write_plots` (``training_curves`` only with curves)."""

REPORT_FILES = ("metrics.md", "metrics.json", "recall_by_decile.png", "longtail_curve.png")

_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974")

Curves = Mapping[str, Mapping[str, Any]]
"""``name -> {"epoch": [...], "valid_ndcg": [...], "label": str}``: a validation curve per learner."""


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def _style(names: list[str]) -> dict[str, dict[str, Any]]:
    """One colour per model; the hybrid thick and black so it stands out."""
    styles, colours = {}, iter(_PALETTE * 4)
    for name in names:
        if name == "hybrid":
            styles[name] = {"color": "black", "linewidth": 2.4, "zorder": 5}
        else:
            styles[name] = {"color": next(colours), "linewidth": 1.3}
    return styles


def plot_data(results: Mapping[str, Mapping[str, Any]], curves: Optional[Curves] = None) -> dict[str, Any]:
    """The numbers behind every plot: one series per model (and per training curve).

    Args:
        results: model name -> :meth:`EvalResult.to_dict` (all from the same evaluation:
            same users, items and K), in legend order.
        curves: validation curves to plot (see :data:`Curves`), or ``None``.

    Returns:
        ``{"recall_by_decile": {"k", "decile", "users", "series": {name: [10]}},
        "longtail": {"first_rank", "last_rank", "head_size", "train_share",
        "series": {name: [bins]}}, "training_curves": {name: {...}}}`` (the last only
        with curves). NaN recalls (no user in a decile) are ``None``.

    Raises:
        ValueError: no results, or results of different catalogues.
    """
    if not results:
        raise ValueError("plot_data needs at least one evaluation result")
    first = next(iter(results.values()))
    sizes = {name: r.get("n_items") for name, r in results.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"results come from different catalogues (items per model: {sizes})")
    deciles = {
        name: [
            None if d["recall"] is None or not np.isfinite(d["recall"]) else float(d["recall"]) for d in r["deciles"]
        ]
        for name, r in results.items()
    }
    data: dict[str, Any] = {
        "recall_by_decile": {
            "k": first.get("k"),
            "decile": list(range(N_DECILES)),
            "users": [int(d["n_users"]) for d in first["deciles"]],
            "series": deciles,
        }
    }
    tails = {name: r.get("longtail") for name, r in results.items()}
    if all(tails.values()):
        shape = tails[next(iter(tails))]
        data["longtail"] = {
            "k": first.get("k"),
            "first_rank": list(shape["first_rank"]),
            "last_rank": list(shape["last_rank"]),
            "head_size": first.get("head_size"),
            "train_share": list(shape["train_share"]),
            "series": {name: list(t["rec_share"]) for name, t in tails.items()},
        }
    if curves:
        data["training_curves"] = {
            name: {
                "epoch": [int(e) for e in c["epoch"]],
                "valid_ndcg": [float(v) for v in c["valid_ndcg"]],
                "label": str(c.get("label", name)),
            }
            for name, c in curves.items()
            if len(c.get("epoch", ()))
        }
    return data


def _recall_by_decile(data: Mapping[str, Any], title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    series = data["series"]
    styles = _style(list(series))
    top = 0.0
    for name, values in series.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        top = max(top, np.nanmax(y, initial=0.0))
        axes.plot(data["decile"], y, marker="o", markersize=3.5, label=name, **styles[name])
    axes.set_ylim(0, max(top, 0.05) * 1.15)
    axes.set_xticks(data["decile"])
    axes.set_xticklabels([f"{d}\n{n}u" for d, n in zip(data["decile"], data["users"])], fontsize=7)
    axes.set_xlabel("item popularity decile (0 = most popular in train; users with a test item there)")
    axes.set_ylabel(f"Recall@{data['k']} within the decile")
    axes.set_title(f"{title}: recall by popularity decile")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    return figure


def _longtail_curve(data: Mapping[str, Any], title: str) -> Figure:
    from matplotlib.figure import Figure

    first, last = np.array(data["first_rank"]), np.array(data["last_rank"])
    width = last - first + 1
    middle = (first + last) / 2
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    # Per-item mean share within each bin, so bins of different widths compare.
    axes.fill_between(
        middle, np.array(data["train_share"]) / width, color="#BBBBBB", alpha=0.6, label="train interactions"
    )
    series = data["series"]
    styles = _style(list(series))
    peak = max(np.max(np.array(data["train_share"]) / width, initial=0.0), 1e-6)
    for name, shares in series.items():
        y = np.array(shares) / width
        peak = max(peak, y.max(initial=0.0))
        axes.plot(middle, y, marker=".", markersize=3, label=f"{name} top-{data['k']}", **styles[name])
    if data.get("head_size"):
        axes.axvline(data["head_size"] + 0.5, color="grey", linestyle="--", linewidth=1, label="head | tail")
    # symlog keeps never-recommended bins (share 0) on the plot, which a log scale would drop.
    axes.set_yscale("symlog", linthresh=1e-5)
    axes.set_ylim(0, peak * 2)
    axes.set_xlabel(f"items by train popularity (rank; {len(first)} bins of ~{int(np.median(width))} items)")
    axes.set_ylabel("share per item (bin mean)")
    axes.set_title(f"{title}: recommendation frequency vs popularity")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    return figure


def _training_curves(data: Mapping[str, Any], title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    styles = _style(list(data))
    for name, curve in data.items():
        epochs, values = np.array(curve["epoch"]), np.array(curve["valid_ndcg"], dtype=np.float64)
        axes.plot(epochs, values, marker="o", markersize=3, label=curve["label"], **styles[name])
        if np.isfinite(values).any():
            best = int(np.nanargmax(values))
            axes.scatter([epochs[best]], [values[best]], marker="*", s=90, color=styles[name]["color"], zorder=6)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation NDCG")
    # The curves are validation data whatever split the other plots show: drop a "(test)" suffix.
    run = title[: -len(" (test)")] if title.endswith(" (test)") else title
    axes.set_title(f"{run}: validation NDCG while training (* = kept epoch)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def write_plots(
    directory: str | os.PathLike,
    results: Mapping[str, Mapping[str, Any]],
    *,
    curves: Optional[Curves] = None,
    title: str = "graphrec",
) -> list[Path]:
    """Write the PNG plots of :data:`PLOT_FILES` and ``plots.json`` (their numbers).

    Args:
        directory: where the files go (created when missing; other files are left alone).
        results: model name -> :meth:`EvalResult.to_dict`, in legend order.
        curves: validation curves for ``training_curves.png`` (skipped when empty).
        title: prefix of every plot title.

    Returns:
        The paths written: the PNGs in :data:`PLOT_FILES` order, then ``plots.json``.
    """
    directory = _directory(directory)
    data = plot_data(results, curves)
    drawers = {
        "recall_by_decile": _recall_by_decile,
        "longtail": _longtail_curve,
        "training_curves": _training_curves,
    }
    paths = []
    for name, filename in PLOT_FILES.items():
        if data.get(name):
            paths.append(write_atomic(directory / filename, _png(drawers[name](data[name], title))))
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    paths.append(write_atomic(directory / "plots.json", text.encode("utf-8")))
    return paths


def _directory(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"report directory {directory} exists and is not a directory")
    return directory


def write_report(
    result: EvalResult,
    directory: str | os.PathLike,
    *,
    title: str = "graphrec evaluation",
    name: str = "model",
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
    curves: Optional[Curves] = None,
) -> list[Path]:
    """Write ``metrics.md``, ``metrics.json``, ``recall_by_decile.png``, ``longtail_curve.png``, ``plots.json``.

    Each file is written atomically; the directory is created when missing and
    other files in it are left alone.

    Args:
        result: what :func:`eval.evaluate` returned.
        directory: where the files go.
        title: heading of the markdown file and the plots.
        name: the model's label in the plots' legends.
        compare: other models' :meth:`EvalResult.to_dict` from the same evaluation
            (e.g. each source of a hybrid), drawn before ``name`` in every plot.
        curves: validation curves; adds ``training_curves.png``.

    Returns:
        The paths written: ``metrics.md``, ``metrics.json``, the plots, ``plots.json``.
    """
    directory = _directory(directory)
    written = [
        write_atomic(directory / "metrics.md", f"# {title}\n\n{result.to_markdown()}".encode("utf-8")),
        write_atomic(directory / "metrics.json", result.to_json().encode("utf-8")),
    ]
    models = {key: value for key, value in (compare or {}).items() if key != name}
    models[name] = result.to_dict()
    return written + write_plots(directory, models, curves=curves, title=title)
