"""Contract tests every hybrid ranker configuration passes (the ranker's sibling of ``contract.py``).

The learners share :class:`tests.training.contract.LearnerContract`; the hybrid ranker
learns from other models' rows rather than from a user-item matrix, so its contract
(documented in :mod:`training.ranker`) is its own:

* it reads everything about users and items from an explicit
  :class:`~training.ranker.context.RankerContext` (``bind``/``prepare``); scoring
  without one, or before ``fit``/``load``, raises :class:`NotFittedError`;
* ``fit(source_scorers, users, labels)`` returns the ranker; ``score(users)`` gives
  float32 ``[B, num_items]`` rows, finite on the candidates only, never on history;
* ``topk`` returns the lists of ranking ``score``'s rows; ``score_rows`` (the fold-in
  path) equals ``score`` for the same users' rows;
* ``bound(context)`` is a copy: the original keeps its context;
* a fit is deterministic under its seed; ``save``/``load`` (no pickle) round-trips the
  scores once the loaded ranker is bound again; ``get_config`` rebuilds the ranker;
* the fitted ranker beats MostPop on the structured graph's test split.

A test module subclasses :class:`RankerContract` and says how to build the ranker
(``make_ranker``). Each class fits once per seed (cached) on the structured graph:
sources fitted on train, labels from valid, then re-bound to sources refitted on
train + valid, as the pipeline does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval import MostPop, evaluate
from eval.ranking import iter_topk
from tests.training.ranker_sources import sources, title_vectors
from training.base import NotFittedError
from training.ranker import HybridRanker
from training.ranker.context import RankerContext

_CACHE: dict = {}


class RankerContract:
    #: NDCG@10 margin over MostPop the ranker must reach on the structured graph's test split.
    min_gain_over_mostpop: float = 0.05

    def make_ranker(self, seed: int) -> HybridRanker:
        """An unfitted ranker of the configuration under test, seeded with ``seed``."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def contexts(graph) -> tuple[RankerContext, RankerContext]:
        """The fit phase's context (train) and the final phase's (train + valid), sources bound."""
        vectors = title_vectors(graph)
        out = []
        for splits in (("train",), ("train", "valid")):
            history = graph.matrix(*splits, weighted=True)
            out.append(
                RankerContext.build(
                    graph, history, item_text_embeddings=vectors, history_times=graph.timestamp_matrix(*splits),
                    source_scorers=sources(history, vectors),
                )  # fmt: skip
            )
        return out[0], out[1]

    def fit_once(self, graph) -> tuple[HybridRanker, RankerContext]:
        """A fresh fit (not cached), bound to the final phase's context afterwards."""
        fit, final = self.contexts(graph)
        ranker = self.make_ranker(2026)
        users = np.arange(graph.num_users, dtype=np.int64)
        assert ranker.fit(fit, users, graph.matrix("valid")) is ranker
        assert ranker.context_ is fit  # fit binds the context it learns in
        return ranker.bind(final), final

    def fitted(self, graph) -> tuple[HybridRanker, RankerContext]:
        key = (type(self).__qualname__, id(graph))
        if key not in _CACHE:
            _CACHE[key] = self.fit_once(graph)
        return _CACHE[key]

    # -- the contract -------------------------------------------------------------------
    def test_needs_a_context_and_a_fit(self, structured_graph):
        fit, _ = self.contexts(structured_graph)
        users = np.arange(3, dtype=np.int64)
        with pytest.raises(NotFittedError):
            self.make_ranker(2026).score(users)
        with pytest.raises(TypeError, match="RankerContext"):
            self.make_ranker(2026).fit(fit.source_scorers, users, structured_graph.matrix("valid"))
        with pytest.raises(NotFittedError):
            self.make_ranker(2026).bind(fit).score(users)

    def test_score_rows_are_candidates_only_and_never_history(self, structured_graph):
        ranker, context = self.fitted(structured_graph)
        users = np.arange(structured_graph.num_users, dtype=np.int64)
        scores = ranker.score(users)
        assert isinstance(scores, torch.Tensor) and scores.dtype == torch.float32
        assert tuple(scores.shape) == (structured_graph.num_users, structured_graph.num_items)
        assert torch.isneginf(scores[torch.from_numpy(context.history.toarray() > 0)]).all()
        finite = torch.isfinite(scores).sum(dim=1)
        n, num_sources = ranker.candidates_per_source, len(ranker.source_names_)
        assert (finite >= min(n, structured_graph.num_items // 2)).all() and (finite <= n * num_sources).all()
        assert not torch.isnan(scores).any()

    def test_topk_are_the_lists_of_score(self, structured_graph):
        ranker, context = self.fitted(structured_graph)
        users = np.arange(0, structured_graph.num_users, 3, dtype=np.int64)
        items, values = ranker.topk(users, 10)
        _, expected_items, expected_values = next(
            iter_topk(ranker.score, users, 10, exclude=context.history, batch_size=len(users))
        )
        np.testing.assert_allclose(values, expected_values, rtol=1e-6)
        for row in range(len(users)):  # the same item wherever the score is not an exact tie
            unique = np.array([np.sum(values[row] == v) == 1 for v in values[row]])
            np.testing.assert_array_equal(items[row, unique], expected_items[row, unique])

    def test_score_rows_is_score_for_the_same_rows(self, structured_graph):
        ranker, context = self.fitted(structured_graph)
        users = np.array([5, 0, 17], dtype=np.int64)
        rows = {name: scorer(users) for name, scorer in context.source_scorers.items()}
        folded = ranker.score_rows(rows, context.history[users], history_times=context.history_times[users])
        torch.testing.assert_close(folded, ranker.score(users))

    def test_bound_is_a_copy(self, structured_graph):
        ranker, final = self.fitted(structured_graph)
        fit, _ = self.contexts(structured_graph)
        other = ranker.bound(fit)
        assert other.context_ is fit and ranker.context_ is final
        assert other.scorer_ is ranker.scorer_

    def test_deterministic_under_its_seed(self, structured_graph):
        ranker, _ = self.fitted(structured_graph)
        again, _ = self.fit_once(structured_graph)  # a second fit, same configuration and seed
        users = np.arange(30, dtype=np.int64)
        torch.testing.assert_close(again.score(users), ranker.score(users), rtol=0, atol=0)

    def test_save_load_round_trip(self, structured_graph, tmp_path):
        ranker, context = self.fitted(structured_graph)
        ranker.save(tmp_path / "ranker")
        assert sorted(p.name for p in (tmp_path / "ranker").iterdir()) == ["config.json", "state.safetensors"]
        loaded = type(ranker).load(tmp_path / "ranker")
        assert loaded.get_config() == ranker.get_config()
        with pytest.raises(NotFittedError, match="no context"):
            loaded.score(np.arange(2))
        users = np.arange(structured_graph.num_users, dtype=np.int64)
        torch.testing.assert_close(loaded.bind(context).score(users), ranker.score(users), rtol=0, atol=0)

    def test_get_config_rebuilds_the_ranker(self, structured_graph):
        ranker = self.make_ranker(2026)
        rebuilt = type(ranker)(**ranker.get_config())
        assert rebuilt.get_config() == ranker.get_config()

    def test_beats_mostpop(self, structured_graph):
        ranker, context = self.fitted(structured_graph)
        test = structured_graph.matrix("test")
        ids = structured_graph.item_ids
        ours = evaluate(ranker.score, train=context.history, test=test, item_ids=ids, k=10).metrics["ndcg"]
        pop = evaluate(MostPop().fit(context.history), train=context.history, test=test, item_ids=ids, k=10)
        assert ours >= pop.metrics["ndcg"] + self.min_gain_over_mostpop, (ours, pop.metrics["ndcg"])
