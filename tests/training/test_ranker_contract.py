"""The hybrid ranker's configurations under the ranker contract (tests/training/ranker_contract.py)."""

from __future__ import annotations

from tests.training.ranker_contract import RankerContract
from training.ranker import HybridRanker

SMALL = dict(candidates_per_source=25, hidden=32, epochs=15, patience=15, train_batch_users=16)


class TestListwiseMLPEnsemble(RankerContract):
    """The default family: an ensemble of MLPs on the listwise loss."""

    def make_ranker(self, seed: int) -> HybridRanker:
        return HybridRanker(**SMALL, ensemble=2, seed=seed)


class TestBPRLinear(RankerContract):
    """A linear scorer on the BPR loss, every feature group."""

    def make_ranker(self, seed: int) -> HybridRanker:
        return HybridRanker(
            **SMALL, model="linear", loss="bpr", ensemble=1, seed=seed,
            feature_groups=("sources", "ranks", "popularity", "activity", "content", "kg", "context"),
        )  # fmt: skip
