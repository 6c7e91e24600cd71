"""Shared fixtures of the end-to-end tests: one tiny demo model, trained once per session; the default
synthetic data set (generated once) and its (user, item) codes for the demo-data tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from graphrec.datasets import SyntheticConfig, SyntheticData, generate
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


@pytest.fixture(scope="session")
def demo_data() -> SyntheticData:
    """The default synthetic data set (``SyntheticConfig()``), generated once."""
    return generate(SyntheticConfig())


def codes(data: SyntheticData) -> tuple[np.ndarray, np.ndarray]:
    """Internal (user, item) index of every event."""
    users = pd.Index(data.users["user_id"]).get_indexer(data.interactions["user_id"])
    items = pd.Index(data.items["item_id"]).get_indexer(data.interactions["item_id"])
    return users, items


def user_items(data: SyntheticData) -> sp.csr_matrix:
    """Users x items 0/1 CSR of the pairs in the log."""
    users, items = codes(data)
    shape = (data.config.num_users, data.config.num_items)
    matrix = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=shape)
    matrix.data[:] = 1.0  # duplicates were summed; keep the pair
    return matrix
