"""``python -m graphrec.build``: interaction logs and side tables -> graph artifact.

Flags are generated from :class:`kg.BuildConfig` (same names as the config-file
keys, dashes for underscores); precedence is defaults < ``--config FILE`` <
flags. Bad input prints one message naming file, line and column, and exits
with status 2 without writing anything to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing

from graphrec.cli import EXIT_OK, BadInput, check_disjoint, output_path, print_notes, run_verb, spark_errors
from kg.artifact import ArtifactError
from kg.atomic import check_replaceable, claim
from kg.config import FORMATS, PATH_FIELDS, SPLITS, BuildConfig
from kg.errors import InputError
from kg.locks import OutputBusyError

__all__ = ["main", "parser", "run_build"]



def _event_weight(text: str) -> tuple[str, float]:
    event, sep, weight = text.rpartition("=")
    try:
        if not sep or not event:
            raise ValueError
        return event, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected EVENT=WEIGHT (e.g. purchase=5), got {text!r}") from None


def _column_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    """The argument parser (flags generated from :class:`kg.BuildConfig` fields)."""
    p = argparse.ArgumentParser(
        prog="python -m graphrec.build",
        description="Build a graph artifact (interactions, side tables, KG, splits) from logs.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory to write")
    p.add_argument("--config", metavar="FILE", help="YAML or TOML file of build settings (flags override it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing artifact at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    p.add_argument("--engine", choices=("default", "spark"), help="default: this process; spark: PySpark "
                   "(pip install 'graphrec[spark]', Java 17; item/user/KG tables and filters not yet; docs/SCALE.md)")
    p.add_argument("--spark-master", metavar="URL", help="with --engine spark: the master URL (local[4], "
                   "spark://host:7077, yarn); default: the one spark-submit set, else local[*]")
    hints = typing.get_type_hints(BuildConfig)
    for f in dataclasses.fields(BuildConfig):
        flag = "--" + f.name.replace("_", "-")
        doc = f.metadata["doc"]
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint)
        if f.name == "header":
            p.add_argument("--header", dest="header", action="store_true", help="the first line is a header")
            p.add_argument("--no-header", dest="header", action="store_false", help="the first line is data")
        elif f.name == "event_weights":
            p.add_argument("--event-weight", dest="event_weights", action="append", type=_event_weight,
                           metavar="EVENT=WEIGHT", help=doc + " (repeat the flag)")
        elif base is bool:
            p.add_argument(flag, dest=f.name, action="store_true", help=doc)
        elif typing.get_origin(base) is tuple:
            p.add_argument(flag, dest=f.name, type=_column_list, metavar="A,B,...", help=doc)
        elif f.name == "format":
            p.add_argument(flag, dest=f.name, choices=FORMATS, help=doc)
        elif f.name == "split":
            p.add_argument(flag, dest=f.name, choices=SPLITS, help=doc)
        else:
            metavar = "PATH" if f.name in PATH_FIELDS else (f.name.upper() if base is str else None)
            p.add_argument(flag, dest=f.name, type=base if base in (int, float) else str, metavar=metavar, help=doc)
    return p


def run_build(
    config: BuildConfig, out: str | os.PathLike, *, overwrite: bool = False, engine: str = "default",
    spark_master: str | None = None, show_progress: bool = False, config_file: str | os.PathLike | None = None,
):  # fmt: skip
    """Build the graph ``config`` describes and write it to ``out`` (what ``python -m graphrec.build`` runs).

    The output directory is locked while it is written and replaced atomically.

    Args:
        config: what to read and how (:class:`kg.BuildConfig`).
        out: the graph artifact directory to write.
        overwrite: replace an existing graph artifact at ``out``.
        engine: ``"default"`` (in process) or ``"spark"`` (docs/SCALE.md).
        spark_master: with ``engine="spark"``: the master URL (default ``local[*]``).
        show_progress: progress while reading large logs.
        config_file: the settings file the config came from (checked not to lie inside ``out``).

    Returns:
        The :class:`kg.graph.Graph` that was written.

    Raises:
        kg.InputError: bad input (file, row, column); ValueError: unusable settings;
        FileExistsError: ``out`` exists without ``overwrite``; OutputBusyError: another run writes ``out``.
    """
    from eval.progress import progress_bar  # a bar on a terminal, plain periodic lines in a log
    from kg.build import build_graph  # pandas and pyarrow load only when a build runs
    from kg.graph import FORMAT as GRAPH_FORMAT

    if engine not in ("default", "spark"):
        raise ValueError(f"engine must be 'default' or 'spark', got {engine!r}")
    inputs = {f"--{name.replace('_', '-')}": getattr(config, name) for name in PATH_FIELDS}
    out = output_path("--out", out)
    check_disjoint("--out", out, {**inputs, "--config": config_file})
    with claim(out) as notes:
        print_notes("graphrec.build", notes)
        check_replaceable(out, overwrite=overwrite, replaces=GRAPH_FORMAT)
        if engine == "spark":
            from kg.spark.build import build_graph_spark

            with spark_errors():
                graph = build_graph_spark(config, master=spark_master)
        else:
            graph = build_graph(config, show_progress=show_progress, progress=progress_bar)
        graph.save(out, overwrite=overwrite)
    return graph


def main(argv: list[str] | None = None) -> int:
    """Run the build; returns the exit status (0 built, 2 bad input or settings)."""
    errors = (InputError, ValueError, FileExistsError, ArtifactError, OutputBusyError)
    return run_verb("graphrec.build", parser(), argv, _run, errors=errors)


def _run(parsed: argparse.Namespace) -> int:
    args = vars(parsed)
    out = args.pop("out")
    config_file = args.pop("config", None)
    overwrite = args.pop("overwrite", False)
    quiet = args.pop("quiet", False)
    engine = args.pop("engine", "default")
    spark_master = args.pop("spark_master", None)
    if spark_master is not None and engine != "spark":
        raise BadInput("--spark-master needs --engine spark")
    if "event_weights" in args:
        args["event_weights"] = dict(args["event_weights"])
    try:
        config = BuildConfig.from_file(config_file) if config_file else BuildConfig()
        config = config.replace(**args)
    except (TypeError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    graph = run_build(config, out, overwrite=overwrite, engine=engine, spark_master=spark_master,
                      show_progress=not quiet, config_file=config_file)
    if not quiet:
        from kg.summary import format_summary

        print(format_summary(graph.meta))
    print(f"wrote {out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
