"""bench/scale_spark.py and its report (bench/scale_spark_report.py): stages, growth ratios, stopped and
skipped stages, the markdown file (no Spark run)."""

from __future__ import annotations

import pytest

from tests.bench_modules import load_bench as _load


@pytest.fixture(scope="module")
def bench():
    return _load("scale_spark")


@pytest.fixture(scope="module")
def report():
    return _load("scale_spark_report")


def _step(wall, mib=1024, why=None):
    return {"wall_s": wall, "peak_rss_mib": mib, "rc": 0 if why is None else 1, "why": why, "cmd": "x"}


def _row(events, stages, **extra):
    return {"events": events, "users": events // 100, "items": 10_000, "counts": {"interactions": events // 2},
            "stages": stages, "skipped": extra.pop("skipped", {}), **extra}  # fmt: skip


def test_size_names(report):
    assert [report.size_name(n) for n in (10_000_000, 1_500_000, 250_000, 999)] == ["10M", "1.5M", "250k", "999"]


def test_growth_is_the_wall_ratio_of_completed_stages(report):
    rows = [
        _row(10_000_000, {"spark_build": _step(100.0), "build": _step(20.0)}),
        _row(30_000_000, {"spark_build": _step(250.0), "build": _step(70.0, why="timeout after 70 s")}),
        _row(100_000_000, {"spark_build": _step(1000.0)}),
    ]
    assert report.growth(rows, "spark_build") == [2.5, 4.0]
    assert report.growth(rows, "build") == [None, None]  # a stopped stage has no ratio
    assert report.growth(rows, "train") == [None, None]


def test_render_rows_rates_and_reasons(report):
    store = {"rows": [
        _row(30_000_000, {"spark_build": _step(300.0, 4096), "spark_topk": _step(60.0)}, identical=True,
             skipped={"build": "memory: past 20 GiB at 30M"}),
        _row(10_000_000, {"spark_build": _step(100.0, 2048), "spark_topk": _step(20.0, why="exit 2: boom")}),
    ]}  # fmt: skip
    text = report.render(store)
    lines = text.splitlines()
    body = [line for line in lines if line.startswith(("| 10,000,000", "| 30,000,000"))]
    assert len(body) == 2 * len(report.STAGES)
    assert body[0].startswith("| 10,000,000 |")  # sorted by size
    spark_10m = next(line for line in body if line.startswith("| 10,000,000") and "| Spark build |" in line)
    assert "| 100.0 | 2.0 | 100,000 events/s |" in spark_10m
    topk_30m = next(line for line in body if line.startswith("| 30,000,000") and "| Spark top-K |" in line)
    assert "| 60.0 | 1.0 | 5,000 users/s |" in topk_30m  # top-K counts users, not events
    assert any("stopped: exit 2: boom" in line for line in body)
    assert any("memory: past 20 GiB at 30M" in line for line in body)
    assert "| Spark build | 3x |" in text
    assert "Spark and default artifacts identical" in text and ": True" in text


def test_skip_parses_and_refuses_unknown_stages(bench):
    import argparse

    assert bench._skip("100M:build,topk=no room") == ("100M", ["build", "topk"], "no room")
    with pytest.raises(argparse.ArgumentTypeError, match="expected SIZE:STAGE"):
        bench._skip("100M:bild=x")


def test_growth_skips_stages_run_with_other_settings(report):
    def train(wall, iterations):
        step = _step(wall)
        step["cmd"] = f"python -m graphrec.train --graph /w/{wall}/g --set als.iterations={iterations} --quiet"
        return step

    rows = [_row(10_000_000, {"train": train(100.0, 10)}), _row(30_000_000, {"train": train(150.0, 5)}),
            _row(100_000_000, {"train": train(600.0, 5)})]  # fmt: skip
    assert report.growth(rows, "train") == [None, 4.0]
    killed = _row(10_000_000, {"train": {**_step(5.0, why="exit -9: a log line"), "rc": -9}})
    assert "stopped: killed by signal 9" in report.render({"rows": [killed]})


def test_markdown_holds_settings_commands_and_the_table(report, bench):
    settings = {"command": "python bench/scale_spark.py --events 10000000", "commit": "abc1234"}
    rows = [{**_row(10_000_000, {"spark_build": _step(100.0)}), "settings": settings}]
    store = {"settings": {"cpus": 2, "memory_gib": 8, "master": "local[2]", "driver_memory": "8g", "events_per_user": 25,
                          "items": 20_000}, "rows": rows, "commands": {"spark_build": "python -m graphrec.build --engine spark"}}  # fmt: skip
    text = report.markdown(store)
    assert text.startswith("# Spark build and top-K") and "2 CPU cores, 8 GiB RAM" in text
    assert "a catalogue of 20,000 items" in text
    assert "`python bench/scale_spark.py --events 10000000` (commit abc1234)" in text
    assert report.render(store) in text and "* Spark build: `python -m graphrec.build --engine spark`" in text
    assert bench.markdown(store) == text and bench.STAGES == report.STAGES  # the bench writes what the report renders
