"""Progress for long stages: one labelled bar with an ETA, or periodic lines in a log.

Every long loop of the project (GNN epochs, text fine-tuning and embedding, ranker
epochs, evaluation and top-K over users, the ablation) reports through
:func:`progress_bar`, which takes tqdm's arguments and returns

* on a terminal: a tqdm bar labelled ``[stage]`` with rate and ETA;
* otherwise (a log file, CI, a pipe): a :class:`LineProgress` that prints one plain
  line every ``interval`` seconds and at each 10 % of the work (at most one a
  second), e.g. ``[gnn] 40% 12/30 epoch, 1m05s elapsed, eta 1m20s, loss=0.3100``,
  and a last line when the loop ends; a loop over within ``QUIET_BELOW`` seconds
  prints nothing. No carriage returns, so a log holds a few dozen lines instead of
  thousands of frames.

``GRAPHREC_PROGRESS=bar|lines|off`` overrides the choice (read here, once per bar,
so that every entry point and library call agrees).

:func:`quiet_library_bars` silences the bars that transformers and huggingface_hub
draw on their own ("Loading weights", "Writing model shards", downloads) while the
project's encoder loads or saves a model.

This module imports only the standard library and tqdm (``eval/`` imports no
project code), so ``training`` and ``graphrec`` can both use it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO

__all__ = ["LineProgress", "format_seconds", "progress_bar", "progress_mode", "quiet_library_bars"]

MODES = ("bar", "lines", "off")
LINE_INTERVAL = 10.0
"""Seconds between two progress lines when not on a terminal (also printed at every 10 %)."""
MIN_GAP = 1.0
"""Seconds at least between two lines (a fast loop does not print all its 10 % marks)."""
QUIET_BELOW = 2.0
"""A loop that ends within this many seconds, having printed nothing, prints no closing line either."""


def format_seconds(seconds: float) -> str:
    """``75 -> '1m15s'``, ``3725 -> '1h02m'``, ``4.2 -> '4s'``; ``'?'`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def progress_mode(stream: Optional[TextIO] = None) -> str:
    """``"bar"`` on a terminal, ``"lines"`` otherwise; ``GRAPHREC_PROGRESS`` overrides.

    Raises:
        ValueError: ``GRAPHREC_PROGRESS`` is set to something else than bar, lines or off.
    """
    forced = os.environ.get("GRAPHREC_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"GRAPHREC_PROGRESS={forced!r}; expected one of {', '.join(MODES)}")
        return forced
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class LineProgress:
    """A tqdm look-alike that prints plain, periodic one-line updates.

    It supports what the project's loops use: iteration, ``update``,
    ``set_postfix``/``set_postfix_str``, ``set_description``, ``close`` and use as a
    context manager.

    Args:
        iterable: what to iterate over (optional).
        total: the amount of work; taken from ``len(iterable)`` when possible.
        desc: the label, printed as ``[desc]``.
        unit: what is counted (``"epoch"``, ``"user"``...).
        initial: work already done (a resumed run).
        file: where lines go (default stderr).
        unit_scale: write counts of 10,000 and more as ``12.3k``, ``4.56M``.
        interval: a line at least this often (seconds), besides the 10 % marks.
        min_gap: seconds at least between two lines.
        quiet_below: a loop shorter than this that printed nothing stays silent.
        clock: time source (for tests).
    """

    def __init__(
        self,
        iterable: Optional[Iterable] = None,
        *,
        total: Optional[float] = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        file: Optional[TextIO] = None,
        unit_scale: bool = False,
        interval: float = LINE_INTERVAL,
        min_gap: float = MIN_GAP,
        quiet_below: float = QUIET_BELOW,
        clock=time.monotonic,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = initial
        self.file = sys.stderr if file is None else file
        self.interval, self.min_gap, self.quiet_below, self.clock = interval, min_gap, quiet_below, clock
        self.lines = 0
        self.unit_scale = unit_scale
        self.start = clock()
        self._initial = initial
        self._last_time = self.start
        self._last_tenth = self._tenth()
        self._postfix = ""
        self.closed = False

    # -- tqdm's surface -------------------------------------------------------------------
    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        tenth, since = self._tenth(), now - self._last_time
        if (tenth > self._last_tenth and since >= self.min_gap) or since >= self.interval:
            if not (self.total and self.n >= self.total):  # the closing line says 100 %
                self._emit(now)
            self._last_tenth, self._last_time = tenth, now

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        values = dict(ordered_dict or {}, **kwargs)
        self._postfix = ", ".join(f"{k}={_short(v)}" for k, v in values.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = str(s)

    def set_description(self, desc: Optional[str] = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = self.clock() - self.start
        if self.lines or elapsed >= self.quiet_below:
            self._write(f"{self._label()}done: {self._count()} in {format_seconds(elapsed)}{self._tail()}")

    # -- lines ----------------------------------------------------------------------------
    def _tenth(self) -> int:
        if not self.total:
            return 0
        return int(10 * min(self.n / self.total, 1.0))

    def _label(self) -> str:
        return f"[{self.desc}] " if self.desc else ""

    def _count(self) -> str:
        show = _scaled if self.unit_scale else _short
        if self.total:
            return f"{show(self.n)}/{show(self.total)} {self.unit}"
        return f"{show(self.n)} {self.unit}"

    def _tail(self) -> str:
        return f", {self._postfix}" if self._postfix else ""

    def _emit(self, now: float) -> None:
        elapsed = now - self.start
        parts = [self._label().rstrip()] if self.desc else []
        if self.total:
            parts.append(f"{100 * min(self.n / self.total, 1.0):.0f}%")
        line = " ".join(parts + [self._count()]) + f", {format_seconds(elapsed)} elapsed"
        done = self.n - self._initial
        if self.total and done > 0:
            eta = elapsed / done * (self.total - self.n)
            line += f", eta {format_seconds(eta)}"
        self._write(line + self._tail())

    def _write(self, line: str) -> None:
        self.lines += 1
        try:
            self.file.write(line + "\n")
            self.file.flush()
        except (OSError, ValueError):  # a closed or broken stream never stops a run
            pass


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if not value.is_integer() else str(int(value))
    return str(value)


def _scaled(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= factor:
            divisor = 1e3 if suffix == "k" else factor
            return f"{value / divisor:.3g}{suffix}"
    return _short(value)


class _Off(LineProgress):
    """Counts but prints nothing (``disable=True`` or ``GRAPHREC_PROGRESS=off``)."""

    def _write(self, line: str) -> None:
        pass


def progress_bar(
    iterable: Optional[Iterable] = None,
    *,
    desc: str,
    total: Optional[float] = None,
    unit: str = "it",
    disable: bool = False,
    initial: float = 0,
    file: Optional[TextIO] = None,
    leave: bool = True,
    unit_scale: bool = False,
):
    """A progress bar for one stage: tqdm on a terminal, :class:`LineProgress` elsewhere.

    Takes the tqdm arguments the project uses, so ``tqdm(...)`` becomes
    ``progress_bar(...)`` with a label.

    Args:
        iterable: optional iterable to wrap.
        desc: the stage's label, e.g. ``"gnn"``; shown as ``[gnn]``.
        total: the amount of work (``len(iterable)`` when omitted).
        unit: what is counted.
        disable: show nothing (``show_progress=False``).
        initial: work already done (resumed runs).
        file: the stream (default stderr; its being a terminal picks the mode).
        leave: keep the finished tqdm bar on screen.
        unit_scale: show large counts as ``1.2M`` (tqdm's option; the lines do it too).

    Returns:
        A tqdm-compatible object (iterate it or call ``update``; close it or use ``with``).
    """
    mode = "off" if disable else progress_mode(file)
    if mode == "bar":
        from tqdm.auto import tqdm

        return tqdm(
            iterable, desc=f"[{desc}]", total=total, unit=unit, initial=initial, file=file, leave=leave,
            dynamic_ncols=True, unit_scale=unit_scale,
        )  # fmt: skip
    cls = _Off if mode == "off" else LineProgress
    return cls(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file, unit_scale=unit_scale)


@contextlib.contextmanager
def quiet_library_bars():
    """Silence transformers' and huggingface_hub's own progress bars and info logs for a block.

    Restores their previous state afterwards. A no-op for a library that is not installed.
    """
    restore = []
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        if not are_progress_bars_disabled():
            disable_progress_bars()
            restore.append(enable_progress_bars)
    except ImportError:
        pass
    try:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        restore.append(lambda: hf_logging.set_verbosity(verbosity))
        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            restore.append(hf_logging.enable_progress_bar)
    except ImportError:
        pass
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()
