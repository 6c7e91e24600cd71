"""Issue 14's scale bench: the Spark build and Spark top-K at 10M / 30M / 100M events, beside one process.

    python bench/scale_spark.py --events 10000000 30000000 100000000 --master 'local[2]' --driver-memory 8g

Per size, each stage is its own subprocess (the commands a user types), measured
by :func:`bench.scale.run_step`: wall seconds and the peak RSS of the whole
process tree, so Spark's JVM and its Python workers (children of the driver)
are counted. Stages:

* ``generate``: the interactions-only synthetic log as one Parquet file
  (:func:`graphrec.datasets.synthetic.write_interactions_parquet`, streamed in
  row groups): ``events / --events-per-user`` users, a catalogue of ``--items``
  items, Zipf popularity (exponent 1), event types view / click / purchase;
* ``spark_build``: ``graphrec.build --engine spark --spark-master MASTER``;
* ``build``: the default single-process build of the same log (parity: the
  two artifacts' interactions / users / items files must have the same sha256);
* ``train``: ALS only (``--stages als``, ``--set als.factors=F --set als.iterations=I``),
  on the Spark-built graph; one node by design (docs/SCALE.md);
* ``spark_topk``: ``graphrec.recommend --engine spark`` for every user, Parquet part files;
* ``topk``: ``graphrec.recommend`` (the in-process factor path) for every user, one Parquet file.

Spark's driver memory goes through ``PYSPARK_SUBMIT_ARGS`` (``--driver-memory``),
which PySpark reads when it starts the JVM; nothing in graphrec changes. Results
accumulate in ``bench/results/scale_spark.json`` after every stage (a partial run
still yields rows); ``bench/results/scale_spark.md`` is rendered from it by
``bench/scale_spark_report.py``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale import run_step
from scale_spark_report import PARITY_FILES, STAGES, markdown, render, size_name

WEIGHTS = [f for e, w in (("view", 1), ("click", 2), ("purchase", 5)) for f in ("--event-weight", f"{e}={w}")]
PY = sys.executable


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _load(results: Path) -> dict:
    return json.loads(results.read_text()) if results.is_file() else {}


def _save(store: dict, results: Path) -> None:
    """Merge this run's rows into the JSON (under a lock: runs of different sizes may share it), then the markdown."""
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = {r["events"]: r for r in _load(results).get("rows", [])}
        for row in store.get("rows", []):
            earlier = old.get(row["events"])
            if earlier is not None and row.get("resumed"):  # a concurrent --resume run may have added stages
                ran = row.get("_ran", [])
                for key in ("stages", "skipped", "topk_rows"):
                    row[key] = {**earlier.get(key, {}), **{k: v for k, v in row.get(key, {}).items() if k in ran}}
                for key in ("counts", "identical"):
                    if row.get(key) is None and earlier.get(key) is not None:
                        row[key] = earlier[key]
            old[row["events"]] = row
        rows = list(old.values())
        _write({**_load(results), **store, "rows": sorted(rows, key=lambda r: r["events"])}, results)


