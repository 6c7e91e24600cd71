"""Assemble BENCHMARKS.md from the sections the bench scripts write to bench/results/.

Each bench script writes its own ``bench/results/<name>.md`` (a table plus the
command that produced it); this script concatenates them in a fixed order so the
file is always regenerated from measured output, never edited by hand.

    python bench/merge_results.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ORDER = [
    "build_throughput",
    "eval_baselines",
    "eval_scale",
    "text_finetune",
    "text_stage",
    "tune_cf",
    "graphfilter_ml-100k",
    "graphfilter_gowalla",
    "gnn_speed",
    "gnn_scale_cost",
    "gnn_quality_ml-100k",
    "gnn_quality_ml-100k_gat",
    "gnn_quality_lastfm",
    "learners",
    "hybrid",
    "ranker_cost",
    "hybrid_topk_floor",
    "coldstart",
    "serving",
    "serving_checks",
    "gpu",
]

HEADER = """# Benchmarks

Every table below was produced by the command printed with it; the scripts live in
`bench/` and write their section to `bench/results/`, from which this file is
assembled by `python bench/merge_results.py`. CPU figures come from a shared 2-core
machine: absolute times are noisy, so compare the ratios measured side by side in
one run. Quality figures follow `docs/PROTOCOL.md` (full ranking, train items masked, K = 20).
"""


def write_marked_section(name: str, text: str, *, result: Path | None = None, root: Path = ROOT) -> None:
    """Write ``text`` to ``result`` (default bench/results/``name``.md) and into ``root``/BENCHMARKS.md
    between ``<!-- name:begin/end -->``.

    ``text`` must hold both markers; without them in BENCHMARKS.md it is appended. Atomic replace.
    ``root`` is another checkout's top for benches run from a pinned worktree.
    """
    (result or root / "bench" / "results" / f"{name}.md").write_text(text, encoding="utf-8")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    path = root / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(f".BENCHMARKS.md.{name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)


def publish(text: str, out: Path) -> int:
    """Print a bench's section and write it to ``out`` atomically; returns exit status 0."""
    from kg.artifact import atomic_file

    print(text)
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return 0


def main() -> None:
    sections = {p.stem: p for p in RESULTS.glob("*.md")}
    ordered = [sections.pop(name) for name in ORDER if name in sections] + sorted(sections.values())
    parts = [HEADER] + [p.read_text(encoding="utf-8").strip() + "\n" for p in ordered]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"BENCHMARKS.md: {len(ordered)} sections ({', '.join(p.stem for p in ordered)})")


if __name__ == "__main__":
    main()
