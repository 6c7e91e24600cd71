"""Pieces every benchmark script shares: peak-RSS sampling and writing a result table."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

__all__ = ["PeakRSS", "emit"]


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
