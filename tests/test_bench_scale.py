"""bench/scale.py's instrument: a step that fails, hangs or grows past the cap is recorded, not fatal."""

from __future__ import annotations

import sys

import pytest

from tests.bench_modules import load_bench as _load


@pytest.fixture(scope="module")
def scale():
    return _load("scale")


@pytest.mark.parametrize(
    "code, timeout, cap_mib, why",
    [
        ("pass", 30, 4096, None),
        ("raise SystemExit('bad input here')", 30, 4096, "exit 1: bad input here"),
        ("import time; time.sleep(60)", 1.0, 4096, "timeout after"),
        ("import time; b = bytearray(400 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)", 30, 200, "memory"),
    ],
)
def test_run_step_records_why_a_step_stopped(scale, tmp_path, code, timeout, cap_mib, why):
    result = scale.run_step([sys.executable, "-c", code], tmp_path / "log", timeout=timeout, max_rss=cap_mib << 20)
    if why is None:
        assert result["why"] is None and result["rc"] == 0
    else:
        assert why in result["why"]
        assert result["wall_s"] < 20
    assert (tmp_path / "log").read_text().startswith("$ ")


def _row(data, build, train, stages, rec, users=1000):
    step = lambda wall: {"wall_s": wall, "peak_rss_mib": 100, "rc": 0, "why": None}  # noqa: E731
    return {
        "data": data, "steps": {"build": step(build), "train": step(train), "recommend": step(rec)},
        "train_stages": stages, "stopped": None, "git": {"commit": "abc1234", "dirty": False}, "command": "cmd",
        "started": "now", "load": [1.0, 2.0], "recommend_users": users, "device": "cpu",
    }  # fmt: skip


def test_report_shows_stages_and_growth_ratios(scale):
    report = _load("scale_report")
    rows = [_row("synth-1m", 10.0, 100.0, {"gnn": 50.0}, 5.0), _row("synth-10m", 80.0, 900.0, {"gnn": 600.0}, 40.0)]
    text = report.render({"after": rows})
    assert text.startswith(report.BEGIN) and text.rstrip().endswith(report.END)
    growth = [line for line in text.splitlines() if line.startswith("| synth-1m -> synth-10m")]
    assert growth and "8.0x" in growth[0] and "12.0x" in growth[0] and "9.0x" in growth[0]
    assert "| 200 |" in text  # users/s = 1000 users / 5 s


def test_gpu_report_puts_each_step_beside_its_cpu_row_with_the_speed_up():
    gpu_report = _load("gpu_report")
    cpu = _row("gowalla", 3.0, 700.0, {"gnn": 350.0, "evaluate": 200.0}, 100.0, users=30000)
    gpu = dict(_row("gowalla", 4.0, 175.0, {"gnn": 35.0, "evaluate": 50.0}, 25.0, users=30000), device="cuda")
    tests = "name, memory.total [MiB], driver_version\nSome GPU, 80 GiB, 1.0\n16\n6 passed"
    text = gpu_report.render({"cpu": [cpu], "gpu": [gpu]}, "gpu", {"gowalla": "cpu"}, tests, ["fp16 weights"])
    lines = text.splitlines()
    assert "| gnn | 350.0 | 35.0 | 10.0x |" in lines
    assert "| train | 700.0 | 175.0 | 4.0x |" in lines
    assert "| build | 3.0 | 4.0 | 0.8x |" in lines
    assert "| top-K users/s | 300 | 1,200 | 4.0x |" in lines  # 30,000 users in 100 s vs 25 s
    assert "Note: fp16 weights" in lines and "Some GPU, 80 GiB, 1.0" in text and text.rstrip().endswith("<!-- gpu:end -->")
