"""The training report: test metrics of every source and the hybrid, the ablation, timings.

Plain markdown, printed by ``python -m graphrec.train`` and stored in the model
artifact as ``report/report.md``, next to the PNG plots it links
(:data:`eval.report.PLOT_FILES`, written by :func:`eval.report.write_plots`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from eval.report import PLOT_FILES
from training.sources.names import Source

__all__ = ["format_report", "metrics_table", "run_name"]

_COLUMNS = (
    ("recall", "Recall"), ("ndcg", "NDCG"), ("tail_recall", "TailRecall"), ("coverage", "Coverage"),
    ("aplt", "APLT"), ("sparse_ndcg", "sparse NDCG"),
)  # fmt: skip


def run_name(graph_dir: str | os.PathLike, *, demo: bool = False) -> str:
    """What a report calls a run: ``"demo"`` for the demo, else the graph directory's name.

    A directory named just ``graph`` (as in ``<data set>/graph``) is named after its parent.
    """
    if demo:
        return "demo"
    path = Path(os.path.abspath(graph_dir))
    name = path.name
    if name.lower() in {"graph", "graphs", ""} and path.parent.name:
        name = f"{path.parent.name}/{name}"
    return name


def _label(name: str) -> str:
    """What the report calls a row: a source's label, the hybrid in bold, an ablation row by its name."""
    return "**hybrid**" if name == "hybrid" else Source.label_of(name)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4f}"


def _flat(result: Mapping[str, Any]) -> dict[str, Any]:
    """An ``EvalResult.to_dict()`` or an ablation row, as one flat row."""
    row = dict(result)
    if isinstance(result.get("sparse"), Mapping):
        row["sparse_ndcg"] = result["sparse"].get("ndcg")
        row["sparse_users"] = result["sparse"].get("n_users")
    return row


def _sparse_cell(row: Mapping[str, Any]) -> str:
    """Sparse-user NDCG with the number of users behind it: a figure over 16 users moves a lot."""
    cell, users = _cell(row.get("sparse_ndcg")), row.get("sparse_users")
    return cell if users is None or cell == "–" else f"{cell} (n={users})"


def metrics_table(rows: Sequence[tuple[str, Mapping[str, Any]]], k: int) -> str:
    """Markdown table: one row per ``(name, result)``."""
    head = "| model | " + " | ".join(f"{label}@{k}" for _, label in _COLUMNS) + " |"
    lines = [head, "|---|" + "---:|" * len(_COLUMNS)]
    for name, result in rows:
        row = _flat(result)
        cells = " | ".join(_sparse_cell(row) if key == "sparse_ndcg" else _cell(row.get(key)) for key, _ in _COLUMNS)
        lines.append(f"| {_label(name)} | {cells} |")
    return "\n".join(lines)


