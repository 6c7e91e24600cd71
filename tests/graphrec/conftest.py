"""Shared fixtures of the end-to-end tests: one tiny demo model, trained once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_text_encoder import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
QUICK = (
    "text.fine_tune_steps=5", "text.max_length=16", "als.factors=16", "als.iterations=5",
    "gnn.epochs=10", "gnn.embedding_dim=16", "ranker.ensemble=1", "ranker.epochs=8",
    "ranker.candidates_per_source=30",
)  # fmt: skip


def sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "graphrec.train", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory, tiny_bert):
    """The no-``--graph`` demo path: generate, build, train, report (progress on: stderr is a pipe)."""
    base = tmp_path_factory.mktemp("demo")
    done = run_cli("--demo-size", "tiny", "--demo-dir", str(base), *sets(f"text.model={tiny_bert}", *QUICK))
    assert done.returncode == 0, done.stderr[-3000:]
    return base, done




@pytest.fixture(scope="session")
def sampled_demo_model(tmp_path_factory, tiny_bert):
    """The demo model fitted on a seeded half of the users (``user_sample=0.5``); the rest are folded in."""
    base = tmp_path_factory.mktemp("demo_sampled")
    done = run_cli(
        "--demo-size", "tiny", "--demo-dir", str(base), "--quiet",
        *sets(f"text.model={tiny_bert}", *QUICK, "user_sample=0.5"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return base, done
