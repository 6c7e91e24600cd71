"""Issue 11 point 3: one run per output and work directory.

A second run on the same ``--out`` (or the same ``OUT.work``) is refused with a
message naming the first run's pid and start time; the lock of a run that died
(even by SIGKILL) is taken over by the next run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from graphrec.build import main as build
from graphrec.train import main as train
from kg.locks import OutputBusyError, lock_output, lock_path
from tests.reliability import kit

HOLDER = (
    "import sys, time\n"
    "from kg.locks import lock_output\n"
    "with lock_output(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _hold(path) -> subprocess.Popen:
    """A process that holds ``path``'s lock until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=kit.ROOT, env=kit.ENV,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_second_build_on_the_same_out_is_refused_naming_the_first(tmp_path, capsys):
    inputs = kit.tiny_inputs(tmp_path / "data")
    out = tmp_path / "graph"
    holder = _hold(out)
    try:
        assert build(kit.build_args(inputs, out)) == 2
        err = capsys.readouterr().err.strip()
        assert f"pid {holder.pid}" in err and "started 20" in err, err
        assert len(err.splitlines()) == 1 and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died by SIGKILL: its lock file is still there, and is taken over.
    assert json.loads(lock_path(out).read_text())["pid"] == holder.pid
    assert build(kit.build_args(inputs, out)) == 0
    assert not lock_path(out).exists() and kit.hidden_leftovers(out) == []


def test_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    inputs = kit.tiny_inputs(tmp_path / "data")
    out = tmp_path / "graph"
    lock_path(out).write_text(json.dumps({"pid": _dead_pid(), "started": "2026-01-01T00:00:00+00:00"}))
    assert build(kit.build_args(inputs, out)) == 0
    assert kit.hidden_leftovers(out) == []


def test_second_train_on_the_same_out_is_refused_and_the_first_finishes(tmp_path_factory, tmp_path, capsys):
    from graphrec.artifacts.model import load_model

    graph, bert = kit.tiny_graph(tmp_path_factory), kit.tiny_bert(tmp_path_factory)
    capsys.readouterr()
    out = tmp_path / "model"
    first = subprocess.Popen(kit.verb("train", *kit.train_args(graph, out, bert)), cwd=kit.ROOT, env=kit.ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    work_lock = lock_path(out.with_name("model.work"))
    deadline = time.monotonic() + 120
    while not work_lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if first.poll() is not None:
        pytest.fail(f"the first train ended before the second started: {first.stderr.read()[-2000:]}")
    # Another --out, the same work directory: the checkpoints are the first run's.
    assert train(kit.train_args(graph, tmp_path / "other", bert, "--work-dir", str(out.with_name("model.work")))) == 2
    err = capsys.readouterr().err
    assert f"pid {first.pid}" in err and "model.work" in err, err
    assert train(kit.train_args(graph, out, bert)) == 2
    assert f"pid {first.pid}" in capsys.readouterr().err
    _, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr[-2000:]
    load_model(out)


def test_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    out = tmp_path / "thing"
    with lock_output(out):
        with lock_output(out):
            assert lock_path(out).exists()
        assert lock_path(out).exists()  # still held by the outer block
        code = "import sys\nfrom kg.locks import lock_output\nwith lock_output(sys.argv[1]): pass\n"
        other = subprocess.run([sys.executable, "-c", code, str(out)], cwd=kit.ROOT, env=kit.ENV,
                               capture_output=True, text=True)  # fmt: skip
        assert other.returncode != 0 and "OutputBusyError" in other.stderr
    assert not lock_path(out).exists()
    with pytest.raises(OutputBusyError, match="pid"):
        holder = _hold(out)
        try:
            with lock_output(out):
                pass
        finally:
            holder.kill()
            holder.wait()
