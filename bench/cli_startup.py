"""CLI start-up: wall time of ``python -m graphrec.<verb> --help`` for every verb.

A user's first contact with a verb is ``--help`` or a one-line argument error; both
should answer at once, so the verbs import torch, torch_geometric, transformers,
implicit and pandas only when they run. Each verb's ``--help`` runs ``--repeat``
times in a fresh subprocess (the verbs alternate, so a burst of load on a shared
machine hits them all alike); the table reports the median and the slowest wall time,
the median CPU time of the child (user + system: what a quiet machine's wall time would be,
nearly), and the heavy libraries the verb's module pulls in on import.

    python bench/cli_startup.py                 # 3 runs per verb
    python bench/cli_startup.py --repeat 5
    git archive 4c0b502 | tar -x -C /tmp/before   # the code before the verbs deferred their imports
    python bench/cli_startup.py --baseline /tmp/before   # both, alternating, in one run

Prints a markdown table and writes it to bench/results/cli_startup.md (a
"CLI start-up" section of BENCHMARKS.md; ``python bench/merge_results.py``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERBS = ("build", "train", "recommend", "export", "evaluate")
HEAVY = ("torch", "torch_geometric", "transformers", "implicit", "pandas")
PROBE = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def time_help(verb: str, root: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU seconds for one ``python -m graphrec.<verb> --help`` in a fresh process.

    The CPU seconds (user + system of the child) hardly depend on what else the machine
    runs, so they are close to the wall time on a quiet machine.

    Args:
        verb: the verb.
        root: the checkout whose code runs (``python -m`` puts the working directory first on the path).

    Raises:
        RuntimeError: the command did not exit with status 0.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", f"graphrec.{verb}", "--help"], cwd=root,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"graphrec.{verb} --help exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(verb: str, root: Path = ROOT) -> str:
    """The heavy libraries that importing ``graphrec.<verb>`` loads (comma-separated, or "none")."""
    done = subprocess.run([sys.executable, "-c", PROBE, f"graphrec.{verb}"], cwd=root,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip() or "none"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per verb (the median is reported)")
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. an older commit) timed alongside")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.md")
    args = parser.parse_args(argv)

    roots = {"now": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    runs = {(name, verb): [] for name in roots for verb in VERBS}
    for _ in range(args.repeat):
        for verb in VERBS:
            for name, root in roots.items():  # alternate, so load bursts hit both alike
                runs[name, verb].append(time_help(verb, root))

    command = "python bench/cli_startup.py" + (f" --repeat {args.repeat}" if args.repeat != 3 else "")
    if args.baseline:
        command += f" --baseline {args.baseline}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## CLI start-up",
        "",
        f"`{command}` (median of {args.repeat} fresh `python -m graphrec.<verb> --help` processes per verb;"
        f" {os.cpu_count()} CPUs, load average {load} at the end). Argument errors take the same path as"
        " `--help`: the verbs import torch, torch_geometric, transformers, implicit and pandas only when"
        " they run.",
        "",
        "| verb | median wall s | slowest wall s | median CPU s | heavy modules imported by the verb's module |"
        + (" baseline median wall s | baseline median CPU s | baseline imports |" if args.baseline else ""),
        "|---|---:|---:|---:|---|" + ("---:|---:|---|" if args.baseline else ""),
    ]
    for verb in VERBS:
        wall, cpu = zip(*runs["now", verb])
        row = (f"| `{verb} --help` | {statistics.median(wall):.2f} | {max(wall):.2f} | {statistics.median(cpu):.2f} |"
               f" {heavy_imports(verb)} |")
        if args.baseline:
            base_wall, base_cpu = zip(*runs["baseline", verb])
            row += (f" {statistics.median(base_wall):.2f} | {statistics.median(base_cpu):.2f} |"
                    f" {heavy_imports(verb, roots['baseline'])} |")
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {shlex.quote(str(args.out))}")


if __name__ == "__main__":
    main()