def format_report(
    *,
    title: str,
    metrics: Mapping[str, Any],
    ablation: Sequence[Mapping[str, Any]],
    timings: Mapping[str, float],
    notes: Mapping[str, Any],
    counts: Mapping[str, int],
    k: int,
    curves: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> str:
    """The whole report as markdown.

    Args:
        title: first heading (e.g. the graph's name).
        metrics: ``PipelineResult.metrics``.
        ablation: ``PipelineResult.ablation`` rows.
        timings: wall seconds per stage.
        notes: the pipeline's notes (skipped sources, best GNN epoch...).
        counts: the graph's counts.
        k: the cut-off.
        curves: ``PipelineResult.training_curves`` (validation NDCG per epoch of the
            GNN and the ranker), summarised and linked to ``training_curves.png``.
    """
    test = metrics.get("test", {})
    lines = [f"# {title}", "", _graph_line(counts), ""]
    lines += _test_section(test, metrics.get("sparse_threshold"), k)
    lines += _ablation(ablation, test, k)
    if test:
        lines += ["## Plots", ""]
        decile_alt = f"Recall@{k} by item popularity decile, every source and the hybrid"
        tail_alt = "How often each model recommends items along the popularity curve"
        lines += [f"![{decile_alt}]({PLOT_FILES['recall_by_decile']})", ""]
        lines += [f"![{tail_alt}]({PLOT_FILES['longtail']})", ""]
    lines += _curves(curves)
    lines += _valid_section(metrics.get("valid", {}), k)
    if timings:
        lines += ["## Wall seconds per stage", ""]
        lines.append("| " + " | ".join(timings) + " |")
        lines.append("|" + "---:|" * len(timings))
        lines.append("| " + " | ".join(f"{seconds:.1f}" for seconds in timings.values()) + " |")
        lines.append("")
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {key}: {value}" for key, value in notes.items()]
        lines.append("")
    return "\n".join(lines)


def _graph_line(counts: Mapping[str, int]) -> str:
    return (
        f"Graph: {counts.get('users', 0):,} users, {counts.get('items', 0):,} items, "
        f"{counts.get('train', 0):,} train + {counts.get('valid', 0):,} valid + {counts.get('test', 0):,} test pairs, "
        f"{counts.get('entities', 0):,} entities."
    )


def _test_section(test: Mapping[str, Any], threshold: Optional[int], k: int) -> list[str]:
    """The test table (sources, then the hybrid), the sparse-user cut and the hybrid's gain over the best source."""
    if not test:
        return []
    lines = [f"## Test (K = {k}, train + valid masked, docs/PROTOCOL.md)", ""]
    order = [n for n in test if n != "hybrid"] + (["hybrid"] if "hybrid" in test else [])
    lines.append(metrics_table([(name, test[name]) for name in order], k))
    lines.append("")
    if threshold is not None:
        lines.append(f"Sparse users: at most {threshold} train items.")
    if "hybrid" in test:
        singles = (n for n in test if n not in ("hybrid", Source.POP))
        best = max(singles, key=lambda n: test[n]["ndcg"], default=None)
        if best is not None:
            gain = test["hybrid"]["ndcg"] / max(test[best]["ndcg"], 1e-12) - 1
            lines.append(f"Hybrid vs best single source ({_label(best)}): NDCG@{k} {100 * gain:+.1f}% relative.")
    lines.append("")
    return lines


def _valid_section(valid: Mapping[str, Any], k: int) -> list[str]:
    """Each source fitted on train, on the validation split, and the ranker's inner-validation NDCG."""
    if not valid:
        return []
    lines = ["## Validation (sources fitted on train)", ""]
    rows = [(name, result) for name, result in valid.items() if isinstance(result, Mapping)]
    lines.append(metrics_table(rows, k))
    if "hybrid_inner_ndcg" in valid:
        lines.append("")
        lines.append(f"Hybrid ranker, NDCG@{k} on its inner validation users: {valid['hybrid_inner_ndcg']:.4f}.")
    lines.append("")
    return lines


def _ablation(ablation: Sequence[Mapping[str, Any]], test: Mapping[str, Any], k: int) -> list[str]:
    """The hybrid refitted without each feature group; sources and the full hybrid are in the test table."""
    rows = [row for row in ablation if row.get("kind", "ablation") == "ablation" and row.get("name") not in test]
    if not rows:
        return []
    # Refits under a cheaper budget (fewer ensemble members) compare with the full hybrid refitted so.
    reference = next((row for row in ablation if row.get("kind") == "reference"), None)
    shown = ([reference] if reference is not None else []) + rows
    lines = [f"## Ablation: the hybrid refitted without each feature group (test, K = {k})", ""]
    lines.append(metrics_table([(row["name"], row) for row in shown], k))
    full = test.get("hybrid", {}).get("ndcg")
    sample = rows[0].get("sample_users")
    if sample:  # the refits ran on a sample of users: compare with the full hybrid on the same users
        note = f"Computed on a seeded sample of {sample} users (`ranker.ablation_users`), against the hybrid on them."
        lines += ["", note]
        full = next((row.get("ndcg") for row in ablation if row.get("kind") == "hybrid"), None)
    against = "the full hybrid (test table)"
    if reference is not None:
        budget = ", ".join(f"{key}={value}" for key, value in reference.get("budget", {}).items())
        lines += ["", f"Every row is refitted under the ablation budget ({budget}); the first keeps every group."]
        full, against = reference.get("ndcg"), "the full hybrid under the same budget"
    if full:
        lines.append("")
        changes = ", ".join(f"{row['name']} {100 * (row['ndcg'] / full - 1):+.1f}%" for row in rows if "ndcg" in row)
        lines.append(f"NDCG@{k} relative to {against}: {changes}.")
    lines.append("")
    return lines


def _curves(curves: Optional[Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """One sentence per validation curve and the link to ``training_curves.png``."""
    curves = {name: c for name, c in (curves or {}).items() if len(c.get("epoch", ()))}
    if not curves:
        return []
    lines = ["## Training curves", ""]
    for name, curve in curves.items():
        values = [v for v in curve["valid_ndcg"] if v is not None and math.isfinite(v)]
        if not values:
            continue
        best = max(range(len(curve["valid_ndcg"])), key=lambda i: _finite(curve["valid_ndcg"][i]))
        lines.append(
            f"- {curve.get('label', name)}: best {curve['valid_ndcg'][best]:.4f} at epoch {curve['epoch'][best]} "
            f"({len(curve['epoch'])} evaluations, last epoch {curve['epoch'][-1]})."
        )
    lines += ["", f"![Validation NDCG per epoch]({PLOT_FILES['training_curves']})", ""]
    return lines


def _finite(value: Any) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
