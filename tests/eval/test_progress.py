"""Progress off a terminal: a bounded number of plain lines, no carriage returns (eval/progress.py)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eval.progress import LineProgress, format_seconds, progress_bar, progress_mode, quiet_library_bars


class FakeClock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@given(total=st.integers(1, 5000), step=st.floats(0.0, 3.0))
def test_lines_are_bounded_and_plain(total, step):
    out = io.StringIO()
    clock = FakeClock(step)
    with LineProgress(total=total, desc="gnn", unit="epoch", file=out, interval=10.0, clock=clock) as bar:
        for _ in range(total):
            bar.update(1)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    # one line per 10 % mark (at most one a second), one per 10 s of (fake) time, one closing line
    assert len(lines) <= min(10, clock.now) + int(clock.now / 10.0) + 2
    if clock.now >= 2.0 + step:  # a loop of 2 s or more always says that it finished
        assert lines[-1].startswith(f"[gnn] done: {total}/{total} epoch")
    assert all(line.startswith("[gnn] ") for line in lines)


def test_a_fast_loop_is_silent():
    out = io.StringIO()
    for _ in LineProgress(range(1000), desc="evaluate", file=out, clock=FakeClock(0.001)):
        pass
    assert out.getvalue() == ""


def test_line_shows_percent_eta_and_postfix():
    out = io.StringIO()
    bar = LineProgress(total=30, desc="gnn", unit="epoch", file=out, interval=1e9, clock=FakeClock(2.0))
    for _ in range(12):
        bar.set_postfix(loss=0.31)
        bar.update(1)
    first = out.getvalue().splitlines()[0]
    assert first.startswith("[gnn] 10% 3/30 epoch, ")
    assert "eta " in first and "loss=0.31" in first
    bar.close()
    bar.close()  # closing twice prints once
    assert out.getvalue().count("done:") == 1


def test_progress_bar_picks_the_mode(monkeypatch):
    monkeypatch.delenv("GRAPHREC_PROGRESS", raising=False)
    plain = io.StringIO()
    assert progress_mode(plain) == "lines"
    assert progress_mode(TTY()) == "bar"
    items = list(progress_bar(range(50), desc="ranker", unit="epoch", file=plain))
    assert items == list(range(50))
    assert plain.getvalue() == ""  # over in well under 2 s: nothing to report
    tty = TTY()
    with progress_bar(total=5, desc="evaluate", file=tty) as bar:
        bar.update(5)
    assert "[evaluate]" in tty.getvalue()
    silent = io.StringIO()
    for _ in progress_bar(range(5), desc="x", file=silent, disable=True):
        pass
    assert silent.getvalue() == ""
    monkeypatch.setenv("GRAPHREC_PROGRESS", "off")
    assert progress_mode(TTY()) == "off"
    monkeypatch.setenv("GRAPHREC_PROGRESS", "loud")
    with pytest.raises(ValueError, match="GRAPHREC_PROGRESS"):
        progress_mode(plain)


def test_format_seconds():
    assert [format_seconds(s) for s in (4.2, 75, 3725)] == ["4s", "1m15s", "1h02m"]
    assert format_seconds(float("nan")) == "?"


def test_quiet_library_bars_restores_state():
    hf_logging = pytest.importorskip("transformers.utils.logging")
    before = (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity())
    with quiet_library_bars():
        assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == before


def test_unit_scale_shortens_large_counts():
    out = io.StringIO()
    with LineProgress(total=30_000_000, desc="reading log.csv", unit="rows", unit_scale=True, file=out,
                      clock=FakeClock(3.0)) as bar:  # fmt: skip
        bar.update(12_000_000)
    assert out.getvalue().splitlines()[0].startswith("[reading log.csv] 40% 12M/30M rows, ")
