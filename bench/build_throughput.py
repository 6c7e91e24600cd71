"""Graph build throughput: ``kg.build_graph`` against a straightforward pandas build.

Both builds read the same synthetic Parquet log (``graphrec.datasets``' streaming
writer, string ids, repeated pairs), map ids to contiguous indices, deduplicate
events into (user, item) pairs (count, summed weight, latest timestamp), split
each user's pairs 80/20 at random with a validation split carved from train, and
write the interactions and id tables as Parquet. Each runs in its own
subprocess, so peak RSS (``ru_maxrss``, the whole process) is clean; the runs
alternate when ``--repeat`` > 1 and the table reports the fastest of each.

    python bench/build_throughput.py                  # 20M rows (generated once, cached)
    python bench/build_throughput.py --rows 2000000   # a quick look

Prints a markdown table and writes it to bench/results/build_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402

MIB = 1024**2
EDGE_BYTES_PER_PAIR = 4 + 4 + 4 + 4 + 8 + 1  # user, item, weight, count, timestamp, split


def child_graphrec(log: Path, out: Path) -> dict:
    from kg import BuildConfig, build_graph

    started = time.perf_counter()
    graph = build_graph(BuildConfig(interactions=str(log)))
    graph.save(out, overwrite=True)
    seconds = time.perf_counter() - started
    counts = graph.counts()
    return {"seconds": seconds, "pairs": counts["interactions"], "users": counts["users"], "items": counts["items"],
            "test": counts["test"], "valid": counts["valid"]}


def child_pandas(log: Path, out: Path) -> dict:
    """What one would write first: read, groupby, factorize, shuffle-and-cumcount split."""
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_parquet(log)
    pairs = (
        frame.groupby(["user_id", "item_id"], sort=False)
        .agg(count=("timestamp", "size"), timestamp=("timestamp", "max"))
        .reset_index()
    )
    del frame
    pairs["weight"] = pairs["count"].astype("float32")
    pairs["user"], user_ids = pd.factorize(pairs["user_id"], sort=True)
    pairs["item"], item_ids = pd.factorize(pairs["item_id"], sort=True)
    pairs = pairs.drop(columns=["user_id", "item_id"]).sort_values(["user", "item"], ignore_index=True)

    def held_out(frame: pd.DataFrame, seed: int, keep: float) -> np.ndarray:
        frame = frame.assign(key=np.random.default_rng(seed).random(len(frame)))
        ordered = frame.sort_values(["user", "key"])
        rank = ordered.groupby("user").cumcount()
        size = ordered.groupby("user")["user"].transform("size")
        mask = pd.Series(rank.to_numpy() >= np.ceil(keep * size.to_numpy()), index=ordered.index)
        return mask.reindex(frame.index).to_numpy()

    split = np.zeros(len(pairs), np.int8)
    split[held_out(pairs, 2026, 0.8)] = 2
    train = pairs[split == 0]
    valid = held_out(train, 2027, 0.8)
    split[np.flatnonzero(split == 0)[valid]] = 1
    pairs["split"] = split
    pairs["timestamp"] = pairs["timestamp"].astype("float64")
    out.mkdir(parents=True, exist_ok=True)
    pairs[["user", "item", "weight", "count", "timestamp", "split"]].to_parquet(out / "interactions.parquet")
    pd.DataFrame({"user_id": user_ids}).to_parquet(out / "users.parquet")
    pd.DataFrame({"item_id": item_ids}).to_parquet(out / "items.parquet")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "pairs": len(pairs), "users": len(user_ids), "items": len(item_ids),
            "test": int((split == 2).sum()), "valid": int((split == 1).sum())}


def run_child(engine: str, log: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", engine, "--log", str(log), "--artifact", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} build failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_log(path: Path, rows: int, users: int, items: int) -> None:
    if path.is_file():
        return
    from graphrec.datasets.synthetic import SyntheticConfig, write_interactions_parquet

    path.parent.mkdir(parents=True, exist_ok=True)
    config = SyntheticConfig(num_users=users, num_items=items, num_interactions=rows,
                             num_creators=max(300, items // 40), num_series=max(120, items // 100))
    started = time.perf_counter()
    write_interactions_parquet(config, path, show_progress=sys.stderr.isatty())
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s -> {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="raw events in the log")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs per engine; the fastest is reported")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "build_throughput")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "build_throughput.md")
    parser.add_argument("--child", choices=("graphrec", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--artifact", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        import pandas  # noqa: F401

        import kg  # noqa: F401  (imports first, so "RSS after imports" is the baseline of both builds)

        before = psutil.Process().memory_info().rss
        result = (child_graphrec if args.child == "graphrec" else child_pandas)(args.log, args.artifact)
        result["rss_before"] = before
        result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(result))
        return 0

    log = args.work / f"log-{args.rows}-{args.users}-{args.items}.parquet"
    ensure_log(log, args.rows, args.users, args.items)
    runs: dict[str, list[dict]] = {"graphrec": [], "pandas": []}
    for _ in range(args.repeat):
        for engine in runs:
            runs[engine].append(run_child(engine, log, args.work / f"artifact-{engine}"))
    best = {engine: min(results, key=lambda r: r["seconds"]) for engine, results in runs.items()}
    ours, theirs = best["graphrec"], best["pandas"]
    if (ours["pairs"], ours["users"], ours["items"]) != (theirs["pairs"], theirs["users"], theirs["items"]):
        raise SystemExit(f"the two builds disagree: {ours} vs {theirs}")

    command = shlex.join(["python", "bench/build_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    edge_bytes = ours["pairs"] * EDGE_BYTES_PER_PAIR
    load = os.getloadavg()[0]
    lines = [
        "## Graph build throughput (20M-row Parquet log)" if args.rows == 20_000_000 else
        f"## Graph build throughput ({args.rows:,}-row Parquet log)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {psutil.cpu_count()} CPUs, load average {load:.1f} at the end of the run. Log: {args.rows:,} events "
        f"(synthetic, string ids, {args.users:,} users x {args.items:,} items) -> {ours['pairs']:,} distinct pairs, "
        f"{ours['users']:,} users, {ours['items']:,} items. Both builds: read, map ids, deduplicate, per-user random "
        "80/20 split plus validation carve, write Parquet; each in its own process, fastest of "
        f"{args.repeat} alternating run(s). Final edge arrays = {EDGE_BYTES_PER_PAIR} bytes x pairs "
        f"= {edge_bytes / MIB:,.0f} MiB.",
        "",
        "| build | wall s | interactions/s | peak RSS MiB | RSS after imports MiB | peak RSS / edge arrays | speed vs pandas |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, label in (("graphrec", "kg.build_graph + Graph.save"), ("pandas", "pandas read + groupby + split")):
        r = best[engine]
        lines.append(
            f"| {label} | {r['seconds']:.1f} | {args.rows / r['seconds']:,.0f} | {r['peak_rss'] / MIB:,.0f} | "
            f"{r['rss_before'] / MIB:,.0f} | {r['peak_rss'] / edge_bytes:.2f}x | "
            f"{theirs['seconds'] / r['seconds']:.2f}x |"
        )
    lines += [
        "",
        f"kg.build_graph is {theirs['seconds'] / ours['seconds']:.2f}x the speed of the pandas build and peaks at "
        f"{ours['peak_rss'] / theirs['peak_rss']:.2f}x its memory. Targets: >= 1,000,000 interactions/s "
        f"({'met' if args.rows / ours['seconds'] >= 1e6 else 'not met'} here) and peak RSS < 3x the edge arrays "
        f"({'met' if ours['peak_rss'] < 3 * edge_bytes else 'not met'}).",
        "",
    ]
    text = "\n".join(lines)
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