def _write(store: dict, results: Path) -> None:
    store = {**store, "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in store.get("rows", [])]}
    for path, text in ((results, json.dumps(store, indent=1)), (results.with_suffix(".md"), markdown(store))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def generate(events: int, users: int, items: int, out: Path) -> None:
    """``--generate``: the interactions-only log (run as its own process so it is measured like the rest)."""
    from graphrec.datasets.__main__ import config_for
    from graphrec.datasets.synthetic import write_interactions_parquet

    write_interactions_parquet(config_for(events, users=users, items=items), out)


def _commands(args: argparse.Namespace, events: int, users: int, work: Path) -> dict[str, list[str]]:
    log, graph, spark_graph = work / "log.parquet", work / "graph", work / "graph_spark"
    model = work / "model"
    master = ["--spark-master", args.master]
    return {
        "generate": [PY, str(ROOT / "bench" / "scale_spark.py"), "--generate", str(log), "--events", str(events),
                     "--users", str(users), "--items", str(args.items)],
        "spark_build": [PY, "-m", "graphrec.build", "--engine", "spark", *master, "--interactions", str(log), *WEIGHTS,
                        "--out", str(spark_graph), "--overwrite", "--quiet"],
        "build": [PY, "-m", "graphrec.build", "--interactions", str(log), *WEIGHTS, "--out", str(graph),
                  "--overwrite", "--quiet"],
        "train": [PY, "-m", "graphrec.train", "--graph", str(graph if args.train_graph == "default" else spark_graph), "--out", str(model), "--overwrite",
                  "--stages", "als", "--set", f"als.factors={args.als_factors}",
                  "--set", f"als.iterations={args.als_iterations}",
                  *[f for setting in args.train_set for f in ("--set", setting)], "--device", "cpu", "--quiet"],
        "spark_topk": [PY, "-m", "graphrec.recommend", "--engine", "spark", *master, "--model", str(model),
                       "--out", str(work / "recs_spark"), "--users", "all", "--k", "20", "--quiet"],
        "topk": [PY, "-m", "graphrec.recommend", "--model", str(model), "--out", str(work / "recs.parquet"),
                 "--users", "all", "--k", "20", "--device", "cpu", "--quiet"],
    }  # fmt: skip


def run_size(events: int, args: argparse.Namespace, store: dict) -> None:
    users = max(10, events // args.events_per_user)
    work = args.work / size_name(events)
    work.mkdir(parents=True, exist_ok=True)
    rows = [r for r in store["rows"] if r["events"] != events]
    earlier = [r for r in _load(args.results).get("rows", []) if r["events"] == events] if args.resume else []
    row = {
        "events": events,
        "users": users,
        "items": args.items,
        "stages": {},
        "skipped": {},
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": [round(os.getloadavg()[0], 1)],
    }
    row["settings"] = dict(store["settings"])
    if earlier:  # --resume: keep the stages this run does not redo
        kept = {k: v for k, v in earlier[0].items() if k in ("stages", "skipped", "counts", "identical", "topk_rows")}
        row.update(kept, started=earlier[0]["started"], load=earlier[0]["load"][:1], resumed=True)
        for stage in args.stages:
            row["stages"].pop(stage, None), row["skipped"].pop(stage, None)
        row["settings"]["command"] = earlier[0]["settings"]["command"] + "`, then `" + row["settings"]["command"]
    store["rows"] = rows + [row]
    commands = _commands(args, events, users, work)
    store["commands"] = {
        k: " ".join(v).replace(str(work), "W").replace(PY, "python").replace(f"{ROOT}/", "")
        for k, v in commands.items()
    }
    for stage in args.stages:
        if stage in args.skip.get(size_name(events), ()):
            row["skipped"][stage] = args.skip_reason.get(size_name(events), "skipped")
            row.setdefault("_ran", []).append(stage)
            continue
        if stage == "generate" and (work / "log.parquet").is_file():
            row["skipped"][stage] = "cached"
            row.setdefault("_ran", []).append(stage)
            continue
        if stage == "spark_topk":  # it refuses an existing --out directory
            shutil.rmtree(work / "recs_spark", ignore_errors=True)
        print(f"[{size_name(events)}] {stage}: {' '.join(commands[stage])}", flush=True)
        result = run_step(
            commands[stage], work / f"{stage}.log", timeout=args.timeout, max_rss=int(args.max_rss_gib * 2**30)
        )
        row["stages"][stage] = result
        row.setdefault("_ran", []).append(stage)
        print(f"[{size_name(events)}] {stage}: {result['wall_s']} s, peak {result['peak_rss_mib']} MiB"
              + (f", stopped: {result['why']}" if result["why"] else ""), flush=True)  # fmt: skip
        if stage == "spark_build" and result["why"] is None:
            row["counts"] = json.loads((work / "graph_spark" / "manifest.json").read_text())["counts"]
        both = all((work / g / "manifest.json").is_file() for g in ("graph", "graph_spark"))
        if stage.endswith("build") and result["why"] is None and both:
            row["identical"] = all(_sha(work / "graph" / f) == _sha(work / "graph_spark" / f) for f in PARITY_FILES)
        if stage.endswith("topk") and result["why"] is None:
            import pyarrow.parquet as pq

            out = work / ("recs_spark" if stage == "spark_topk" else "recs.parquet")
            row.setdefault("topk_rows", {})[stage] = pq.ParquetDataset(out).read(columns=["rank"]).num_rows
        row["load"] = [row["load"][0], round(os.getloadavg()[0], 1)]
        _save(store, args.results)
        if result["why"] and stage in ("generate", "spark_build", "train"):
            break  # the later stages need this one's output
    if args.cleanup:  # everything but the stage logs
        for path in work.iterdir():
            if path.suffix != ".log":
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _skip(text: str) -> tuple[str, list[str], str]:
    """``100M:build,topk=why`` -> ``("100M", ["build", "topk"], "why")``."""
    head, _, why = text.partition("=")
    size, _, stages = head.partition(":")
    unknown = [s for s in stages.split(",") if s not in STAGES]
    if not size or unknown or not stages:
        raise argparse.ArgumentTypeError(f"--skip {text!r}: expected SIZE:STAGE[,STAGE]=reason, stages {STAGES}")
    return size, stages.split(","), why or "skipped"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, nargs="+", default=[10_000_000, 30_000_000, 100_000_000])
    p.add_argument("--events-per-user", type=int, default=25)
    p.add_argument("--items", type=int, default=20_000, help="catalogue size at every log size")
    p.add_argument("--users", type=int, help=argparse.SUPPRESS)  # --generate only
    p.add_argument("--generate", type=Path, metavar="PARQUET", help=argparse.SUPPRESS)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="8g", help="Spark driver memory (PYSPARK_SUBMIT_ARGS --driver-memory)")
    p.add_argument("--als-factors", type=int, default=32)
    p.add_argument("--als-iterations", type=int, default=10)
    p.add_argument(
        "--stages", type=lambda t: t.split(","), default=list(STAGES), help="comma-separated, run in this order"
    )
    p.add_argument(
        "--train-set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="more train settings (e.g. ranker.refit=false: fit ALS once, on train)",
    )
    p.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more Spark settings for the local JVM (PYSPARK_SUBMIT_ARGS --conf), e.g. spark.sql.files.maxPartitionBytes=32m",
    )
    p.add_argument(
        "--train-graph",
        choices=("spark", "default"),
        default="spark",
        help="graph the train stage reads (the two builds' artifacts are identical: checked per size)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the stages of an earlier run of the same size in --results; rerun only --stages",
    )
    p.add_argument(
        "--skip",
        type=_skip,
        action="append",
        default=[],
        metavar="SIZE:STAGE[,STAGE]=REASON",
        help="leave stages out at one size, with the reason the table shows (e.g. 100M:build=memory)",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/graphrec-scale-spark"))
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "scale_spark.json")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    p.add_argument("--max-rss-gib", type=float, default=20.0, help="kill a stage whose process tree exceeds this")
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="delete each size's data, graphs, model and lists after it (the logs stay)",
    )
    p.add_argument("--render", action="store_true", help="only rewrite the markdown from the JSON of --results")
    args = p.parse_args(argv)
    if args.render:
        _write(json.loads(args.results.read_text()), args.results)
        return 0
    if args.generate is not None:
        generate(args.events[0], args.users, args.items, args.generate)
        return 0
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        p.error(f"--stages: unknown {unknown}; stages are {','.join(STAGES)}")
    args.skip_reason = {size: why for size, _, why in args.skip}
    args.skip = {size: stages for size, stages, _ in args.skip}
    confs = " ".join(f"--conf {c}" for c in args.spark_conf)
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {args.driver_memory} {confs} pyspark-shell".replace("  ", " ")
    store: dict = {"rows": []}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    import psutil

    store["settings"] = {
        "command": "python bench/scale_spark.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": commit.strip(), "cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "master": args.master, "driver_memory": args.driver_memory, "als_factors": args.als_factors,
        "als_iterations": args.als_iterations, "events_per_user": args.events_per_user, "items": args.items,
    }  # fmt: skip
    for events in args.events:
        run_size(events, args, store)
    print(render(store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
