"""The training pipeline: graph -> sources -> hybrid ranker -> evaluation, stage by stage.

Stages (:data:`training.pipeline.config.STAGES`) run in order; each one's result is
checkpointed in a :class:`~training.pipeline.workdir.WorkDir`, so an interrupted run resumes
at the stage (and, for the GNN, the epoch) where it stopped.

Two phases follow docs/PROTOCOL.md:

* **fit**: every source learns from ``train`` (validation held out; the GNN stops
  early on it), then the hybrid ranker learns from the held-out ``valid``
  interactions which source to trust for which user and item.
* **final**: with ``ranker.refit`` the sources are refitted on ``train + valid``
  (the GNN continues from its fit-phase parameters for ``best epoch x new share``
  epochs, see ``training.gnn.schedule.warm_epochs``; the text encoder keeps its
  fine-tuned weights and only the user profiles change), and the ranker, with the
  weights it learned, is prepared on ``train + valid``. Test interactions never reach
  any fit; they are only used by the ``evaluate`` stage.

Sources: ``text`` (text similarity to the user's history), ``als``, ``itemknn``,
``graphfilter`` (training-free GF-CF filter; the sparse item-item source where EASE is
skipped), ``ease`` (skipped above ``ease.max_items``), ``gnn`` (LightGCN or GAT) and ``pop``
(a popularity prior, cheap, never checkpointed).

With ``user_sample`` (:mod:`training.pipeline.user_sample`) every matrix a learner or the ranker
sees holds the train rows of a seeded sample of users only; the test rows score every
test user, the others by fold-in from their ``train + valid`` rows, as served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from eval import EvalResult, MostPop, evaluate, sparse_threshold
from kg.graph import Graph
from training.sources.als import ALS
from training.base import Learner, sample_at_most
from training.pipeline.config import STAGES, TrainConfig
from training.sources.ease import EASE
from training.gnn import GAT, LightGCN
from training.gnn.schedule import warm_epochs
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN
from training.ranker import HybridRanker, ablation
from training.sources.names import Source
from training.pipeline.phase import Phase, load_source, scorer_of
from training.text import TextLearner, entity_vectors, item_texts
from training.pipeline.user_sample import UserSample, draw_user_sample, fold_in_hybrid, fold_in_scorer
from training.pipeline.workdir import WorkDir

__all__ = ["Pipeline", "PipelineResult"]

Log = Callable[[str], None]


@dataclass
class PipelineResult:
    """What a run produced (the model artifact is assembled from it by ``graphrec``).

    Attributes:
        config: the resolved configuration.
        final: the final phase (sources to ship, the history they were prepared on).
        ranker: the fitted hybrid ranker, prepared on ``final`` (``None`` without the stage).
        item_text_embeddings: ``[num_items, d]`` text vectors, or ``None``.
        entity_text_embeddings: ``[num_entities, d]`` text vectors, or ``None``.
        metrics: ``{"test": {name: EvalResult dict}, "valid": {...}, "sparse_threshold": int}``.
        ablation: rows of the ablation table (``training.ranker.ablation``).
        hybrid_test: the hybrid's test :class:`~eval.EvalResult` (for the plots).
        timings: wall seconds per stage.
        notes: what the run decided (skipped sources, fallbacks, best GNN epoch...).
        training_curves: validation NDCG per evaluated epoch of the GNN (fit phase) and
            of each ranker member: ``name -> {"epoch", "valid_ndcg", "label"}`` (the report's plot).
        user_sample: the users the learners were fitted on (``user_sample``), or ``None`` for all.
    """

    config: TrainConfig
    final: Phase
    ranker: Optional[HybridRanker]
    item_text_embeddings: Optional[np.ndarray]
    entity_text_embeddings: Optional[np.ndarray]
    metrics: dict[str, Any]
    ablation: list[dict[str, Any]]
    hybrid_test: Optional[EvalResult]
    timings: dict[str, float]
    notes: dict[str, Any]
    training_curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_sample: Optional[UserSample] = None


class Pipeline:
    """Run the stages of ``python -m graphrec.train`` on a loaded graph.

    Args:
        graph: the graph artifact (``kg.load_graph``), with a ``valid`` split.
        config: the resolved configuration; ``config.device`` must already be
            resolved (``cpu``/``cuda[:n]``) by the entry point.
        work_dir: checkpoint directory (see :mod:`training.pipeline.workdir`).
        graph_fingerprint: identifies the graph for ``resume``.
        graph_path: the graph artifact's directory (``gnn.nproc > 1``: every DDP process loads it).
        stages: the stages to run; a source stage left out means that source is
            not used. ``ranker`` needs at least one source.
        resume: continue a run interrupted in ``work_dir``.
        show_progress: tqdm bars.
        log: where the concise log lines go.

    Raises:
        ValueError: unknown stages, a config the learners reject, or a graph without
            the splits the stages need.
    """

    def __init__(
        self,
        graph: Graph,
        config: TrainConfig,
        work_dir,
        *,
        graph_fingerprint: str,
        graph_path=None,
        stages: Sequence[str] = STAGES,
        resume: bool = False,
        show_progress: bool = False,
        log: Log = print,
    ) -> None:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; stages are {', '.join(STAGES)}")
        if config.device == "auto":
            raise ValueError("config.device must be resolved to cpu or cuda by the entry point, not 'auto'")
        self.graph, self.config, self.log, self.show_progress = graph, config, log, show_progress
        self.graph_path = graph_path
        self.stages = [s for s in STAGES if s in stages]
        # A graph of item ids only (lastfm, gowalla) has nothing to encode: no text stage, no text init.
        self.graph_has_text = any(text.strip() for text in item_texts(graph, config.text.template))
        self._check_graph()
        self._check_learner_configs()
        self.work = WorkDir(work_dir, config=config.to_dict(), graph_fingerprint=graph_fingerprint, resume=resume)
        self.sample = draw_user_sample(graph.num_users, config.user_sample, config.seed)
        if self.sample is not None:
            if Source.GNN in self._source_stages() and config.gnn.nproc > 1:
                raise ValueError(
                    "user_sample does not support gnn.nproc > 1 yet (the DDP processes load the whole graph)"
                )
            self.work.note("user_sample", self.sample.to_dict())
            self.log(
                f"  user sample: fitting on {self.sample.num_fitted:,} of {graph.num_users:,} users (seed "
                f"{config.seed}); the other {graph.num_users - self.sample.num_fitted:,} are folded in"
            )
        times = graph.has_timestamps
        restrict = self._restrict
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
        self.item_text: Optional[np.ndarray] = None
        self.entity_text: Optional[np.ndarray] = None
        self.ranker: Optional[HybridRanker] = None

    # -- checks --------------------------------------------------------------------------
    def _check_graph(self) -> None:
        counts = self.graph.counts()
        if not counts.get("train"):
            raise ValueError("the graph has no train interactions")
        needs_valid = "ranker" in self.stages and self.config.ranker.enabled
        if needs_valid and not counts.get("valid"):
            raise ValueError(
                "the graph has no validation split, which the hybrid ranker learns from; rebuild it with "
                "--valid-fraction > 0 (python -m graphrec.build) or leave out the ranker stage"
            )

    def _check_learner_configs(self) -> None:
        """Build every learner once so a bad value fails before hours of training."""
        for name in self._source_stages():
            self._make(name)
        if "ranker" in self.stages and self.config.ranker.enabled:
            self._make_ranker()

    def _source_stages(self) -> list[str]:
        names = []
        cfg = self.config
        wanted = {
            Source.TEXT: self._text_on(),
            Source.ALS: "als" in self.stages and cfg.als.enabled,
            Source.ITEMKNN: "neighbors" in self.stages and cfg.itemknn.enabled,
            Source.GRAPHFILTER: "neighbors" in self.stages and cfg.graphfilter.enabled,
            Source.EASE: "neighbors" in self.stages and cfg.ease.enabled,
            Source.GNN: "gnn" in self.stages and cfg.gnn.enabled,
        }
        for name, on in wanted.items():
            if on:
                names.append(name)
        return names

    # -- construction --------------------------------------------------------------------
    def _make(self, name: str) -> Learner:
        cfg, seed, device = self.config, self.config.seed, self.config.device
        if name == Source.TEXT:
            return TextLearner(**cfg.text.learner_kwargs(), seed=seed, device=device)
        if name == Source.ALS:
            return ALS(**cfg.als.learner_kwargs(), seed=seed, device=device)
        if name == Source.ITEMKNN:
            return ItemKNN(**cfg.itemknn.learner_kwargs())
        if name == Source.EASE:
            return EASE(**cfg.ease.learner_kwargs(), device=device)
        if name == Source.GRAPHFILTER:
            return GraphFilter(**cfg.graphfilter.learner_kwargs(), seed=seed, device=device)
        if name == Source.GNN:
            kwargs = cfg.gnn.learner_kwargs()
            if kwargs["init"] == "text" and not self._text_on():
                kwargs["init"] = "random"
            cls = GAT if cfg.gnn.model == "gat" else LightGCN
            return cls(**kwargs, seed=seed, device=device)
        raise ValueError(f"unknown source {name!r}")

    def _text_on(self) -> bool:
        return "text" in self.stages and self.config.text.enabled and self.graph_has_text

    def _make_ranker(self) -> HybridRanker:
        return HybridRanker(**self.config.ranker.learner_kwargs(), seed=self.config.seed, device=self.config.device)

    def _matrix(self, name: str, phase: Phase) -> sp.csr_matrix:
        splits = ("train",) if phase.name == "fit" else ("train", "valid")
        return self._restrict(self.graph.matrix(*splits, weighted=self.config.weighted(name)))

    def _restrict(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` with only the sampled users' rows (``user_sample``; every row without one)."""
        return matrix if self.sample is None else self.sample.restrict(matrix)

    # -- running -------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        """Run (or resume) every selected stage; returns what the model artifact needs."""
        torch.manual_seed(self.config.seed)
        for number, stage in enumerate(self.stages, 1):
            resumed = self.work.done(stage)
            if not resumed:
                self.log(f"[{stage}] stage {number}/{len(self.stages)} started")
                self.work.begin(stage)
            start = time.perf_counter()
            getattr(self, f"_stage_{stage}")()
            if resumed:
                self.log(f"[{stage}] restored from {self.work.path}")
            else:
                seconds = time.perf_counter() - start
                total = self.work.mark_done(stage, seconds)
                earlier = f" ({total:.1f} s with the run(s) before --resume)" if total > seconds + 0.05 else ""
                self.log(f"[{stage}] done in {seconds:.1f} s{earlier}")
        evaluation = self.work.load_json("evaluation.json") if self.work.done("evaluate") else {}
        return PipelineResult(
            config=self.config,
            final=self.phases["final"],
            ranker=self.ranker,
            item_text_embeddings=self.item_text,
            entity_text_embeddings=self.entity_text,
            metrics=evaluation.get("metrics", {}),
            ablation=evaluation.get("ablation", []),
            hybrid_test=getattr(self, "hybrid_test", None),
            timings=dict(self.work.state["timings"]),
            notes=self.work.notes(),
            training_curves=self._training_curves(),
            user_sample=self.sample,
        )

    def _training_curves(self) -> dict[str, dict[str, Any]]:
        """Validation NDCG per epoch, from the GNN's ``history_`` and the ranker's diagnostics."""
        curves: dict[str, dict[str, Any]] = {}
        gnn = self.phases["fit"].sources.get(Source.GNN)
        points = [(r["epoch"], r["ndcg"]) for r in getattr(gnn, "history_", None) or [] if "ndcg" in r]
        if points:
            curves[Source.GNN] = {
                "epoch": [int(e) for e, _ in points], "valid_ndcg": [float(v) for _, v in points],
                "label": "GNN (valid NDCG@20, fit phase)",
            }  # fmt: skip
        members = (getattr(self.ranker, "diagnostics_", None) or {}).get("members", [])
        for number, member in enumerate(members, 1):
            values = [float(v) for v in member.get("valid_ndcg_curve", [])]
            if values and any(np.isfinite(values)):
                name = "ranker" if len(members) == 1 else f"ranker {number}"
                curves[name] = {
                    "epoch": list(range(1, len(values) + 1)), "valid_ndcg": values,
                    "label": f"{name} (inner-valid NDCG@{self.ranker.valid_k})",
                }  # fmt: skip
        return curves

    def _fit_or_load(self, name: str, phase: Phase, fit: Callable[[], Learner]) -> None:
        path = self.work.source_dir(phase.name, name)
        if (path / "config.json").is_file():
            phase.sources[name] = load_source(path, device=self.config.device)
            return
        start = time.perf_counter()
        learner = fit()
        learner.save(path)
        phase.sources[name] = learner
        self.log(f"  {name} ({phase.name}) fitted in {time.perf_counter() - start:.1f} s")

    def _phases(self) -> list[Phase]:
        return [self.phases["fit"], self.phases["final"]] if self.config.ranker.refit else [self.phases["fit"]]

    def _share_fit_sources(self, names: Sequence[str]) -> None:
        """Without refit, the final phase serves the sources fitted on train."""
        if not self.config.ranker.refit:
            for name in names:
                if name in self.phases["fit"].sources:
                    self.phases["final"].sources[name] = self.phases["fit"].sources[name]

    # -- stages --------------------------------------------------------------------------
    def _stage_text(self) -> None:
        if not self.config.text.enabled:
            return
        if not self.graph_has_text:
            self.work.note(Source.TEXT, "skipped: the graph holds no item text (ids only)")
            self.log(
                "  text skipped: the graph holds no item text (ids only): no fine-tuning, no text source, "
                "GNN starts from random vectors"
            )
            return
        fit, final = self.phases["fit"], self.phases["final"]
        self._fit_or_load(
            Source.TEXT,
            fit,
            lambda: self._make(Source.TEXT).fit(
                self.graph, self._matrix(Source.TEXT, fit), show_progress=self.show_progress
            ),
        )
        learner = fit.sources[Source.TEXT]
        if self.config.ranker.refit:
            self._fit_or_load(Source.TEXT, final, lambda: learner.with_history(self._matrix(Source.TEXT, final)))
        self._share_fit_sources(["text"])
        self.item_text = learner.item_embeddings()
        entities = self.work.load_array("text/entities.npy")
        if entities is None and self.graph.num_entities:
            entities, counts = entity_vectors(
                self.graph, learner.encoder, self.item_text, show_progress=self.show_progress
            )
            self.work.note("entity_text", counts)
            self.log(
                f"  entity vectors: {counts['encoded']} readable names encoded, {counts['item_mean']} opaque ids "
                f"as the mean of their items, {counts['none']} without text"
            )
            self.work.save_array("text/entities.npy", entities)
        self.entity_text = entities

    def _stage_als(self) -> None:
        if self.config.als.enabled:
            self._fit_cf(Source.ALS)

    def _stage_neighbors(self) -> None:
        if self.config.itemknn.enabled:
            self._fit_cf(Source.ITEMKNN)
        if self.config.graphfilter.enabled:
            self._fit_cf(Source.GRAPHFILTER)
        if self.config.ease.enabled:
            limit = self._make(Source.EASE).item_limit()
            if self.graph.num_items > limit:
                why = f"{self.graph.num_items:,} items > ease.max_items={limit:,} (dense items x items solve)"
                self.work.note(Source.EASE, f"skipped: {why}")
                self.log(f"  ease skipped: {why}")
                return
            self._fit_cf(Source.EASE)

    def _fit_cf(self, name: str) -> None:
        """Fit a collaborative source per phase; with ``tune.budget_minutes`` > 0, tuned on valid first.

        Tuning (``training.pipeline.tune.tune_source``) runs in the fit phase only: trials are
        fitted on train and scored on the validation split (never test); the best trial's
        learner is the fit-phase source, and the final phase refits its settings on
        train+valid. A resumed run takes the settings from the saved fit-phase source.
        """
        make: Callable[[], Learner] = lambda: self._make(name)  # noqa: E731
        phases = self._phases()
        tune = self.config.tune
        tuned = [n for n in tune.sources if n in self._source_stages()]
        if tune.budget_minutes > 0 and name in tuned and not self.valid.nnz:
            self.work.note(f"tune_{name}", "skipped: the graph has no validation split to tune on")
            self.log(f"  {name} not tuned: the graph has no validation split")
        elif tune.budget_minutes > 0 and name in tuned:
            from training.pipeline.tune import tune_source

            fit = self.phases["fit"]

            def search() -> Learner:
                def configured(**changes: Any) -> Learner:
                    learner = self._make(name)
                    return type(learner)(**{**learner.get_config(), **changes})

                result = tune_source(
                    name, self.graph, self._matrix(name, fit), self.valid, configured,
                    budget_seconds=tune.budget_minutes * 60.0 / len(tuned), seed=self.config.seed,
                    valid_users=tune.valid_users, max_trials=tune.max_trials, k=self.config.eval.k, log=self.log,
                )  # fmt: skip
                self.work.note(f"tune_{name}", result.to_dict())
                self.log(
                    f"  {name} tuned: valid NDCG@{self.config.eval.k} {result.best_value:.4f} "
                    f"(configured {result.default_value:.4f}) in {len(result.history)} trials, {result.seconds:.0f} s: "
                    f"{result.changed or 'configured setting kept'}"
                )
                return result.learner

            self._fit_or_load(name, fit, search)
            chosen = fit.sources[name]
            make = lambda: type(chosen)(**chosen.get_config())  # noqa: E731
            phases = [phase for phase in phases if phase is not fit]
        for phase in phases:
            self._fit_or_load(name, phase, lambda p=phase: make().fit(self.graph, self._matrix(name, p)))
        self._share_fit_sources([name])

    def _stage_gnn(self) -> None:
        if not self.config.gnn.enabled:
            return
        features: dict[str, Any] = {}
        if self._make(Source.GNN).init == "text":
            if self.item_text is None:
                raise ValueError("gnn.init is 'text' but the text stage produced no embeddings")
            features = {"item_features": self.item_text, "entity_features": self.entity_text}
        else:
            self.work.note("gnn_init", "random")
        fit = self.phases["fit"]
        schedule = self._make(Source.GNN).schedule(self._matrix(Source.GNN, fit).nnz)
        self.work.note("gnn_schedule", schedule.to_dict())
        self.log(f"  gnn schedule: {schedule.describe()}")
        if self.config.gnn.nproc > 1:
            self.log(f"  gnn on {self.config.gnn.nproc} processes (torch.distributed DDP)")
        self._fit_or_load(
            Source.GNN,
            fit,
            lambda: self._fit_gnn(
                self._make(Source.GNN), fit, valid=True, warm_start=None, features=features,
            ),  # fmt: skip
        )
        best = max(int(fit.sources[Source.GNN].best_epoch_), 1)
        self.work.note("gnn_best_epoch", best)
        if self.config.ranker.refit:
            final = self.phases["final"]
            # The final phase continues from the fit phase's parameters (same graph, same
            # node space) for the passes the new interactions would get in a cold refit.
            epochs = warm_epochs(best, self._matrix(Source.GNN, fit).nnz, self._matrix(Source.GNN, final).nnz)
            self.work.note("gnn_final", {"warm_start": "fit phase", "epochs": epochs, "rule": "best epoch x new share"})
            self.log(f"  gnn final phase: warm start from the fit phase, {epochs} epoch(s) (best epoch {best})")

            def refit() -> Learner:
                learner = self._make(Source.GNN)
                learner.epochs = epochs
                return self._fit_gnn(learner, final, valid=False, warm_start=fit.sources[Source.GNN], features=features)

            self._fit_or_load(Source.GNN, final, refit)
        self._share_fit_sources(["gnn"])

    def _fit_gnn(self, learner, phase: Phase, *, valid: bool, warm_start, features: dict[str, Any]) -> Learner:
        """Fit the GNN of ``phase``: in process, or on ``gnn.nproc`` DDP processes (training.gnn.distributed)."""
        checkpoints = self.work.gnn_checkpoints(phase.name)
        nproc = self.config.gnn.nproc
        if nproc <= 1:
            return learner.fit(
                self.graph, self._matrix(Source.GNN, phase), valid_items=self.valid if valid else None,
                show_progress=self.show_progress, checkpoint_dir=checkpoints, warm_start=warm_start, **features,
            )  # fmt: skip
        if self.graph_path is None:
            raise ValueError("gnn.nproc > 1 needs the graph artifact's path (Pipeline(graph_path=...))")
        from safetensors.numpy import save_file

        from training.gnn.distributed import fit_distributed

        ddp = self.work.path / "gnn-ddp" / phase.name
        ddp.mkdir(parents=True, exist_ok=True)
        feature_file = None
        present = {name: np.ascontiguousarray(array) for name, array in features.items() if array is not None}
        if present:
            feature_file = ddp / "features.safetensors"
            save_file(present, str(feature_file))
        warm_dir = self.work.source_dir("fit", Source.GNN) if warm_start is not None else None
        splits = ("train",) if phase.name == "fit" else ("train", "valid")
        return fit_distributed(
            {**learner.get_config(), "model": self.config.gnn.model}, graph_path=self.graph_path, splits=splits,
            out=ddp, nproc=nproc, valid_splits=("valid",) if valid else (), features=feature_file,
            warm_start=warm_dir, checkpoint_dir=checkpoints, log=self.log,
        )  # fmt: skip

    def _add_popularity(self) -> None:
        if self.config.ranker.popularity_source:
            for phase in self.phases.values():
                phase.sources[Source.POP] = MostPop().fit(phase.history, item_ids=self.graph.item_ids)

    def _prepare(self, ranker: HybridRanker, phase: Phase) -> None:
        ranker.prepare(
            self.graph, phase.history, item_text_embeddings=self.item_text,
            history_times=phase.history_times, source_scorers=phase.scorers(),
        )  # fmt: skip

    def _fit_users(self) -> np.ndarray:
        """Users with validation items; above ``ranker.fit_users`` a seeded sample of that many (noted)."""
        return self._valid_sample("ranker_fit_users", self.config.ranker.fit_users)

    def _valid_sample(self, note: str, limit: int) -> np.ndarray:
        """The users with validation items, cut to a seeded sample of ``limit`` (noted as ``note``) above it."""
        everyone = self._valid_users()
        users = sample_at_most(everyone, limit, self.config.seed)
        if len(users) < len(everyone):
            self.work.note(note, {"users": len(users), "of": len(everyone), "seed": self.config.seed})
        return users

    def _valid_users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.valid.indptr) > 0).astype(np.int64)

    def _stage_ranker(self) -> None:
        if not self.config.ranker.enabled:
            return
        self._add_popularity()
        fit = self.phases["fit"]
        if not fit.sources:
            raise ValueError("the ranker stage needs at least one source stage (text, als, neighbors, gnn)")
        if (self.work.ranker_dir / "config.json").is_file():
            ranker = HybridRanker.load(self.work.ranker_dir, device=self.config.device)
        else:
            ranker = self._make_ranker()
            self._prepare(ranker, fit)
            start = time.perf_counter()
            ranker.fit(fit.scorers(), self._fit_users(), self.valid, show_progress=self.show_progress)
            ranker.save(self.work.ranker_dir)
            self.log(
                f"  ranker fitted in {time.perf_counter() - start:.1f} s "
                f"(inner-valid NDCG@{ranker.valid_k} {ranker.diagnostics_['best_valid_ndcg']:.4f})"
            )
        self._prepare(ranker, self.phases["final"])
        self.ranker = ranker

    def _stage_evaluate(self) -> None:
        if self.work.done("evaluate"):
            if self.ranker is not None:
                self.hybrid_test = self._evaluate(
                    self._hybrid_test_scorer(), self._served_history(), self._test(), label="evaluate hybrid (test)"
                )
            return
        cfg = self.config.eval
        if Source.POP not in self.phases["fit"].sources:
            self._add_popularity()
        fit, final, test = self.phases["fit"], self.phases["final"], self._test()
        served = self._served_history()  # every user's train + valid: final.history unless user_sample
        threshold = sparse_threshold(served, test, cfg.sparse_max_train)
        metrics: dict[str, Any] = {"sparse_threshold": threshold, "valid": {}, "test": {}}
        if self.valid.nnz:
            users = self._valid_sample("valid_users", cfg.valid_users)
            for name, source in fit.sources.items():
                result = self._evaluate(
                    scorer_of(source), fit.history, self.valid, max_train=threshold, label=f"evaluate {name} (valid)",
                    users=users,
                )  # fmt: skip
                metrics["valid"][name] = result.to_dict()
        rows: list[dict[str, Any]] = []
        results: dict[str, Any] = {}  # the ablation evaluates every source and the hybrid on test already
        if self.ranker is not None and self.config.ranker.ablation:
            members = self.config.ranker.ablation_ensemble  # cheaper refits, compared with a reference refit
            budget = {"ensemble": members} if members and members != self.ranker.ensemble else None
            table = ablation(
                self.ranker, self.graph, fit_inputs=fit.inputs(), fit_users=self._fit_users(), labels=self.valid,
                eval_inputs=final.inputs(), test=self._restrict(test), item_text_embeddings=self.item_text, k=cfg.k,
                sparse_max_train=threshold, sample_users=self.config.ranker.ablation_users, seed=self.config.seed,
                budget=budget, show_progress=self.show_progress,
            )  # fmt: skip
            rows, results = table.rows, dict(table.results)
            if self.sample is not None:  # the ablation's rows cover the fitted users; the test rows every user
                results = {}
                self.work.note("ablation_users", "fitted users only (user_sample)")
            where = ""
            if table.sample_users:
                where = f" on a sample of {table.sample_users} users (seed {table.sample_seed})"
                self.work.note("ablation_sample", {"users": table.sample_users, "seed": table.sample_seed})
            self.log(f"  ablation: each source, the hybrid, the hybrid without each feature group{where}")
        for name, source in final.sources.items():
            if name not in results:
                results[name] = self._evaluate(
                    self._test_scorer(name, source), served, test, max_train=threshold, label=f"evaluate {name} (test)"
                )
            metrics["test"][name] = results[name].to_dict()
        if self.ranker is not None:
            if "hybrid" not in results:
                self._prepare(self.ranker, final)
                results["hybrid"] = self._evaluate(
                    self._hybrid_test_scorer(), served, test, max_train=threshold, label="evaluate hybrid (test)"
                )
            self.hybrid_test = results["hybrid"]
            metrics["test"]["hybrid"] = self.hybrid_test.to_dict()
            metrics["valid"]["hybrid_inner_ndcg"] = self.ranker.diagnostics_["best_valid_ndcg"]
        self.work.save_json("evaluation.json", {"metrics": metrics, "ablation": rows})

    def _test(self) -> sp.csr_matrix:
        return self.graph.matrix("test")

    def _served_history(self) -> sp.csr_matrix:
        """Every user's ``train + valid`` (binary): what test masks, and the rows unsampled users fold in from."""
        return self.graph.matrix("train", "valid")

    def _test_scorer(self, name: str, source: Any) -> Callable[[np.ndarray], Any]:
        """A final source's test scorer: its own, with unsampled users folded in (``user_sample``)."""
        if self.sample is None or not isinstance(source, Learner):  # MostPop scores every user alike
            return scorer_of(source)
        rows = self.graph.matrix("train", "valid", weighted=self.config.weighted(name))  # as the source was fitted
        return fold_in_scorer(source.score, lambda users: source.score_new_users(rows[users]), self.sample.fitted)

    def _hybrid_test_scorer(self) -> Callable[[np.ndarray], Any]:
        """The hybrid's test scorer, unsampled users folded in as ``TrainedModel.scorer`` serves them."""
        if self.sample is None:
            return self.ranker.score
        history, sources = self._served_history(), self.phases["final"].sources
        rows = {name: self.graph.matrix("train", "valid", weighted=self.config.weighted(name)) for name in sources}
        times = self.graph.timestamp_matrix("train", "valid") if self.graph.has_timestamps else None

        def folded(users: np.ndarray):
            return fold_in_hybrid(
                self.ranker, sources, history[users], times[users] if times is not None else None,
                source_rows={name: matrix[users] for name, matrix in rows.items()},
            )  # fmt: skip

        return fold_in_scorer(self.ranker.score, folded, self.sample.fitted)

    def _evaluate(
        self, source, history: sp.csr_matrix, labels: sp.csr_matrix, *, max_train: Optional[int] = None,
        label: str = "evaluate", users: Optional[np.ndarray] = None,
    ):  # fmt: skip
        cfg = self.config.eval
        if max_train is None:
            max_train = sparse_threshold(history, labels, cfg.sparse_max_train)
        return evaluate(
            source, train=history, test=labels, item_ids=self.graph.item_ids, k=cfg.k,
            batch_size=cfg.batch_size, sparse_max_train=max_train, show_progress=self.show_progress,
            progress_label=label, users=users,
        )  # fmt: skip
