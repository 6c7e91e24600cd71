"""Scale benchmark: build -> train (defaults) -> recommend (all users), as a user runs them.

Each step is its own subprocess (``python -m graphrec.build|train|recommend``),
exactly the commands a user types; the bench measures each one's wall time and
peak RSS (the process tree's, polled with psutil), takes the train stages'
wall times from the model manifest (or, when training stopped, from its work
directory's ``state.json``), and the test metrics the train CLI recorded. A
step that fails, runs past the per-data-set timeout or past the memory cap is
recorded in the table with the step (and train stage) that stopped it and why;
the bench itself carries on with the next data set.

    python bench/scale.py --data ml-100k synth-1m --label before
    python bench/scale.py --data ml-100k gowalla synth-1m synth-10m --label after --timeout 2400
    python bench/scale.py --data synth-10m --steps generate,build   # build throughput only
    python bench/scale.py --data synth-10m --label L --work W --resume   # go on after the bench was stopped

Data sets: ``ml-100k`` (RecBole files with item table and KG, random split seed
2026), ``gowalla`` (LightGCN's split), ``synth-1m`` / ``synth-10m`` /
``synth-30m`` (``python -m graphrec.datasets``: text, attributes, KG, social,
power-law popularity; written once into ``WORK/data``). Results accumulate in
``bench/results/scale.json`` per ``--label`` (a rerun replaces its own rows);
the section ``bench/results/scale.md`` is rendered from it and replaced between
its markers in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import code_commit  # noqa: E402
from scale_report import render, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
TRAIN_STAGES = ("text", "als", "neighbors", "gnn", "ranker", "evaluate")
STEPS = ("generate", "build", "train", "recommend")
SYNTHETIC = {"synth-1m": 1_000_000, "synth-10m": 10_000_000, "synth-30m": 30_000_000}
DATASETS = ("ml-100k", "gowalla", *SYNTHETIC)
PY = sys.executable


def build_args(name: str, work: Path, data: Path = DATA) -> list[str]:
    """The ``graphrec.build`` flags of data set ``name`` (its input files; real data under ``data``)."""
    if name == "ml-100k":
        return ["--format", "recbole", "--interactions", str(data / "ml-100k" / "ml-100k.inter"),
                "--split", "random", "--seed", "2026"]  # fmt: skip
    if name == "gowalla":
        return ["--format", "lightgcn", "--interactions", str(data / "gowalla" / "train.txt"),
                "--test", str(data / "gowalla" / "test.txt")]  # fmt: skip
    d = work / "data" / name
    weights = [f for e, w in (("view", 1), ("click", 2), ("purchase", 5)) for f in ("--event-weight", f"{e}={w}")]
    # Text columns named: detection would turn 'title' into a categorical at 600k items (titles repeat there).
    return ["--interactions", str(d / "interactions.parquet"), "--items", str(d / "items.csv"),
            "--users", str(d / "users.csv"), "--kg", str(d / "kg.tsv"), "--social", str(d / "social.csv"),
            "--item-text-columns", "title,description", *weights]  # fmt: skip


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_step(cmd: list[str], log: Path, *, timeout: float, max_rss: int, beat=None) -> dict:
    """Run ``cmd`` with stdout/stderr to ``log``; returns wall, peak tree RSS, exit code and why it stopped.

    ``beat(elapsed_s, peak_rss_mib)`` is called about every 30 s while it runs (the bench records
    it, so a bench that is itself killed leaves how long the step had run).
    """
    started = time.perf_counter()
    peak, why, last_beat = 0, None, started
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + shlex.join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss(watched))
            except psutil.NoSuchProcess:
                pass
            elapsed = time.perf_counter() - started
            if beat is not None and time.perf_counter() - last_beat >= 30:
                last_beat = time.perf_counter()
                beat(round(elapsed, 1), round(peak / 2**20))
            if elapsed > timeout:
                why = f"timeout after {elapsed:.0f} s"
            elif peak > max_rss:
                why = f"memory: tree RSS {peak / 2**30:.1f} GiB > cap {max_rss / 2**30:.1f} GiB"
            if why:
                os.killpg(proc.pid, 9)
                proc.wait()
                break
            time.sleep(0.25)
    wall = time.perf_counter() - started
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [""]
    if why is None and proc.returncode != 0:
        why = f"exit {proc.returncode}: {tail[0][:200]}"
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak / 2**20), "rc": proc.returncode, "why": why,
            "cmd": shlex.join(cmd)}  # fmt: skip


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    from kg.artifact import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _finished(step: dict | None) -> bool:
    return bool(step) and step.get("rc") == 0 and step.get("why") is None and not step.get("running")


def _earlier_row(name: str, args: argparse.Namespace, git: dict) -> dict:
    """With ``--resume``: the row an earlier, interrupted run of this label and commit left in ``WORK/rows``."""
    if not args.resume:
        return {}
    earlier = _read_json(args.work / "rows" / f"{name}.json")
    if not earlier:
        return {}
    if earlier.get("label") != args.label or earlier.get("git") != git:
        raise SystemExit(
            f"--resume: {args.work / 'rows' / (name + '.json')} is from label {earlier.get('label')!r} at "
            f"{earlier.get('git')}, not {args.label!r} at {git}; rerun without --resume"
        )
    return earlier


def run_dataset(name: str, args: argparse.Namespace, git: dict, meta: dict) -> dict:
    """Every requested step of one data set; stops at the first step that fails.

    The row is written to ``WORK/rows/NAME.json`` after every step and every 30 s within one,
    so that ``--resume`` can continue a run that was itself stopped: finished steps are kept,
    and an unfinished train step goes on with ``graphrec.train --resume`` (its wall time is
    the sum of its runs', the time lost to the interruption included).
    """
    work = args.work
    graph, model = work / "graphs" / name, work / "models" / name
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_row(name, args, git)
    row: dict = {"data": name, "steps": {}, "train_stages": {}, "stopped": None, "label": args.label, "git": git}
    row.update(meta)
    row.update({k: v for k, v in earlier.items() if k not in ("steps", "stopped", "train_running")})
    row["steps"] = {k: v for k, v in earlier.get("steps", {}).items() if _finished(v)}
    partial = work / "rows" / f"{name}.json"
    _write_json(partial, row)
    deadline = time.perf_counter() + args.timeout
    max_rss = int(args.max_rss_gib * 2**30)
    commands: dict[str, list[str]] = {}
    if name in SYNTHETIC:
        out = work / "data" / name
        commands["generate"] = [PY, "-m", "graphrec.datasets", "--interactions", str(SYNTHETIC[name]),
                                "--out", str(out), "--overwrite", "--quiet"]  # fmt: skip
    commands["build"] = [PY, "-m", "graphrec.build", *build_args(name, work, args.data_dir), "--out", str(graph),
                         "--overwrite"]
    train = [PY, "-m", "graphrec.train", "--graph", str(graph), "--out", str(model), "--overwrite"]
    commands["train"] = train + [f for s in args.set for f in ("--set", s)]
    commands["recommend"] = [PY, "-m", "graphrec.recommend", "--model", str(model), "--out",
                             str(work / "recs" / f"{name}.parquet"), "--users", "all"]  # fmt: skip
    (work / "recs").mkdir(exist_ok=True)
    for step in [s for s in STEPS if s in args.steps and s in commands]:
        if _finished(row["steps"].get(step)):
            print(f"[{name}] {step}: kept from the interrupted run (--resume)", flush=True)
            continue
        if step == "generate" and (work / "data" / name / "interactions.parquet").is_file() and not args.regenerate:
            row["steps"][step] = {"wall_s": None, "peak_rss_mib": None, "rc": 0, "why": None, "cached": True,
                                  "cmd": shlex.join(commands[step])}  # fmt: skip
            continue
        attempt = earlier.get("steps", {}).get(step) if step == "train" else None
        work_dir = model.with_name(model.name + ".work")
        resuming = attempt is not None and (work_dir / "state.json").is_file()
        if step == "train" and not resuming:
            # A stopped run leaves its work directory (state.json says which stages finished), an earlier run its
            # model: start clean, so the manifest read below is this run's.
            shutil.rmtree(work_dir, ignore_errors=True)
            shutil.rmtree(model, ignore_errors=True)
        # Wall seconds and runs of the interrupted attempts this one continues (a bench killed mid-step left
        # its last heartbeat: the step's elapsed time then).
        before_s, runs = 0.0, 1
        if resuming:
            if attempt.get("running"):
                before_s, runs = attempt["before_s"] + attempt["elapsed_s"], attempt["runs"] + 1
            else:
                before_s, runs = attempt["wall_s"], attempt.get("runs", 1) + 1
        command = commands[step] + (["--resume"] if resuming else [])
        remaining = deadline - time.perf_counter()
        print(f"[{name}] {step}: {shlex.join(command)}", flush=True)
        row["steps"][step] = {"running": True, "elapsed_s": 0.0, "peak_rss_mib": 0, "before_s": before_s,
                              "runs": runs, "cmd": shlex.join(command)}  # fmt: skip

        def beat(elapsed: float, peak_mib: int, entry: dict = row["steps"][step]) -> None:
            entry.update(elapsed_s=elapsed, peak_rss_mib=max(peak_mib, entry["peak_rss_mib"]))
            _write_json(partial, row)

        _write_json(partial, row)
        log_path = logs / (f"{name}.{step}.log" if runs == 1 else f"{name}.{step}.{runs}.log")  # keep earlier logs
        result = run_step(command, log_path, timeout=remaining, max_rss=max_rss, beat=beat)
        if resuming:
            result.update(wall_s=round(result["wall_s"] + before_s, 2), runs=runs,
                          peak_rss_mib=max(result["peak_rss_mib"], attempt.get("peak_rss_mib") or 0))  # fmt: skip
        row["steps"][step] = result
        _write_json(partial, row)
        print(f"[{name}] {step}: {result['wall_s']} s, peak {result['peak_rss_mib']} MiB"
              + (f", stopped: {result['why']}" if result["why"] else ""), flush=True)  # fmt: skip
        if step == "build":
            row["counts"] = _read_json(graph / "manifest.json").get("counts", {})
            build_log = (logs / f"{name}.build.log").read_text(encoding="utf-8", errors="replace")
            row["text_columns"] = re.findall(r"item column '([^']+)': text", build_log)
        if step == "train":
            # The manifest is written last and atomically (and train starts from an empty model folder), so one
            # that is there means every stage finished, even when the process was stopped after writing it.
            manifest = _read_json(model / "manifest.json")
            state = _read_json(model.with_name(model.name + ".work") / "state.json")
            row["train_stages"] = manifest.get("timings") or state.get("timings", {})
            row["device"] = manifest.get("config", {}).get("device") or state.get("config", {}).get("device")
            test = manifest.get("metrics", {}).get("test", {})
            row["metrics"] = {src: {k: test[src].get(k) for k in ("ndcg", "recall", "tail_recall")} for src in test}
            row["notes"] = manifest.get("notes", {})
        if step == "recommend" and result["why"] is None:
            text = log_path.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if line.startswith("wrote ") and " for " in line:
                    row["recommend_users"] = int(line.split(" for ")[1].split()[0].replace(",", ""))
        if result["why"]:
            stage = ""
            if step == "train":
                running = [s for s in TRAIN_STAGES if s not in row["train_stages"]]
                stage = f" ({running[0]} stage)" if running else " (after its last stage, model written)"
                if running:
                    # Time in the stage it stopped in: the step's wall less the stages that finished (and startup).
                    spent = result["wall_s"] - sum(row["train_stages"].values())
                    row["train_running"] = {"stage": running[0], "elapsed_s": round(spent, 1)}
            row["stopped"] = f"{step}{stage}: {result['why']}"
            break
    _write_json(partial, row)
    return row


def _git() -> dict:
    commit, dirty = code_commit(ROOT)
    return {"commit": commit, "dirty": dirty}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", choices=DATASETS, default=["ml-100k", "synth-1m"], help="data sets to run")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="passed to train")
    p.add_argument("--work", type=Path, default=Path("/tmp/graphrec-scale"), help="graphs, models, logs, data")
    p.add_argument("--steps", type=lambda t: t.split(","), default=list(STEPS), help="comma-separated steps")
    p.add_argument("--timeout", type=float, default=2400, help="seconds per data set, all steps (default 2400)")
    p.add_argument("--max-rss-gib", type=float, default=20.0, help="kill a step whose process tree exceeds this")
    p.add_argument("--label", default="run", help="table the rows go to (e.g. before, after); reruns replace rows")
    p.add_argument("--regenerate", action="store_true", help="rewrite cached synthetic data")
    p.add_argument("--resume", action="store_true",
                   help="continue this label's interrupted run in --work at the same commit: keep its finished "
                   "steps, go on with train --resume")  # fmt: skip
    p.add_argument("--no-write", action="store_true", help="print only; do not touch bench/results or BENCHMARKS.md")
    p.add_argument("--data-dir", type=Path, default=DATA, help=f"real data sets (default {DATA})")
    p.add_argument("--results", type=Path, default=ROOT,
                   help="checkout whose bench/results and BENCHMARKS.md get the figures (default: this one; "
                   "lets a pinned `git worktree` of a commit run while the figures land in the main tree)")
    args = p.parse_args(argv)
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        p.error(f"--steps: unknown {unknown}; steps are {','.join(STEPS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    command = "python bench/scale.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    git = _git()
    print(f"commit {git['commit']}{' (dirty tree)' if git['dirty'] else ''}; {command}", flush=True)
    store: dict = {}
    for name in args.data:
        load_start = os.getloadavg()[0]
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        # An interrupted run's row (--resume) keeps its own command, start and starting load.
        meta = {"command": command, "started": started, "cpus": os.cpu_count(), "load": [round(load_start, 1)]}
        row = run_dataset(name, args, git, meta)
        row["load"] = [row["load"][0], round(os.getloadavg()[0], 1)]
        _write_json(args.work / "rows" / f"{name}.json", row)
        if args.no_write:
            store.setdefault(args.label, []).append(row)
            continue
        # Several bench runs (e.g. one per pinned worktree) may share the store: update it under a lock.
        results = args.results / "bench" / "results" / "scale.json"
        with open(results.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            store = _read_json(results)
            rows = [r for r in store.get(args.label, []) if r["data"] != name] + [row]
            store[args.label] = sorted(rows, key=lambda r: DATASETS.index(r["data"]))
            results.write_text(json.dumps(store, indent=1), encoding="utf-8")
            write_section(render(store), args.results)
    print(render({args.label: store.get(args.label, [])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
