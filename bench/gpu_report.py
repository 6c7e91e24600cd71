"""BENCHMARKS.md's GPU section: the scale bench's rows from a lent GPU machine beside the 2-core CPU rows.

Reads ``bench/results/scale.json`` (what ``bench/scale.py`` wrote, on the GPU
machine and here) and ``bench/results/gpu_tests.txt`` (the GPU machine's
``nvidia-smi`` line and the output of the CUDA-marked tests run there), and
writes the section ``gpu`` (``bench/results/gpu.md`` and BENCHMARKS.md).

    python bench/gpu_report.py --gpu-label 'GPU: ...' --cpu gowalla='after ... (16ca154) ...' --cpu synth-1m='...'

The GPU machine differs in more than the GPU (16 CPU cores instead of 2): the
ratios are the whole product's on that machine against this one, per stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from merge_results import write_marked_section
from scale_report import TRAIN_STAGES, _num

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("build", *TRAIN_STAGES, "train", "recommend")


def _walls(row: dict) -> dict[str, float | None]:
    stages = row.get("train_stages", {})
    walls = {s: (row["steps"].get(s) or {}).get("wall_s") for s in ("build", "train", "recommend")}
    return {s: stages.get(s) if s in TRAIN_STAGES else walls[s] for s in STEPS}


def _ratio(cpu: float | None, gpu: float | None) -> str:
    if not cpu or not gpu or gpu < 0.05:
        return "-"
    return f"{cpu / gpu:.1f}x"


def render(store: dict, gpu_label: str, cpu_labels: dict[str, str], tests: str, notes: list[str] = ()) -> str:
    gpu_rows = {r["data"]: r for r in store[gpu_label]}
    out = ["<!-- gpu:begin -->", "## GPU: the scale bench and the CUDA tests on a lent GPU machine", ""]
    first = tests.strip().splitlines()
    out += [
        f"Machine: {first[1] if len(first) > 1 else '?'} (nvidia-smi), {first[2] if len(first) > 2 else '?'} CPU "
        "cores, lent for this task's one 15-minute device window. The rows are `bench/scale.py`'s (section "
        f"\"Scale\", heading \"{gpu_label}\"): every heavy stage on `cuda` (the pipeline's `device=auto`); "
        "implicit's ALS runs on the CPU (its pip wheel has no CUDA). The CPU column is the same bench on "
        "this project's 2-core machine (heading named per row). The GPU machine also has 8x the cores, so a "
        "ratio is the product's on that machine against the 2-core one, not the GPU's alone.",
        "",
        f"Command: `python bench/gpu_report.py --gpu-label '{gpu_label}' "
        + " ".join(f"--cpu '{d}={lab}'" for d, lab in cpu_labels.items())
        + "".join(f" --note '{n}'" for n in notes)
        + "`",
        "",
    ]
    for data, cpu_label in cpu_labels.items():
        gpu, cpu = gpu_rows[data], {r["data"]: r for r in store[cpu_label]}[data]
        g, c = _walls(gpu), _walls(cpu)
        out += [f"**{data}**: CPU = \"{cpu_label}\"", ""]
        out += ["| step | 2-core CPU s | GPU machine s | speed-up |", "|---|---:|---:|---:|"]
        out += [f"| {s} | {_num(c[s])} | {_num(g[s])} | {_ratio(c[s], g[s])} |" for s in STEPS]
        users = gpu.get("recommend_users")
        if users and g["recommend"]:
            cpu_rate = cpu.get("recommend_users", 0) / c["recommend"] if c["recommend"] else None
            out += [f"| top-K users/s | {_num(cpu_rate, 0)} | {_num(users / g['recommend'], 0)} | "
                    f"{_ratio(g['recommend'] and users / g['recommend'], cpu_rate)} |"]  # fmt: skip
        if gpu.get("stopped"):
            out += ["", f"GPU run: {gpu['stopped']}."]
        gm, cm = gpu.get("metrics", {}).get("hybrid", {}), cpu.get("metrics", {}).get("hybrid", {})
        if gm and cm:
            out += ["", f"Hybrid test NDCG@20 / Recall@20: CPU {cm['ndcg']:.4f} / {cm['recall']:.4f}, "
                    f"GPU {gm['ndcg']:.4f} / {gm['recall']:.4f}."]  # fmt: skip
        out.append("")
    out += [f"Note: {n}" for n in notes] + ([""] if notes else [])
    out += ["CUDA tests (`pytest -m gpu`) on that machine:", "", "```", tests.strip(), "```", "<!-- gpu:end -->"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu-label", required=True, help="the scale.json heading of the GPU machine's rows")
    p.add_argument("--cpu", action="append", default=[], metavar="DATA=LABEL", help="CPU reference row per data set")
    p.add_argument("--tests", type=Path, default=ROOT / "bench" / "results" / "gpu_tests.txt")
    p.add_argument("--note", action="append", default=[], help="a sentence printed under the tables")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    store = json.loads((ROOT / "bench" / "results" / "scale.json").read_text(encoding="utf-8"))
    cpu_labels = dict(item.split("=", 1) for item in args.cpu)
    section = render(store, args.gpu_label, cpu_labels, args.tests.read_text(encoding="utf-8"), args.note)
    print(section)
    if not args.no_write:
        write_marked_section("gpu", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
