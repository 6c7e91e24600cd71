"""Crash safety: random SIGKILLs of build, train and recommend, then the next run on the same path.

    python bench/kill_bench.py [--kills 20] [--seed 0] [--work DIR] [--no-write]

Setup (tiny demo data, cheap training settings): one build, one train and one
recommend write the first versions of a graph, a model and a recommendation
file. Then, ``--kills`` times, one of the three verbs (in turn) is started again
with ``--overwrite`` on the same output, killed with SIGKILL at a random moment
after it took the output's lock, and the output is checked at once:

* missing: nothing at the output path right after the kill;
* corrupt: something there that does not load (checksums verified);

then the same command runs again to completion and what it leaves beside the
output is counted (hidden temporaries, backups, lock files, the train work
directory): leftovers after next run. The table goes to stdout and, as the
"Crash safety" section, to ``bench/results/crash_safety.md`` and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import write_marked_section  # noqa: E402
from kg.locks import lock_path  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
TRAIN_SETTINGS = (
    "text.fine_tune_steps=2", "text.max_length=16", "als.factors=8", "als.iterations=3",
    "ranker.ensemble=1", "ranker.epochs=3", "ranker.patience=1", "ranker.candidates_per_source=20",
)  # fmt: skip
BEGIN, END = "<!-- crash-safety:begin -->", "<!-- crash-safety:end -->"


def commands(work: Path) -> dict[str, tuple[list[str], Path]]:
    """verb -> (command writing the verb's output with --overwrite, output path)."""
    data, graph, model, recs = work / "data", work / "graph", work / "model", work / "recs.parquet"
    python = [sys.executable, "-m"]
    sets = [a for o in TRAIN_SETTINGS for a in ("--set", o)]
    return {
        "build": (python + ["graphrec.build", "--interactions", str(data / "interactions.parquet"),
                            "--items", str(data / "items.csv"), "--out", str(graph), "--quiet", "--overwrite"], graph),
        "train": (python + ["graphrec.train", "--graph", str(graph), "--out", str(model), "--stages",
                            "text,als,ranker", "--quiet", "--overwrite", *sets], model),
        "recommend": (python + ["graphrec.recommend", "--model", str(model), "--out", str(recs), "--k", "10",
                                "--quiet", "--batch-size", "8"], recs),
    }  # fmt: skip


def run(command: list[str], out: Path) -> float:
    """Run to completion; returns the seconds from taking ``out``'s lock to the end (the killable span)."""
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock, locked = lock_path(out), None
    while proc.poll() is None:
        if locked is None and lock.exists():
            locked = time.perf_counter()
        time.sleep(0.005)
    stderr = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return time.perf_counter() - (locked or time.perf_counter())


def kill_at_random(command: list[str], out: Path, delay: float) -> bool:
    """Start, wait for the output's lock, SIGKILL after ``delay`` s; ``True`` when the kill landed."""
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = lock_path(out)
    while not lock.exists() and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def intact(verb: str, out: Path) -> bool:
    """Whether the output at ``out`` loads with every check on (checksums included)."""
    import pandas as pd

    from graphrec.artifacts.model import load_model
    from kg import ArtifactError, load_graph

    try:
        if verb == "build":
            load_graph(out)
        elif verb == "train":
            load_model(out)
        else:
            return len(pd.read_parquet(out)) > 0
    except (ArtifactError, OSError, ValueError):
        return False
    return True


def leftovers(verb: str, out: Path) -> list[str]:
    found = [n for n in os.listdir(out.parent) if n.startswith(f".{out.name}.")]
    if verb == "train":
        work = out.with_name(out.name + ".work")
        found += [n for n in os.listdir(out.parent) if n.startswith(f".{work.name}.")]
        found += [work.name] if work.exists() else []
    return sorted(found)


def section(rows: dict[str, dict[str, int]], command: str, seconds: float, durations: dict[str, float]) -> str:
    lines = [
        BEGIN, "## Crash safety", "",
        f"Command: `{command}` ({seconds:.0f} s wall on a shared 2-core CPU machine)", "",
        "Each kill: the verb reruns with `--overwrite` on the output it wrote before, gets SIGKILL at a random "
        "moment after taking the output's lock (uniform over the span from lock to exit measured on the first "
        "run, in brackets), the output is checked at once (missing / corrupt = does not load with checksums "
        "verified), then the same command runs to completion and what it leaves beside the output is counted "
        "(temporaries, backups, locks, the train work directory).", "",
        "| verb | kills | runs started (a run that ended before its kill is rerun, killed earlier) "
        "| missing artifacts | corrupt artifacts "
        "| leftovers after next run |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    total = {k: 0 for k in next(iter(rows.values()))}
    for verb, row in rows.items():
        lines.append(f"| {verb} ({durations[verb]:.1f} s) | " + " | ".join(str(row[k]) for k in row) + " |")
        total = {k: total[k] + row[k] for k in row}
    lines.append("| **all** | " + " | ".join(f"**{total[k]}**" for k in total) + " |")
    return "\n".join(lines + ["", END]) + "\n"


def write_section(text: str) -> None:
    write_marked_section("crash-safety", text, result=ROOT / "bench" / "results" / "crash_safety.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed after)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args()
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-bench-"))
    from graphrec.datasets import generate, write
    from graphrec.demo import DEMO_SIZES

    write(generate(DEMO_SIZES["tiny"]), work / "data", overwrite=True)
    verbs = commands(work)
    durations = {verb: run(command, out) for verb, (command, out) in verbs.items()}  # the first versions
    rng = random.Random(args.seed)
    keys = ("kills", "attempts", "missing", "corrupt", "leftovers")
    rows = {verb: dict.fromkeys(keys, 0) for verb in verbs}
    for i in range(args.kills):
        verb = list(verbs)[i % len(verbs)]
        command, out = verbs[verb]
        attempts, span = 1, durations[verb]
        while not kill_at_random(command, out, rng.uniform(0, span)):  # the run ended first: kill earlier
            attempts, span = attempts + 1, span / 2
        row = rows[verb]
        row["kills"] += 1
        row["attempts"] += attempts
        missing = not out.exists()
        row["missing"] += missing
        row["corrupt"] += (not missing) and not intact(verb, out)
        run(command, out)  # the next run on the same path
        row["leftovers"] += len(leftovers(verb, out))
        print(f"kill {i + 1:2d}/{args.kills} {verb:9s} attempts={attempts} missing={missing} "
              f"leftovers={leftovers(verb, out)}", flush=True)  # fmt: skip
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    command = "python bench/kill_bench.py" + (f" --kills {args.kills}" if args.kills != 20 else "")
    text = section(rows, command, time.perf_counter() - started, durations)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
