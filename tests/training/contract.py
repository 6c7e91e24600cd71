"""Contract tests every learner passes (as implicit's shared recommender tests).

A learner's test module subclasses :class:`LearnerContract` and says only how to
build the learner (``make_learner``) and, where it needs them, extra ``fit``
keyword arguments (``fit_kwargs``). Each class fits once per seed (cached), on
the structured graph's train split with valid for early stopping, then:

* score shape/dtype/finiteness, NotFittedError before fit, input validation;
* determinism with a seed; save/load round trip reproduces the scores;
* the learner beats MostPop on NDCG@10 over the test split (docs/PROTOCOL.md masking);
* ``score_new_users`` (where implemented) ranks a known user's held-out items
  better than MostPop when folded in from that user's train items;
* the implicit-style light path (``training/sources/implicit_api.py``): ``fit(user_items)``
  on a bare CSR, ``recommend`` agreeing with ``score`` under implicit's
  semantics, ``similar_items`` (or a clear ``NotImplementedError``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval import MostPop, evaluate
from training.base import Learner, NotFittedError

_CACHE: dict = {}


class LearnerContract:
    #: NDCG@10 margin over MostPop a learner must reach on the structured graph.
    min_gain_over_mostpop: float = 0.0
    #: Rows that the fold-in test uses; learners without fold-in set ``supports_fold_in = False``.
    supports_fold_in: bool = True
    #: The learner uses nothing from the graph but its shape and ignores ``valid_items``, so a
    #: fit on the bare CSR must give the same scores as the fit on the graph.
    bare_fit_equals_graph_fit: bool = False

    def make_learner(self, seed: int) -> Learner:
        raise NotImplementedError

    def fit_kwargs(self, graph) -> dict:
        return {}

    def bare_fit_kwargs(self, graph) -> dict:
        """``fit_kwargs`` for a fit on the bare CSR: a graph made from a matrix has no entities."""
        return {k: v for k, v in self.fit_kwargs(graph).items() if k != "entity_features"}

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

    def test_score_factors_are_the_scores(self, structured_graph):
        """A factor model's ``score_factors`` gives ``score``'s rows (the hybrid ranks from them); others give None."""
        learner = self.fitted(structured_graph)
        users = np.array([0, 3, 7], dtype=np.int64)
        factors = learner.score_factors(users)
        if not type(learner).factor_scores:
            assert factors is None
            return
        dense = self.as_numpy(learner.score(users))
        np.testing.assert_allclose(factors.dense().numpy(), dense, rtol=1e-4, atol=1e-4)
        var, mean = factors.var_mean()
        np.testing.assert_allclose(mean.numpy(), dense.mean(axis=1), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(var.numpy(), dense.var(axis=1), rtol=1e-3, atol=1e-4)

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

    # -- the implicit-style light path ----------------------------------------------------
    def test_fit_on_bare_csr(self, structured_graph):
        train = structured_graph.matrix("train", weighted=True)
        kwargs = self.bare_fit_kwargs(structured_graph)
        learner = self.make_learner(0)
        assert learner.fit(train, **kwargs) is learner  # implicit's fit(user_items)
        users = np.arange(structured_graph.num_users, dtype=np.int64)
        scores = self.as_numpy(learner.score(users))
        assert scores.shape == (structured_graph.num_users, structured_graph.num_items)
        assert np.isfinite(scores).all()
        if self.bare_fit_equals_graph_fit:
            on_graph = self.make_learner(0).fit(structured_graph, train, **kwargs)
            np.testing.assert_allclose(scores, self.as_numpy(on_graph.score(users)), rtol=1e-4, atol=1e-5)
        with pytest.raises(TypeError, match="user_items"):
            self.make_learner(0).fit(None, train.toarray(), **kwargs)

    def test_recommend_agrees_with_score(self, structured_graph):
        learner = self.fitted(structured_graph)
        train = structured_graph.matrix("train")
        users = np.array([0, 3, 7], dtype=np.int64)
        rows = train[users]
        ids, top = learner.recommend(users, rows, N=5)
        assert ids.shape == top.shape == (3, 5)
        assert ids.dtype == np.int64 and top.dtype == np.float32
        scores = self.as_numpy(learner.score(users))
        for r in range(len(users)):
            seen = set(rows[r].indices.tolist())
            assert not seen & set(ids[r].tolist())
            assert len(set(ids[r].tolist())) == 5
            np.testing.assert_allclose(top[r], scores[r, ids[r]], rtol=1e-5, atol=1e-6)
            assert (np.diff(top[r]) <= 1e-6).all()
            rest = np.setdiff1d(np.arange(structured_graph.num_items), np.concatenate([ids[r], list(seen)]))
            assert scores[r, rest].max() <= top[r, -1] + 1e-5
        one_ids, _ = learner.recommend(int(users[1]), rows[1], N=5)
        assert one_ids.shape == (5,)
        np.testing.assert_array_equal(one_ids, ids[1])
        unfiltered, _ = learner.recommend(users, None, N=5, filter_already_liked_items=False)
        np.testing.assert_array_equal(unfiltered[:, 0], scores.argmax(axis=1))
        allowed = np.arange(0, structured_graph.num_items, 3)
        subset, _ = learner.recommend(users, rows, N=4, items=allowed)
        assert np.isin(subset[subset >= 0], allowed).all()
        banned = ids[:, 0]
        filtered, _ = learner.recommend(users, rows, N=5, filter_items=banned)
        assert not np.isin(filtered, banned).any()
        with pytest.raises(ValueError, match="1 row for every user"):
            learner.recommend(users, train, N=5)

    def test_similar_items(self, structured_graph):
        learner = self.fitted(structured_graph)
        query = np.array([1, 4], dtype=np.int64)
        has_vectors = learner.item_embeddings() is not None
        try:
            ids, top = learner.similar_items(query, N=6)
        except NotImplementedError as exc:
            assert not has_vectors and "similar_items" in str(exc)
            return
        assert ids.shape == top.shape == (2, 6)
        assert (np.diff(top, axis=1) <= 1e-6).all()
        _one_ids, one_top = learner.similar_items(int(query[0]), N=6)
        np.testing.assert_allclose(one_top, top[0], rtol=1e-5, atol=1e-6)
        if has_vectors:
            # cosine: the query item itself scores 1 and nothing scores higher
            np.testing.assert_allclose(top[:, 0], 1.0, atol=1e-4)
        masked, _ = learner.similar_items(query, N=6, filter_items=ids[:, 0])
        assert not np.isin(masked, ids[:, 0]).any()
