"""What the stages of one run share: the graph, the configuration, the work directory, the phases.

:class:`StageContext` is the explicit state a :class:`~training.pipeline.stages.base.Stage`
reads and writes: each stage adds its products (sources in the phases, text vectors, the
ranker, the hybrid's test result) and the next stages read them. Its helpers are the steps
more than one stage takes (fit-or-restore a source, the matrix a source is fitted on, a
seeded sample of the validation users, an evaluation with the run's settings).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from eval import EvalResult, MostPop, evaluate, sparse_threshold
from kg.graph import Graph
from training.base import Learner, sample_at_most
from training.pipeline.config import TrainConfig
from training.pipeline.learners import make_ranker, make_source
from training.pipeline.phase import Phase, load_source
from training.pipeline.user_sample import UserSample
from training.pipeline.workdir import WorkDir
from training.ranker import HybridRanker
from training.ranker.context import RankerContext
from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.stages.base import Stage

__all__ = ["StageContext", "selected_sources", "text_on"]

Log = Callable[[str], None]


def text_on(stages: Sequence[str], config: TrainConfig, *, graph_has_text: bool) -> bool:
    """The text stage is selected and enabled and the graph has text: a text source and text vectors."""
    return "text" in stages and config.text.enabled and graph_has_text


def selected_sources(stages: Sequence[Stage], config: TrainConfig, *, text_on: bool) -> list[str]:
    """The sources a run of ``stages`` fits, in stage order: each stage's sources that are enabled."""
    enabled = {
        Source.TEXT: text_on, Source.ALS: config.als.enabled, Source.ITEMKNN: config.itemknn.enabled,
        Source.GRAPHFILTER: config.graphfilter.enabled, Source.EASE: config.ease.enabled,
        Source.GNN: config.gnn.enabled,
    }  # fmt: skip
    return [name for s in stages for name in s.sources if enabled[name]]


