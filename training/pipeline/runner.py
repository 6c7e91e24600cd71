"""The training pipeline: graph -> sources -> hybrid ranker -> evaluation, stage by stage.

The stages are objects (:data:`training.pipeline.stages.ALL_STAGES`: name, needs, makes, checkpoint),
listed once in the order they run; :meth:`Pipeline.run` iterates them over one
:class:`~training.pipeline.context.StageContext` and checkpoints each in a
:class:`~training.pipeline.workdir.WorkDir`, so an interrupted run resumes at the stage (and,
for the GNN, the epoch) where it stopped. Learners are built by :mod:`training.pipeline.learners`.

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
import torch

from eval import EvalResult
from kg.graph import Graph
from training.pipeline.config import TrainConfig
from training.pipeline.context import StageContext, selected_sources, text_on
from training.pipeline.learners import make_ranker, make_source
from training.pipeline.phase import Phase
from training.pipeline.stages import ALL_STAGES, STAGE_NAMES, Stage
from training.pipeline.user_sample import UserSample, draw_user_sample
from training.pipeline.workdir import WorkDir
from training.ranker import HybridRanker
from training.sources.names import Source
from training.text import item_texts

__all__ = ["Pipeline", "PipelineResult"]

Log = Callable[[str], None]


@dataclass
class PipelineResult:
    """What a run produced (the model artifact is assembled from it by ``graphrec``).

    Attributes:
        config: the resolved configuration.
        final: the final phase (sources to ship, the history they were prepared on).
        ranker: the fitted hybrid ranker, bound to ``final`` (``None`` without the stage).
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
        stages: the names of the stages to run (:data:`training.pipeline.stages.STAGE_NAMES`);
            a source stage left out means that source is not used. ``ranker`` needs at least one source.
        resume: continue a run interrupted in ``work_dir``.
        show_progress: tqdm bars.
        log: where the concise log lines go.

    Attributes:
        context: the run's shared state (:class:`~training.pipeline.context.StageContext`).
        stages: the selected :class:`~training.pipeline.stages.base.Stage` objects, in order.

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
        stages: Sequence[str] = STAGE_NAMES,
        resume: bool = False,
        show_progress: bool = False,
        log: Log = print,
    ) -> None:
        unknown = [s for s in stages if s not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; stages are {', '.join(STAGE_NAMES)}")
        if config.device == "auto":
            raise ValueError("config.device must be resolved to cpu or cuda by the entry point, not 'auto'")
        self.config, self.log = config, log
        self.stages: list[Stage] = [s for s in ALL_STAGES if s.name in stages]
        names = [s.name for s in self.stages]
        _check_graph(graph, config, names)
        # A graph of item ids only (lastfm, gowalla) has nothing to encode: no text stage, no text init.
        graph_has_text = any(text.strip() for text in item_texts(graph, config.text.template))
        with_text = text_on(names, config, graph_has_text=graph_has_text)
        _check_learners(config, self.stages, text_on=with_text)  # before the work directory is touched
        work = WorkDir(work_dir, config=config.to_dict(), graph_fingerprint=graph_fingerprint, resume=resume)
        sample = draw_user_sample(graph.num_users, config.user_sample, config.seed)
        if sample is not None:
            if Source.GNN in selected_sources(self.stages, config, text_on=with_text) and config.gnn.nproc > 1:
                raise ValueError(
                    "user_sample does not support gnn.nproc > 1 yet (the DDP processes load the whole graph)"
                )
            work.note("user_sample", sample.to_dict())
            self.log(
                f"  user sample: fitting on {sample.num_fitted:,} of {graph.num_users:,} users (seed "
                f"{config.seed}); the other {graph.num_users - sample.num_fitted:,} are folded in"
            )
        self.context = StageContext(
            graph, config, work, stages=self.stages, sample=sample, graph_has_text=graph_has_text,
            text_on=with_text, graph_path=graph_path, show_progress=show_progress, log=log,
        )  # fmt: skip

    @property
    def work(self) -> WorkDir:
        """The run's work directory."""
        return self.context.work

    @property
    def phases(self) -> dict[str, Phase]:
        """``fit`` and ``final``: each phase's history and fitted sources."""
        return self.context.phases

    # -- running -------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        """Run (or resume) every selected stage; returns what the model artifact needs."""
        torch.manual_seed(self.config.seed)
        ctx, work = self.context, self.context.work
        for number, stage in enumerate(self.stages, 1):
            resumed = work.done(stage.name)
            if not resumed:
                self.log(f"[{stage.name}] stage {number}/{len(self.stages)} started")
                work.begin(stage.name)
            start = time.perf_counter()
            stage(ctx)
            if resumed:
                self.log(f"[{stage.name}] restored from {work.path}")
            else:
                seconds = time.perf_counter() - start
                total = work.mark_done(stage.name, seconds)
                earlier = f" ({total:.1f} s with the run(s) before --resume)" if total > seconds + 0.05 else ""
                self.log(f"[{stage.name}] done in {seconds:.1f} s{earlier}")
        evaluation = work.load_json("evaluation.json") if work.done("evaluate") else {}
        return PipelineResult(
            config=self.config,
            final=ctx.phases["final"],
            ranker=ctx.ranker,
            item_text_embeddings=ctx.item_text,
            entity_text_embeddings=ctx.entity_text,
            metrics=evaluation.get("metrics", {}),
            ablation=evaluation.get("ablation", []),
            hybrid_test=ctx.hybrid_test,
            timings=dict(work.state["timings"]),
            notes=work.notes(),
            training_curves=training_curves(ctx.phases["fit"].sources.get(Source.GNN), ctx.ranker),
            user_sample=ctx.sample,
        )


def _check_graph(graph: Graph, config: TrainConfig, stages: Sequence[str]) -> None:
    """The graph has the splits the selected stages need."""
    counts = graph.counts()
    if not counts.get("train"):
        raise ValueError("the graph has no train interactions")
    needs_valid = "ranker" in stages and config.ranker.enabled
    if needs_valid and not counts.get("valid"):
        raise ValueError(
            "the graph has no validation split, which the hybrid ranker learns from; rebuild it with "
            "--valid-fraction > 0 (python -m graphrec.build) or leave out the ranker stage"
        )


def _check_learners(config: TrainConfig, stages: Sequence[Stage], *, text_on: bool) -> None:
    """Build every learner once so a bad value fails before hours of training."""
    for name in selected_sources(stages, config, text_on=text_on):
        make_source(name, config, text_on=text_on)
    if any(s.name == "ranker" for s in stages) and config.ranker.enabled:
        make_ranker(config)


def training_curves(gnn: Any, ranker: Optional[HybridRanker]) -> dict[str, dict[str, Any]]:
    """Validation NDCG per epoch, from the fit-phase GNN's ``history_`` and the ranker's diagnostics."""
    curves: dict[str, dict[str, Any]] = {}
    points = [(r["epoch"], r["ndcg"]) for r in getattr(gnn, "history_", None) or [] if "ndcg" in r]
    if points:
        curves[Source.GNN] = {
            "epoch": [int(e) for e, _ in points], "valid_ndcg": [float(v) for _, v in points],
            "label": "GNN (valid NDCG@20, fit phase)",
        }  # fmt: skip
    members = (getattr(ranker, "diagnostics_", None) or {}).get("members", [])
    for number, member in enumerate(members, 1):
        values = [float(v) for v in member.get("valid_ndcg_curve", [])]
        if values and any(np.isfinite(values)):
            name = "ranker" if len(members) == 1 else f"ranker {number}"
            curves[name] = {
                "epoch": list(range(1, len(values) + 1)), "valid_ndcg": values,
                "label": f"{name} (inner-valid NDCG@{ranker.valid_k})",
            }  # fmt: skip
    return curves
