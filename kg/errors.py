"""Bad input: the one error class, and the ledger of rows refused in lenient mode.

Every check in ``kg`` that finds a bad row goes through :class:`Rejections`:
strict (the default) raises :class:`InputError` for the first offending row,
naming file, line and column; lenient counts the rows per file and reason and
keeps a few examples, which end up in the artifact manifest and the CLI
summary. Nothing is dropped without being counted.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

__all__ = ["InputError", "Rejections"]


class InputError(ValueError):
    """An input file does not hold what was expected.

    Attributes:
        path: the file (``None`` when the problem is not tied to one file).
        line: 1-based physical line number in a text file, counting the header
            line; 1-based row number in a Parquet file; ``None`` when the problem
            is not a single row (an empty file, a missing column).
        column: the column concerned, when there is one.
        detail: what was expected and what was found, without the location.
    """

    def __init__(
        self,
        detail: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.line = int(line) if line is not None else None
        self.column = column
        self.detail = detail
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.detail}" if where else self.detail


class Rejections:
    """Strict-or-lenient handling of bad rows, and the per-file, per-reason report.

    Args:
        lenient: count and report bad rows instead of raising on the first one.
        max_examples: example rows kept per file and reason.
    """

    def __init__(self, *, lenient: bool = False, max_examples: int = 3) -> None:
        if max_examples < 0:
            raise ValueError(f"max_examples must be >= 0, got {max_examples}")
        self.lenient = lenient
        self.max_examples = max_examples
        self._counts: dict[str, dict[str, int]] = {}
        self._examples: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def reject(
        self,
        *,
        path: str | os.PathLike,
        reason: str,
        expected: str,
        lines: Sequence[int] | np.ndarray | None,
        values: Sequence[Any] | None = None,
        column: str | None = None,
        count: int | None = None,
    ) -> None:
        """Refuse rows: raise for the first (strict) or count them (lenient).

        Args:
            path: the file the rows come from.
            reason: short, stable reason key for the report, e.g. ``"missing user id"``.
            expected: what a good row holds, for the error message.
            lines: line/row numbers of the refused rows (``None`` when unknown).
            values: the offending values, aligned with ``lines`` (only the first
                few are looked at).
            column: the column concerned, when there is one.
            count: number of refused rows when ``lines`` is ``None``.

        Raises:
            InputError: in strict mode, for the first refused row.
        """
        path = os.fspath(path)
        lines = None if lines is None else np.asarray(lines)
        n = int(count if count is not None else (len(lines) if lines is not None else 1))
        if n == 0:
            return
        first_line = int(lines[0]) if lines is not None and len(lines) else None
        first_value = values[0] if values is not None and len(values) else None
        if not self.lenient:
            found = "" if values is None else f"; found {_show(first_value)}"
            more = f" ({n} rows like this; --lenient skips and reports them)" if n > 1 else ""
            raise InputError(f"{reason}: expected {expected}{found}{more}", path=path, line=first_line, column=column)
        per_file = self._counts.setdefault(path, {})
        per_file[reason] = per_file.get(reason, 0) + n
        kept = self._examples.setdefault(path, {}).setdefault(reason, [])
        room = self.max_examples - len(kept)
        for i in range(min(room, n)):
            example: dict[str, Any] = {}
            if lines is not None and i < len(lines):
                example["line"] = int(lines[i])
            if values is not None and i < len(values):
                example["value"] = _show(values[i])
            if column is not None:
                example["column"] = column
            kept.append(example)

    @property
    def total(self) -> int:
        """Rows refused so far, over every file and reason."""
        return sum(sum(reasons.values()) for reasons in self._counts.values())

    def report(self) -> dict[str, dict[str, int]]:
        """``{file: {reason: count}}`` of refused rows (empty when nothing was refused)."""
        return {path: dict(reasons) for path, reasons in self._counts.items()}

    def examples(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """``{file: {reason: [{"line", "value", "column"}, ...]}}``, at most ``max_examples`` each."""
        return {path: {r: list(e) for r, e in reasons.items()} for path, reasons in self._examples.items()}


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
