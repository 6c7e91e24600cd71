"""Render ``bench/scale.py``'s results (``bench/results/scale.json``) as its BENCHMARKS.md section.

The section goes to ``bench/results/scale.md`` (what ``bench/merge_results.py``
assembles) and replaces the text between its markers in BENCHMARKS.md (appended
when the markers are absent), leaving every other section as it is.
"""

from __future__ import annotations

from pathlib import Path

from merge_results import write_marked_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"
TRAIN_STAGES = ("text", "als", "neighbors", "gnn", "ranker", "evaluate")
GROWTH = ("synth-1m", "synth-10m", "synth-30m")


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _step(row: dict, step: str, key: str):
    result = row["steps"].get(step)
    return None if result is None else result.get(key)


def _columns(row: dict) -> dict[str, object]:
    """Figures of one row by column; ``None`` where the step did not run (or was cached)."""
    stages = row.get("train_stages", {})
    running = row.get("train_running")
    rec_wall = _step(row, "recommend", "wall_s")
    users = row.get("recommend_users")
    walls = [_step(row, s, "wall_s") for s in ("build", "train", "recommend")]
    return {
        "generate s": _step(row, "generate", "wall_s"),
        "build s": _step(row, "build", "wall_s"),
        **{f"{s} s": stages.get(s) for s in TRAIN_STAGES},
        **({f"{running['stage']} s": f"> {running['elapsed_s']:,.0f} (stopped)"} if running else {}),
        "train s": _step(row, "train", "wall_s"),
        "recommend s": rec_wall,
        "users/s": round(users / rec_wall) if users and rec_wall else None,
        "build+train+recommend s": round(sum(walls), 1) if all(walls) else None,
        "build RSS MiB": _step(row, "build", "peak_rss_mib"),
        "train RSS MiB": _step(row, "train", "peak_rss_mib"),
        "recommend RSS MiB": _step(row, "recommend", "peak_rss_mib"),
    }


def _table(rows: list[dict]) -> list[str]:
    cols = list(_columns(rows[0]))
    head = ["data", "commit", "device", *cols, "status"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * len(cols) + "---|"]
    for row in rows:
        values = _columns(row)
        commit = row["git"]["commit"] + ("+dirty" if row["git"]["dirty"] else "")
        cells = [row["data"], commit, row.get("device") or "-", *(_num(v) for v in values.values())]
        status = row["stopped"] or "ok"
        runs = (row["steps"].get("train") or {}).get("runs", 1)
        if runs > 1:
            status += f"; train in {runs} runs (`--resume`; train s sums them)"
        lines.append("| " + " | ".join(cells + [status]) + " |")
    return lines


def _text_columns(row: dict) -> str:
    """Item text columns: named on the build command line, else as the build detected them."""
    args = (_step(row, "build", "cmd") or "").split()
    if "--item-text-columns" in args:
        return args[args.index("--item-text-columns") + 1].replace(",", ", ") + " (given)"
    return ", ".join(row.get("text_columns", [])) or "-"


def _sizes_and_quality(rows: list[dict]) -> list[str]:
    head = ["data", "users", "items", "train pairs", "entities", "hybrid NDCG@20", "hybrid Recall@20",
            "hybrid TailRecall@20", "best source (NDCG@20)", "item text columns", "started", "load start/end"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * 7 + "---|---|---|---|"]
    for row in rows:
        c, m = row.get("counts", {}), row.get("metrics", {})
        hybrid = m.get("hybrid", {})
        sources = {k: v["ndcg"] for k, v in m.items() if k not in ("hybrid", "pop") and v.get("ndcg") is not None}
        best = max(sources, key=sources.get) if sources else None
        cells = [row["data"], *(_num(c.get(k)) for k in ("users", "items", "train", "entities")),
                 *(_num(hybrid.get(k), 4) for k in ("ndcg", "recall", "tail_recall")),
                 f"{best} {sources[best]:.4f}" if best else "-", _text_columns(row),
                 row["started"],
                 f"{row['load'][0]} / {row['load'][1]}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _growth(rows: list[dict]) -> list[str]:
    by = {r["data"]: _columns(r) for r in rows}
    sizes = [s for s in GROWTH if s in by]
    if len(sizes) < 2:
        return []
    cols = [c for c in by[sizes[0]] if c not in ("users/s", "generate s")]
    lines = ["Growth of each step from one synthetic size to the next (10x / 3x interactions; target <= 12x for 10x):",
             "", "| from -> to | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]  # fmt: skip
    for a, b in zip(sizes, sizes[1:]):
        cells = []
        for col in cols:
            x, y = by[a][col], by[b][col]
            numbers = isinstance(x, (int, float)) and isinstance(y, (int, float))
            cells.append(f"{y / x:.1f}x" if numbers and x and y else "-")
        lines.append(f"| {a} -> {b} | " + " | ".join(cells) + " |")
    return lines + [""]


def render(store: dict[str, list[dict]]) -> str:
    """The markdown section for every label in ``store``."""
    out = [BEGIN, "## Scale: build -> train (defaults) -> recommend (all users)", ""]
    out += [
        "Produced by `bench/scale.py`: each step is the CLI a user runs, in its own process "
        "(`python -m graphrec.build|train|recommend`; synthetic logs from `python -m graphrec.datasets`); "
        "wall s per process, train stages from the model manifest's timings, peak RSS of the process tree "
        "(psutil, 0.25 s polls). Machine: 2 CPU cores shared with other jobs running at the same time "
        "(load average per row), 24 GiB RAM, no GPU, except under a heading that names a lent GPU machine: "
        "absolute times are pessimistic, compare ratios. "
        "A step that failed or ran past the per-data-set timeout or memory cap is named in the status column. "
        "Each table ran from a `git worktree` pinned at the commit named (`--results` points at the main tree), "
        "so work landing meanwhile does not mix in; `+dirty` marks uncommitted code outside bench/.",
        "",
    ]
    for label, rows in store.items():
        if not rows:
            continue
        commands = sorted({r["command"] for r in rows})
        out += [f"### {label}", ""]
        out += [f"Command: `{c}`  " for c in commands]
        out += [""] + _table(rows) + [""] + _sizes_and_quality(rows) + [""] + _growth(rows)
    out.append(END)
    return "\n".join(out) + "\n"


def write_section(section: str, root: Path = ROOT) -> None:
    """Write ``section`` to ``root``/bench/results/scale.md and into its BENCHMARKS.md between the markers."""
    write_marked_section("scale", section, root=root)
