"""Contract tests every learner passes (as implicit's shared recommender tests).

A learner's test module subclasses :class:`LearnerContract` and says only how to
build the learner (``make_learner``) and, where it needs them, extra ``fit``
keyword arguments (``fit_kwargs``). Each class fits once per seed (cached), on
the structured graph's train split with valid for early stopping, then:

* score shape/dtype/finiteness, NotFittedError before fit, input validation;
* determinism with a seed; save/load round trip reproduces the scores;
* the learner beats MostPop on NDCG@10 over the test split (PROTOCOL.md masking);
* ``score_new_users`` (where implemented) ranks a known user's held-out items
  better than MostPop when folded in from that user's train items.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from eval import MostPop, evaluate
from training.base import Learner, NotFittedError

_CACHE: dict = {}


class LearnerContract:
    #: NDCG@10 margin over MostPop a learner must reach on the structured graph.
    min_gain_over_mostpop: float = 0.0
    #: Rows that the fold-in test uses; learners without fold-in set ``supports_fold_in = False``.
    supports_fold_in: bool = True

    def make_learner(self, seed: int) -> Learner:
        raise NotImplementedError

    def fit_kwargs(self, graph) -> dict:
        return {}

    # -- helpers ------------------------------------------------------------------------
    def fitted(self, graph, seed: int = 0) -> Learner:
        key = (type(self).__qualname__, id(graph), seed)
        if key not in _CACHE:
            learner = self.make_learner(seed)
            learner.fit(
                graph,
                graph.matrix("train", weighted=True),
                valid_items=graph.matrix("valid"),
                **self.fit_kwargs(graph),
            )
            _CACHE[key] = learner
        return _CACHE[key]

    @staticmethod
    def as_numpy(scores) -> np.ndarray:
        if isinstance(scores, torch.Tensor):
            return scores.detach().float().cpu().numpy()
        return np.asarray(scores, dtype=np.float32)

    # -- the contract -------------------------------------------------------------------
    def test_score_shape_dtype_finite(self, structured_graph):
        learner = self.fitted(structured_graph)
        users = np.array([0, 3, 7], dtype=np.int64)
        scores = learner.score(users)
        assert isinstance(scores, torch.Tensor)
        assert scores.dtype == torch.float32
        assert tuple(scores.shape) == (3, structured_graph.num_items)
        assert torch.isfinite(scores).all()

    def test_not_fitted_raises(self, structured_graph):
        with pytest.raises(NotFittedError):
            self.make_learner(0).score(np.array([0]))

    def test_rejects_dense_input(self, structured_graph):
        learner = self.make_learner(0)
        dense = structured_graph.matrix("train").toarray()
        with pytest.raises(TypeError, match="user_items"):
            learner.fit(structured_graph, dense, **self.fit_kwargs(structured_graph))

    def test_rejects_wrong_width(self, structured_graph):
        learner = self.make_learner(0)
        narrow = structured_graph.matrix("train")[:, :-1].tocsr()
        with pytest.raises(ValueError, match="columns"):
            learner.fit(structured_graph, narrow, **self.fit_kwargs(structured_graph))

    def test_deterministic_with_seed(self, structured_graph):
        users = np.arange(10, dtype=np.int64)
        first = self.as_numpy(self.fitted(structured_graph, seed=0).score(users))
        again = self.make_learner(0)
        again.fit(
            structured_graph,
            structured_graph.matrix("train", weighted=True),
            valid_items=structured_graph.matrix("valid"),
            **self.fit_kwargs(structured_graph),
        )
        np.testing.assert_allclose(first, self.as_numpy(again.score(users)), rtol=1e-5, atol=1e-5)

    def test_save_load_round_trip(self, structured_graph, tmp_path):
        learner = self.fitted(structured_graph)
        learner.save(tmp_path / "learner")
        assert not any(p.suffix in {".pkl", ".pickle", ".pt"} for p in (tmp_path / "learner").rglob("*"))
        loaded = type(learner).load(tmp_path / "learner")
        users = np.arange(structured_graph.num_users, dtype=np.int64)
        np.testing.assert_allclose(
            self.as_numpy(learner.score(users)), self.as_numpy(loaded.score(users)), rtol=1e-5, atol=1e-5
        )
        assert loaded.get_config() == learner.get_config()

    def test_beats_mostpop(self, structured_graph):
        learner = self.fitted(structured_graph)
        train = structured_graph.matrix("train", "valid")
        test = structured_graph.matrix("test")
        ids = structured_graph.item_ids
        ours = evaluate(learner.score, train=train, test=test, item_ids=ids, k=10)
        pop = evaluate(MostPop().fit(structured_graph.matrix("train")), train=train, test=test, item_ids=ids, k=10)
        assert ours.metrics["ndcg"] > pop.metrics["ndcg"] + self.min_gain_over_mostpop, (
            ours.metrics["ndcg"],
            pop.metrics["ndcg"],
        )

    def test_fold_in_new_users(self, structured_graph):
        if not self.supports_fold_in:
            pytest.skip(f"{type(self).__name__} declares no fold-in")
        learner = self.fitted(structured_graph)
        history = structured_graph.matrix("train")
        test = structured_graph.matrix("test")
        users = np.flatnonzero(np.diff(test.indptr) > 0)[:40]
        rows = history[users]
        scores = self.as_numpy(learner.score_new_users(rows))
        assert scores.shape == (len(users), structured_graph.num_items)
        assert np.isfinite(scores).all()
        mask = structured_graph.matrix("train", "valid")[users]
        ids = structured_graph.item_ids
        ours = evaluate(lambda b: scores[b], train=mask, test=test[users], item_ids=ids, k=10)
        pop_scores = MostPop().fit(history)(np.arange(len(users)))
        pop = evaluate(lambda b: pop_scores[b], train=mask, test=test[users], item_ids=ids, k=10)
        assert ours.metrics["ndcg"] > pop.metrics["ndcg"], (ours.metrics["ndcg"], pop.metrics["ndcg"])