class StageContext:
    """The shared state of one run of the pipeline.

    Args:
        graph: the graph artifact.
        config: the resolved configuration.
        work: the run's work directory.
        stages: the stages selected for this run, in order.
        sample: the users the learners are fitted on (``user_sample``), or ``None`` for all.
        graph_has_text: the graph holds item text (else no text stage, no text init).
        text_on: the text source and vectors are made (:func:`text_on`).
        graph_path: the graph artifact's directory (``gnn.nproc > 1``).
        show_progress: tqdm bars.
        log: where the concise log lines go.
    """

    def __init__(
        self, graph: Graph, config: TrainConfig, work: WorkDir, *, stages: Sequence[Stage],
        sample: Optional[UserSample], graph_has_text: bool, text_on: bool, graph_path=None,
        show_progress: bool = False, log: Log = print,
    ) -> None:  # fmt: skip
        self.graph, self.config, self.work, self.sample = graph, config, work, sample
        self.selected = tuple(stages)
        self.stages = tuple(s.name for s in self.selected)  # their names
        self.graph_has_text, self.text_on, self.graph_path = graph_has_text, text_on, graph_path
        self.show_progress, self.log = show_progress, log
        times = graph.has_timestamps
        restrict = self.restrict
        self.phases = {
            "fit": Phase(
                "fit", restrict(graph.matrix("train")), restrict(graph.timestamp_matrix("train")) if times else None
            ),
            "final": Phase(
                "final", restrict(graph.matrix("train", "valid")),
                restrict(graph.timestamp_matrix("train", "valid")) if times else None,
            ),
        }  # fmt: skip
        self.valid = restrict(graph.matrix("valid"))
        # What the stages add.
        self.item_text: Optional[np.ndarray] = None
        self.entity_text: Optional[np.ndarray] = None
        self.ranker: Optional[HybridRanker] = None
        self.hybrid_test: Optional[EvalResult] = None

    # -- which sources, built how -----------------------------------------------------------
    def source_names(self) -> list[str]:
        """The sources this run fits, in stage order (:func:`selected_sources`)."""
        return selected_sources(self.selected, self.config, text_on=self.text_on)

    def make(self, name: str) -> Learner:
        """Source ``name``'s learner as configured (:mod:`training.pipeline.learners`)."""
        return make_source(name, self.config, text_on=self.text_on)

    def make_ranker(self) -> HybridRanker:
        return make_ranker(self.config)

    # -- matrices ---------------------------------------------------------------------------
    def matrix(self, name: str, phase: Phase) -> sp.csr_matrix:
        """What source ``name`` is fitted on in ``phase`` (its ``weighted`` setting; sampled users' rows)."""
        splits = ("train",) if phase.name == "fit" else ("train", "valid")
        return self.restrict(self.graph.matrix(*splits, weighted=self.config.weighted(name)))

    def restrict(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` with only the sampled users' rows (``user_sample``; every row without one)."""
        return matrix if self.sample is None else self.sample.restrict(matrix)

    def test(self) -> sp.csr_matrix:
        return self.graph.matrix("test")

    def served_history(self) -> sp.csr_matrix:
        """Every user's ``train + valid`` (binary): what test masks, and the rows unsampled users fold in from."""
        return self.graph.matrix("train", "valid")

    # -- fitting ----------------------------------------------------------------------------
    def fit_or_load(self, name: str, phase: Phase, fit: Callable[[], Learner]) -> None:
        """Source ``name`` of ``phase``: restored from the work directory, else ``fit()`` and saved there."""
        path = self.work.source_dir(phase.name, name)
        if (path / "config.json").is_file():
            phase.sources[name] = load_source(path, device=self.config.device)
            return
        start = time.perf_counter()
        learner = fit()
        learner.save(path)
        phase.sources[name] = learner
        self.log(f"  {name} ({phase.name}) fitted in {time.perf_counter() - start:.1f} s")

    def fitted_phases(self) -> list[Phase]:
        """The phases sources are fitted in: fit, and final with ``ranker.refit``."""
        return [self.phases["fit"], self.phases["final"]] if self.config.ranker.refit else [self.phases["fit"]]

    def share_fit_sources(self, names: Sequence[str]) -> None:
        """Without refit, the final phase serves the sources fitted on train."""
        if not self.config.ranker.refit:
            for name in names:
                if name in self.phases["fit"].sources:
                    self.phases["final"].sources[name] = self.phases["fit"].sources[name]

    def add_popularity(self) -> None:
        if self.config.ranker.popularity_source:
            for phase in self.phases.values():
                phase.sources[Source.POP] = MostPop().fit(phase.history, item_ids=self.graph.item_ids)

    def ranker_context(self, phase: Phase) -> RankerContext:
        """``phase``'s history, item statistics and sources, as the ranker fits or scores in them."""
        return RankerContext.build(
            self.graph, phase.history, item_text_embeddings=self.item_text,
            history_times=phase.history_times, source_scorers=phase.scorers(),
        )  # fmt: skip

    # -- validation users -------------------------------------------------------------------
    def fit_users(self) -> np.ndarray:
        """Users with validation items; above ``ranker.fit_users`` a seeded sample of that many (noted)."""
        return self.valid_sample("ranker_fit_users", self.config.ranker.fit_users)

    def valid_sample(self, note: str, limit: int) -> np.ndarray:
        """The users with validation items, cut to a seeded sample of ``limit`` (noted as ``note``) above it."""
        return self._sample(self.valid_users(), note, limit)

    def test_sample(self) -> Optional[np.ndarray]:
        """The users with test items cut to ``eval.test_users`` (a seeded sample, noted), or ``None`` for all."""
        everyone = _users_with_items(self.test())
        users = self._sample(everyone, "test_users", self.config.eval.test_users)
        return None if len(users) == len(everyone) else users

    def _sample(self, everyone: np.ndarray, note: str, limit: int) -> np.ndarray:
        users = sample_at_most(everyone, limit, self.config.seed)
        if len(users) < len(everyone):
            self.work.note(note, {"users": len(users), "of": len(everyone), "seed": self.config.seed})
        return users

    def valid_users(self) -> np.ndarray:
        return _users_with_items(self.valid)

    # -- evaluating -------------------------------------------------------------------------
    def evaluate(
        self, source, history: sp.csr_matrix, labels: sp.csr_matrix, *, max_train: Optional[int] = None,
        label: str = "evaluate", users: Optional[np.ndarray] = None,
    ) -> EvalResult:  # fmt: skip
        """:func:`eval.evaluate` with the run's ``eval.*`` settings (``max_train``: the sparse-user cut)."""
        cfg = self.config.eval
        if max_train is None:
            max_train = sparse_threshold(history, labels, cfg.sparse_max_train)
        return evaluate(
            source, train=history, test=labels, item_ids=self.graph.item_ids, k=cfg.k,
            batch_size=cfg.batch_size, sparse_max_train=max_train, show_progress=self.show_progress,
            progress_label=label, users=users,
        )  # fmt: skip


def _users_with_items(matrix: sp.csr_matrix) -> np.ndarray:
    """int64 indices of the rows of ``matrix`` that hold at least one item."""
    return np.flatnonzero(np.diff(matrix.indptr) > 0).astype(np.int64)
