"""``python -m graphrec.train``: graph artifact (or the embedded demo) -> model artifact + report.

Usage::

    python -m graphrec.train                       # demo: generate, build, train, report
    python -m graphrec.train --graph DIR --out DIR [--config FILE] [--set section.field=value ...]
        [--device auto|cpu|cuda] [--stages text,als,neighbors,gnn,ranker,evaluate] [--nproc N] [--resume]
        [--work-dir DIR] [--overwrite] [--quiet]

Stages are checkpointed in the work directory (default ``OUT.work``); after an
interruption, the same command with ``--resume`` continues at the stage (and GNN
epoch) where it stopped and ends with the same model and metrics. The work
directory is removed once the model artifact is written (``--keep-work`` keeps it).
Exit status: 0 on success, 2 on bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from graphrec.cli import EXIT_OK, BadInput, check_disjoint, output_path, print_notes, run_verb
from kg.artifact import ArtifactError
from kg.atomic import check_replaceable, claim, discard
from kg.locks import OutputBusyError
from training.pipeline.config import STAGES, TrainConfig, describe
from training.pipeline.report import format_report, run_name
from training.pipeline.workdir import ResumeError

__all__ = ["DEMO_OVERRIDES", "build_parser", "main", "run_train"]

DEMO_OVERRIDES = (
    "text.fine_tune_steps=30",
    "gnn.epochs=40",
    "ranker.ensemble=1",
    "ranker.epochs=15",
    "ranker.patience=5",
    "ranker.candidates_per_source=50",
)
"""Settings of the no-argument demo run, so that it finishes in about 2 minutes on 2 CPU cores (README)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.train",
        description="Train the sources (text, ALS, item-KNN, EASE, GNN) and the hybrid ranker on a graph artifact; "
        "write a model artifact and print the report. With no --graph, trains on the embedded demo data.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configuration settings (file keys and --set names):\n\n" + describe(),
    )
    parser.add_argument("--graph", type=Path, help="graph artifact (python -m graphrec.build); default: the demo")
    parser.add_argument("--out", type=Path, help="model artifact directory to write (default: graphrec-demo/model)")
    parser.add_argument("--config", type=Path, help="YAML or TOML file of settings (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override one setting, e.g. --set als.factors=64 (repeatable; applied after --config)",
    )  # fmt: skip
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default: config, auto)")
    parser.add_argument(
        "--stages", default=",".join(STAGES),
        help=f"comma-separated stages to run (default: all: {','.join(STAGES)}); a source stage left out is not used",
    )  # fmt: skip
    parser.add_argument(
        "--nproc", type=int, metavar="N",
        help="train the GNN on N processes (torch.distributed DDP via torchrun: gloo on CPU, NCCL with one GPU each; "
        "same as --set gnn.nproc=N)",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its work directory")
    parser.add_argument("--work-dir", type=Path, help="checkpoint directory (default: OUT.work)")
    parser.add_argument("--keep-work", action="store_true", help="keep the work directory after success")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model artifact at --out")
    parser.add_argument("--demo-dir", type=Path, default=Path("graphrec-demo"), help="where the demo goes")
    parser.add_argument(
        "--demo-size", choices=("tiny", "small", "default"), default="small", help="size of the demo data"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _config(args: argparse.Namespace, demo: bool) -> TrainConfig:
    config = TrainConfig.from_file(args.config) if args.config is not None else TrainConfig()
    if demo and args.config is None:
        config = config.with_overrides(DEMO_OVERRIDES)
    config = config.with_overrides(args.overrides)
    if args.nproc is not None:
        if args.nproc < 1:
            raise BadInput(f"--nproc must be >= 1, got {args.nproc}")
        config = config.with_overrides([f"gnn.nproc={args.nproc}"])
    if args.device is not None:
        config = replace(config, device=args.device)
    from training.base import resolve_device  # torch loads only when a run starts

    try:
        device = resolve_device(config.device)
    except (RuntimeError, ValueError) as exc:
        raise BadInput(f"--device {config.device}: {exc}") from None
    return replace(config, device=str(device))


def _stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise BadInput(f"--stages {text!r}: unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    return stages


def _fingerprint(graph_dir: Path) -> str:
    return hashlib.sha256((graph_dir / "manifest.json").read_bytes()).hexdigest()


def run(args: argparse.Namespace, log=print) -> Path:
    """Train as the parsed arguments say; returns the model artifact directory."""
    from graphrec.artifacts.model import FORMAT as MODEL_FORMAT

    stages = _stages(args.stages)  # checked before the demo is built or torch loads
    demo = args.graph is None
    if not demo:  # a wrong --graph fails at once, before torch loads
        from kg.artifact import read_manifest
        from kg.graph import FORMAT as GRAPH_FORMAT
        from kg.graph import FORMAT_VERSION as GRAPH_VERSION

        read_manifest(args.graph, format=GRAPH_FORMAT, max_version=GRAPH_VERSION, verify=False)
    if demo:
        if args.out is None:
            args.out = args.demo_dir / "model"
            args.overwrite = True  # the demo's own output, regenerated on every run
        from graphrec.demo import build_demo

        log(f"demo: generating and building the {args.demo_size} demo data in {args.demo_dir}")
        args.graph = build_demo(args.demo_dir, size=args.demo_size)
    elif args.out is None:
        raise BadInput("--out is required with --graph")
    config = _config(args, demo)
    args.out = output_path("--out", args.out)
    work_dir = output_path("--work-dir", args.work_dir or args.out.with_name(args.out.name + ".work"))
    check_disjoint("--out", args.out, {"--graph": args.graph, "--config": args.config, "--work-dir": work_dir})
    check_disjoint("--work-dir", work_dir, {"--graph": args.graph, "--config": args.config})
    with claim(args.out) as out_notes, claim(work_dir) as work_notes:
        print_notes("graphrec.train", out_notes + work_notes)
        check_replaceable(args.out, overwrite=args.overwrite, replaces=MODEL_FORMAT)
        return _train(args, config, stages, work_dir, log, name=run_name(args.graph, demo=demo))


def _train(
    args: argparse.Namespace, config: TrainConfig, stages: list[str], work_dir: Path, log, *, name: str
) -> Path:
    """The training run proper; the caller holds the locks of ``--out`` and the work directory."""
    from graphrec.artifacts.model import write_model
    from kg.graph_io import load_graph
    from training.pipeline.runner import Pipeline

    graph = load_graph(args.graph)
    log(
        f"training on {args.graph} ({graph.num_users:,} users, {graph.num_items:,} items) on {config.device}; "
        f"stages {','.join(stages)}; checkpoints in {work_dir}"
    )
    started = time.perf_counter()
    pipeline = Pipeline(
        graph, config, work_dir, graph_fingerprint=_fingerprint(args.graph), graph_path=args.graph, stages=stages,
        resume=args.resume, show_progress=not args.quiet, log=log,
    )  # fmt: skip
    result = pipeline.run()
    report = format_report(
        title=f"graphrec training report: {name}", metrics=result.metrics, ablation=result.ablation,
        curves=result.training_curves, timings=result.timings, notes=result.notes, counts=graph.counts(),
        k=config.eval.k,
    )  # fmt: skip
    write_model(result, args.graph, args.out, report=report, overwrite=args.overwrite, title=name)
    if not args.keep_work:
        discard(work_dir)
    log("")
    log(report)
    seconds = time.perf_counter() - started
    if pipeline.work.previous_seconds:  # a resumed run: count the runs before it too
        total = seconds + pipeline.work.previous_seconds
        log(f"wrote {args.out} in {total:.0f} s over all runs ({seconds:.0f} s in this one, after --resume)")
    else:
        log(f"wrote {args.out} in {seconds:.0f} s")
    log(f"report: {args.out / 'report' / 'report.md'} (plots beside it)")
    return args.out


def run_train(
    graph: str | os.PathLike, out: str | os.PathLike, *, config: str | os.PathLike | None = None,
    settings: Mapping[str, Any] | None = None, stages: Sequence[str] | None = None, device: str | None = None,
    overwrite: bool = False, resume: bool = False, keep_work: bool = False, quiet: bool = True, log=print,
) -> Path:  # fmt: skip
    """Train on a graph artifact and write the model artifact (what ``python -m graphrec.train`` runs).

    Args:
        graph: the graph artifact directory (``graphrec.build``).
        out: the model artifact directory to write.
        config: a YAML or TOML settings file (``configs/``).
        settings: ``{"section.field": value}`` overrides, e.g. ``{"als.factors": 64}`` (as ``--set``).
        stages: the stages to run (default: all).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default: the config's).
        overwrite: replace an existing model artifact at ``out``.
        resume: continue an interrupted run from its work directory.
        keep_work: keep the work directory (``OUT.work``) after success.
        quiet: no progress bars.
        log: where the log lines go.

    Returns:
        ``out``.

    Raises:
        BadInput, ValueError: unusable settings; ArtifactError: a bad graph artifact;
        FileExistsError: ``out`` exists without ``overwrite``.
    """
    argv = ["--graph", os.fspath(graph), "--out", os.fspath(out)]
    if config is not None:
        argv += ["--config", os.fspath(config)]
    for key, value in (settings or {}).items():
        argv += ["--set", f"{key}={value}"]
    if stages is not None:
        argv += ["--stages", ",".join(stages)]
    if device is not None:
        argv += ["--device", device]
    argv += [flag for flag, on in (("--overwrite", overwrite), ("--resume", resume), ("--keep-work", keep_work),
                                   ("--quiet", quiet)) if on]  # fmt: skip
    return run(build_parser().parse_args(argv), log=log)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m graphrec.train``; returns the exit status."""
    return run_verb(
        "graphrec.train",
        build_parser(),
        argv,
        _run,
        errors=(ArtifactError, ResumeError, FileExistsError, OutputBusyError, ValueError, TypeError),
        interrupted="interrupted; rerun the same command with --resume to continue",
    )


def _run(args: argparse.Namespace) -> int:
    run(args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
