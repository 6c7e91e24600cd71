"""bench/scale_spark.py's report: its JSON rows rendered as the markdown of ``bench/results/scale_spark.md``.

One row per (size, stage) with wall seconds, the peak RSS of the process tree and
the throughput; then the wall-time growth between consecutive sizes and the notes
of each size (parity of the two builds, train flags, top-K rows, load). Pure
functions of the stored dict: ``python bench/scale_spark.py --render`` redraws the
markdown from the JSON without running anything.
"""

from __future__ import annotations

from itertools import pairwise

__all__ = ["LABELS", "PARITY_FILES", "STAGES", "growth", "markdown", "render", "size_name"]

STAGES = ("generate", "spark_build", "build", "train", "spark_topk", "topk")
LABELS = {
    "generate": "generate log", "spark_build": "Spark build", "build": "default build",
    "train": "train (ALS, one node)", "spark_topk": "Spark top-K", "topk": "in-process top-K",
}  # fmt: skip
PARITY_FILES = ("interactions.parquet", "users.parquet", "items.parquet")


def size_name(events: int) -> str:
    """``10000000`` -> ``"10M"``, ``1500000`` -> ``"1.5M"``, ``250000`` -> ``"250k"``."""
    if events >= 1_000_000:
        return f"{events / 1e6:g}M"
    return f"{events / 1e3:g}k" if events >= 1000 else str(events)


def growth(rows: list[dict], stage: str) -> list[float | None]:
    """Wall-time ratio of ``stage`` between consecutive sizes (``None`` where either side did not complete,
    or where the two ran with different settings, e.g. other train flags)."""
    walls = [_completed(row, stage) for row in rows]
    flags = [_flags(row.get("stages", {}).get(stage, {}).get("cmd", "")) for row in rows]
    return [
        round(b / a, 2) if a and b and fa == fb else None for (a, b), (fa, fb) in zip(pairwise(walls), pairwise(flags))
    ]


def _flags(cmd: str) -> list[str]:
    """A command's settings: its words without paths and sizes (those differ between sizes by design)."""
    return [w for w in cmd.split() if "/" not in w and not w.isdigit()]


def _completed(row: dict, stage: str) -> float | None:
    step = row.get("stages", {}).get(stage)
    return step["wall_s"] if step and step.get("why") is None and step.get("wall_s") else None


def _cell(row: dict, stage: str) -> tuple[str, str, str]:
    """(wall s, peak GiB, events/s or users/s for top-K) of one stage, or why it did not run / stopped."""
    step = row.get("stages", {}).get(stage)
    if step is None:
        return (row.get("skipped", {}).get(stage, "not run"), "", "")
    peak = f"{step['peak_rss_mib'] / 1024:.1f}" if step.get("peak_rss_mib") is not None else ""
    if step.get("why"):
        why = "killed by signal 9" if step.get("rc") == -9 else step["why"][:100]
        return (f"stopped: {why}", peak, "")
    per = row["users"] if stage.endswith("topk") else row["events"]
    rate = (
        f"{per / step['wall_s']:,.0f} {'users' if stage.endswith('topk') else 'events'}/s" if step.get("wall_s") else ""
    )
    return (f"{step['wall_s']:,.1f}", peak, rate)


def render(store: dict) -> str:
    """The markdown section: one row per (size, stage), then the growth ratios and the per-size notes."""
    rows = sorted(store.get("rows", []), key=lambda r: r["events"])
    lines = [
        "| events | users | items | pairs | stage | wall s | peak tree RSS GiB | throughput |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        pairs = f"{row['counts']['interactions']:,}" if row.get("counts") else ""
        for stage in STAGES:
            wall, peak, rate = _cell(row, stage)
            lines.append(
                f"| {row['events']:,} | {row['users']:,} | {row['items']:,} | {pairs} "
                f"| {LABELS[stage]} | {wall} | {peak} | {rate} |"
            )
    if len(rows) > 1:
        sizes = [size_name(r["events"]) for r in rows]
        head = " | ".join(f"{a}->{b}" for a, b in pairwise(sizes))
        steps = " / ".join(f"{b['events'] / a['events']:g}x" for a, b in pairwise(rows))
        lines += [
            "",
            f"Wall-time growth (events grow {steps}):",
            "",
            f"| stage | {head} |",
            "|---|" + "---:|" * (len(rows) - 1),
        ]
        for stage in STAGES:
            ratios = growth(rows, stage)
            lines.append(f"| {LABELS[stage]} | " + " | ".join("" if r is None else f"{r:g}x" for r in ratios) + " |")
    notes = []
    for row in rows:
        parts = []
        if "identical" in row:
            parts.append(
                f"Spark and default artifacts identical (sha256 of {', '.join(PARITY_FILES)}): {row['identical']}"
            )
        train = row.get("stages", {}).get("train", {}).get("cmd", "")
        if train:
            flags = train.split("--stages als", 1)[-1].replace("--device cpu --quiet", "").strip()
            parts.append(f"train `--stages als {flags}`")
        if row.get("topk_rows"):
            parts.append("top-K rows: " + ", ".join(f"{k} {v:,}" for k, v in row["topk_rows"].items()))
        if row.get("load"):
            parts.append(f"load average {row['load'][0]} at start, {row['load'][1]} at end")
        if parts:
            notes.append(f"* {size_name(row['events'])}: " + "; ".join(parts) + ".")
    notes += [f"* {size_name(row['events'])}: {note}" for row in rows for note in row.get("notes", [])]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def markdown(store: dict) -> str:
    """The whole ``scale_spark.md``: machine and settings, the bench commands, :func:`render`, the stage commands."""
    s = store.get("settings", {})
    return (
        "# Spark build and top-K at 10M / 30M / 100M events (issue 14)\n\n"
        f"Machine: {s.get('cpus')} CPU cores, {s.get('memory_gib')} GiB RAM, shared with other engineers' jobs "
        "(wall times are inflated and noisy; compare within a size). Spark "
        f"`{s.get('master')}`, driver memory {s.get('driver_memory')}; train: ALS only (its settings per size in "
        "the notes under the tables). Log shape: "
        f"{s.get('events_per_user')} events per user, a catalogue of {s.get('items'):,} items, "
        "Zipf popularity (exponent 1), view/click/purchase weighted 1/2/5.\n\n"
        + "Bench commands: "
        + "; ".join(
            sorted(
                {
                    f"`{r['settings']['command']}` (commit {r['settings']['commit']})"
                    for r in store.get("rows", [])
                    if "settings" in r
                }
            )
        )
        + ".\n\n"
        + render(store)
        + "\nStage commands (of the last size run; `W` is the size's work directory):\n\n"
        + "\n".join(f"* {LABELS[k]}: `{v}`" for k, v in store.get("commands", {}).items())
        + "\n"
    )
