"""What every ``python -m graphrec.<verb>`` entry point shares."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "BadInput",
    "check_disjoint",
    "os_error_message",
    "output_path",
    "print_notes",
    "run_verb",
    "spark_errors",
]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
"""Exit statuses of every verb: done, input or settings the user can fix, interrupted (Ctrl-C)."""

Errors = Union[tuple[type[BaseException], ...], Callable[[], tuple[type[BaseException], ...]]]


class BadInput(Exception):
    """Input the user can fix; the entry point prints it as one line and exits with status 2."""


def run_verb(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Optional[Sequence[str]],
    run: Callable[[argparse.Namespace], int],
    *,
    errors: Errors = (),
    interrupted: Optional[str] = None,
) -> int:
    """The ``main()`` of a verb: parse ``argv``, call ``run(args)``, turn what the user can fix into one line.

    ``--help`` and usage errors keep argparse's message and status. :class:`BadInput`,
    the verb's ``errors`` and :class:`OSError` (as :func:`os_error_message`) print
    ``"<prog>: error: <message>"`` to stderr and return :data:`EXIT_BAD_INPUT`;
    anything else is a bug and propagates with its traceback.

    Args:
        prog: the verb's name in messages (``"graphrec.train"``).
        parser: the verb's argument parser.
        argv: the arguments (``None``: ``sys.argv[1:]``).
        run: does the work and prints the result; returns the exit status.
        errors: the exception types ``run`` raises for input it rejects, or a function
            returning them, asked only after a failure (for types whose module
            ``run`` loads: importing it up front would slow ``--help``).
        interrupted: what to tell the user on Ctrl-C (status :data:`EXIT_INTERRUPTED`);
            ``None`` lets ``KeyboardInterrupt`` propagate.

    Returns:
        the exit status.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2) keep argparse's message
        return int(exc.code or 0)
    try:
        return run(args)
    except (BadInput, *(errors() if callable(errors) else errors)) as exc:
        message = str(exc)
    except OSError as exc:
        message = os_error_message(exc)
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


@contextmanager
def spark_errors() -> Iterator[None]:
    """Turn a missing Spark and a failed Spark job into :class:`BadInput` (one line, exit 2).

    An executor's error arrives wrapped in Spark's exception types with the whole
    remote trace; ``kg.spark.session.spark_failure`` reduces it to its last line.
    Anything that is not Spark's propagates unchanged.
    """
    from kg.spark.session import SparkUnavailable, spark_failure

    try:
        yield
    except SparkUnavailable as exc:
        raise BadInput(str(exc)) from None
    except Exception as exc:
        failure = spark_failure(exc)
        if failure is None:
            raise
        raise BadInput(failure) from None


def output_path(flag: str, value: str | os.PathLike) -> Path:
    """``value`` as an output path, refusing ``.``, ``..``, ``/`` and paths inside an artifact.

    Raises:
        BadInput: the path has no name of its own to write under, or lies inside a
            graphrec artifact (whose manifest would no longer cover its files); the
            message names ``flag``.
    """
    from kg.atomic import check_output_name

    try:
        path = check_output_name(value)
    except ValueError as exc:
        raise BadInput(f"{flag} {exc}") from None
    for parent in Path(os.path.abspath(path)).parents:
        if _artifact_format(parent):
            raise BadInput(
                f"{flag} {value} lies inside the {_artifact_format(parent)} artifact {parent}; "
                "writing there would corrupt it: choose a path outside it"
            )
    return path


def _artifact_format(directory: Path) -> Optional[str]:
    """The ``format`` of a graphrec artifact's manifest in ``directory``, else ``None``."""
    import json

    try:
        with open(directory / "manifest.json", encoding="utf-8") as handle:
            found = json.load(handle).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and found.startswith("graphrec.") else None


def check_disjoint(out_flag: str, out: Path, inputs: Mapping[str, Optional[str | os.PathLike]]) -> None:
    """Refuse an output that is or contains one of the inputs.

    Writing ``--out`` replaces it as a whole, so an input inside it would be deleted.
    (An output inside an input artifact is refused by :func:`output_path`.)

    Args:
        out_flag: the output's flag, for the message (``"--out"``).
        out: the output path.
        inputs: flag -> input path (``None`` entries are skipped).

    Raises:
        BadInput: naming both flags.
    """
    target = Path(os.path.abspath(out)).resolve()
    for flag, value in inputs.items():
        if value is None:
            continue
        source = Path(os.path.abspath(value)).resolve()
        if source == target or target in source.parents:
            raise BadInput(f"{out_flag} {out} holds the input {flag} {value}; writing there would delete it")


def os_error_message(exc: OSError) -> str:
    """One line for an OS failure the user can fix (permissions, disk full, a file in the way)."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


def print_notes(prog: str, notes: list[str]) -> None:
    """Tell the user what recovery after an interrupted run did (to stderr)."""
    for note in notes:
        print(f"{prog}: note: {note}", file=sys.stderr)
