"""graphrec.cli.run_verb: the one error policy every verb's main() follows."""

from __future__ import annotations

import argparse
import errno

import pytest

from graphrec.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, BadInput, run_verb


class Rejected(Exception):
    """An error type a verb declares as the user's to fix."""


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="graphrec.probe")
    made.add_argument("--n", type=int, default=1)
    return made


def verb(error: BaseException | None):
    def run(args: argparse.Namespace) -> int:
        if error is not None:
            raise error
        print(f"ran with n={args.n}")
        return EXIT_OK

    return run


def test_a_clean_run_returns_its_status_and_output(capsys):
    assert run_verb("graphrec.probe", parser(), ["--n", "3"], verb(None)) == EXIT_OK
    assert capsys.readouterr().out == "ran with n=3\n"


def test_help_and_usage_errors_return_argparse_status(capsys):
    assert run_verb("graphrec.probe", parser(), ["--help"], verb(None)) == 0
    assert run_verb("graphrec.probe", parser(), ["--n", "x"], verb(None)) == 2
    assert "invalid int value" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error, line",
    [
        (BadInput("--k must be >= 1"), "graphrec.probe: error: --k must be >= 1\n"),
        (Rejected("no such model"), "graphrec.probe: error: no such model\n"),
        (FileExistsError("out exists; pass --overwrite"), "graphrec.probe: error: out exists; pass --overwrite\n"),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), "graphrec.probe: error: /x: Permission denied\n"),
    ],
)
def test_errors_the_user_can_fix_are_one_line_and_status_2(capsys, error, line):
    status = run_verb("graphrec.probe", parser(), [], verb(error), errors=(Rejected, FileExistsError))
    assert status == EXIT_BAD_INPUT
    assert capsys.readouterr().err == line


def test_errors_may_be_named_after_the_run_and_others_propagate(capsys):
    asked = []

    def late() -> tuple[type[BaseException], ...]:
        asked.append(True)
        return (Rejected,)

    assert run_verb("graphrec.probe", parser(), [], verb(None), errors=late) == EXIT_OK and not asked
    assert run_verb("graphrec.probe", parser(), [], verb(Rejected("late")), errors=late) == EXIT_BAD_INPUT
    with pytest.raises(RuntimeError, match="a bug"):
        run_verb("graphrec.probe", parser(), [], verb(RuntimeError("a bug")), errors=late)


def test_interrupt_is_reported_only_where_the_verb_says_how_to_resume(capsys):
    interrupted = "interrupted; use --resume"
    status = run_verb("graphrec.probe", parser(), [], verb(KeyboardInterrupt()), interrupted=interrupted)
    assert status == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "graphrec.probe: interrupted; use --resume\n"
    with pytest.raises(KeyboardInterrupt):
        run_verb("graphrec.probe", parser(), [], verb(KeyboardInterrupt()))
