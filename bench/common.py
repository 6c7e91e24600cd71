"""Pieces every benchmark script shares: peak-RSS sampling, the commit measured, writing a result table."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import psutil

__all__ = ["PeakRSS", "code_commit", "emit"]


class PeakRSS:
    """Sample this process's RSS every ``interval`` s in a thread while the block runs.

    ``start`` is the RSS on entry, ``peak`` the highest seen (entry and exit included) and
    ``increase`` = ``peak - start``, all in bytes::

        with PeakRSS() as rss:
            work()
        print(rss.increase / 2**20, "MiB")
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.increase = self.peak - self.start


def emit(text: str, out: Path) -> int:
    """Print a benchmark's markdown and write it to ``out`` (parents created); the script's exit status (0)."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


def code_commit(root: Path) -> tuple[str, bool]:
    """The short HEAD of the checkout at ``root`` and whether its code differs from it.

    Uncommitted changes under bench/ and to BENCHMARKS.md do not count: they are not the code measured.
    """

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "-uno", "--", ".", ":!bench", ":!BENCHMARKS.md")
    return git("rev-parse", "--short", "HEAD"), bool(dirty)
