"""Shared helpers of the reliability tests: tiny inputs, cheap runs, kills, leftovers.

Everything is built from the embedded demo generator (``tiny`` size) and trained
with settings that take seconds; subprocesses run with one thread.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from kg.locks import lock_path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

CHEAP_TRAIN = (
    "text.fine_tune_steps=2", "text.max_length=16", "text.batch_size=64", "als.factors=8", "als.iterations=3",
    "ranker.ensemble=1", "ranker.epochs=3", "ranker.patience=1", "ranker.candidates_per_source=20",
)  # fmt: skip
"""``--set`` overrides of every training run here (stages text, als, ranker)."""
STAGES = "text,als,ranker"

_cache: dict[str, Path] = {}


def tiny_inputs(directory: Path) -> dict[str, Path]:
    """Write the tiny demo's files into ``directory``; returns ``{flag name: path}``."""
    from graphrec.datasets import generate, write
    from graphrec.demo import DEMO_SIZES

    files = write(generate(DEMO_SIZES["tiny"]), directory, overwrite=True)
    return {"interactions": files.interactions, "items": files.items}


def build_args(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [f"--{k}={v}" for k, v in inputs.items()] + ["--out", str(out), "--quiet", *extra]


def train_args(graph: Path, out: Path, bert: str, *extra: str) -> list[str]:
    sets = [a for o in (*CHEAP_TRAIN, f"text.model={bert}") for a in ("--set", o)]
    return ["--graph", str(graph), "--out", str(out), "--stages", STAGES, "--quiet", *sets, *extra]


def cached(name: str, factory, tmp_path_factory) -> Path:
    """Build an input once per test session (whatever module asks first)."""
    if name not in _cache:
        _cache[name] = factory(tmp_path_factory.mktemp(name))
    return _cache[name]


def tiny_bert(tmp_path_factory) -> str:
    from tests.training.test_text_encoder import build_tiny_model

    return str(cached("bert", lambda d: Path(build_tiny_model(d)), tmp_path_factory))


def tiny_graph(tmp_path_factory) -> Path:
    """A tiny graph artifact (built in this process)."""
    from graphrec.build import main as build

    def make(directory: Path) -> Path:
        inputs = tiny_inputs(directory / "data")
        assert build(build_args(inputs, directory / "graph")) == 0
        return directory / "graph"

    return cached("graph", make, tmp_path_factory)


def tiny_model(tmp_path_factory) -> Path:
    """A tiny model artifact with a fine-tuned text encoder (trained in this process)."""
    from graphrec.train import main as train

    graph, bert = tiny_graph(tmp_path_factory), tiny_bert(tmp_path_factory)

    def make(directory: Path) -> Path:
        assert train(train_args(graph, directory / "model", bert)) == 0
        return directory / "model"

    return cached("model", make, tmp_path_factory)


def verb(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"graphrec.{name}", *args]


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def kill_after_start(command: list[str], out: Path, rng: random.Random, max_delay: float) -> Optional[int]:
    """Start ``command``, wait until it holds ``out``'s lock, SIGKILL it at a random moment after.

    Returns:
        The exit status when the run finished before the kill, else ``None``.
    """
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock = lock_path(out)
    deadline = time.monotonic() + 120
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, max_delay))
    if proc.poll() is not None:
        stderr = proc.stderr.read().decode(errors="replace")
        assert proc.returncode == 0, stderr[-2000:]
        return proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return None


def hidden_leftovers(out: Path) -> list[str]:
    """Names beside ``out`` that a run on it leaves behind (temporaries, backups, its lock)."""
    prefix = f".{out.name}."
    return sorted(n for n in os.listdir(out.parent) if n.startswith(prefix))


def manifest_of(directory: Path) -> dict:
    with open(directory / "manifest.json", encoding="utf-8") as handle:
        return json.load(handle)
