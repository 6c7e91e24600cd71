"""The model artifact: everything needed to serve, evaluate and export a trained model.

Layout (docs/DESIGN.md; no pickle anywhere)::

    manifest.json          format "graphrec.model", version, resolved config, library
                           versions, counts, sources, metrics (valid/test), timings,
                           sha256 + size of every file
    graph/                 the graph artifact it was trained on (id maps, tables, split)
    sources/<name>/        each fitted source: config.json + state.safetensors
                           (ALS factors, GNN user/item/entity embeddings, EASE/KNN
                           weights, text vectors; text/encoder/ holds the fine-tuned
                           encoder as safetensors + tokenizer)
    ranker/                the hybrid ranker: config.json + state.safetensors
    embeddings.safetensors item and entity text embeddings
    user_sample.safetensors with ``user_sample`` only: ``fitted_users``, the users the
                           learners were fitted on (the others are folded in when served)
    report/                report.md (links the plots), metrics.md/json of the hybrid, PNG plots
                           of every source and the hybrid, plots.json (their numbers)

:func:`write_model` writes it atomically; :func:`load_model` verifies the manifest and
every checksum, then rebuilds the sources and the ranker prepared on the history the
final sources learned from (``train + valid``; with a user sample, the sampled users' rows).
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from kg.artifact import ArtifactError, atomic_dir, check_entry, read_manifest, write_manifest

if TYPE_CHECKING:  # the learners (torch, torch_geometric, transformers) load when a model is written or read
    import scipy.sparse as sp

    from kg.graph import Graph
    from training.pipeline.runner import PipelineResult
    from training.pipeline.user_sample import UserSample
    from training.ranker import HybridRanker

__all__ = ["FORMAT", "FORMAT_VERSION", "HISTORY_SPLITS", "LIBRARIES", "TrainedModel", "load_model", "write_model"]

FORMAT = "graphrec.model"
FORMAT_VERSION = 1
LIBRARIES = ("graphrec", "torch", "transformers", "implicit", "torch_geometric", "numpy", "scipy", "pandas", "pyarrow")
HISTORY_SPLITS = ("train", "valid")
"""The splits the shipped sources and ranker are prepared on (everything but test)."""


def write_model(
    result: PipelineResult,
    graph_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    report: str,
    overwrite: bool = False,
    title: str = "graphrec",
) -> dict[str, Any]:
    """Write the model artifact of a finished pipeline run into ``out`` (atomically).

    Args:
        result: what :meth:`training.pipeline.runner.Pipeline.run` returned.
        graph_dir: the graph artifact it was trained on (copied into ``out/graph``).
        out: the artifact directory.
        report: the markdown training report.
        overwrite: replace an existing ``out``.
        title: names the run in the plots' titles (e.g. the data set).

    Returns:
        The manifest.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false.
    """
    from safetensors.numpy import save_file

    from eval.report import write_report
    from kg.graph import FORMAT as GRAPH_FORMAT
    from kg.graph import FORMAT_VERSION as GRAPH_VERSION
    from training.base import Learner
    from training.sources.names import Source

    with atomic_dir(out, overwrite=overwrite, replaces=FORMAT) as tmp:
        shutil.copytree(graph_dir, tmp / "graph")
        for name, source in result.final.sources.items():
            if isinstance(source, Learner):
                source.save(tmp / "sources" / name)
        if result.ranker is not None:
            result.ranker.save(tmp / "ranker")
        tensors = {}
        if result.item_text_embeddings is not None:
            tensors["item_text"] = np.ascontiguousarray(result.item_text_embeddings, dtype=np.float32)
        if result.entity_text_embeddings is not None:
            tensors["entity_text"] = np.ascontiguousarray(result.entity_text_embeddings, dtype=np.float32)
        save_file(tensors, str(tmp / "embeddings.safetensors"))
        sample = result.user_sample
        if sample is not None:
            save_file({"fitted_users": np.flatnonzero(sample.fitted).astype(np.int64)}, str(tmp / _SAMPLE_FILE))
        (tmp / "report").mkdir()
        (tmp / "report" / "report.md").write_text(report, encoding="utf-8")
        if result.hybrid_test is not None:
            sources = {n: r for n, r in result.metrics.get("test", {}).items() if n != "hybrid"}
            write_report(
                result.hybrid_test, tmp / "report", title=f"{title} (test)", name="hybrid", compare=sources,
                curves=result.training_curves,
            )  # fmt: skip
        elif result.metrics.get("test"):
            from eval.report import write_plots

            write_plots(tmp / "report", result.metrics["test"], curves=result.training_curves, title=f"{title} (test)")
        graph_manifest = read_manifest(tmp / "graph", format=GRAPH_FORMAT, max_version=GRAPH_VERSION, verify=False)
        manifest = write_manifest(
            tmp,
            format=FORMAT,
            format_version=FORMAT_VERSION,
            libraries=LIBRARIES,
            metadata={
                "config": result.config.to_dict(),
                "counts": graph_manifest.get("counts", {}),
                "sources": sorted(result.final.sources),
                "shipped_sources": sorted(n for n, s in result.final.sources.items() if isinstance(s, Learner)),
                "popularity_source": Source.POP in result.final.sources,
                "ranker": result.ranker is not None,
                "history_splits": list(HISTORY_SPLITS),
                "metrics": result.metrics,
                "ablation": result.ablation,
                "timings": result.timings,
                "notes": result.notes,
                **({"user_sample": sample.to_dict()} if sample is not None else {}),
            },
        )
    return manifest


@dataclass
class TrainedModel:
    """A loaded model artifact.

    Attributes:
        path: the artifact directory.
        manifest: its manifest.
        graph: the graph it was trained on (id maps, tables, split).
        sources: name -> fitted source (learners, plus ``pop`` when used).
        ranker: the hybrid ranker, prepared on :attr:`history` (with a user sample, on the
            sampled users' rows of it), or ``None``.
        history: CSR ``[num_users, num_items]``, every user's train + valid: the final
            sources learned from it (or from its sampled users' rows); these are a user's
            "seen" items and the rows unsampled users are folded in from.
        history_times: timestamps of :attr:`history`, or ``None``.
        item_text: ``[num_items, d]`` text vectors, or ``None``.
        entity_text: ``[num_entities, d]`` text vectors, or ``None``.
        user_sample: the users the learners were fitted on (``user_sample``), or ``None`` for all.
    """

    path: Path
    manifest: dict[str, Any]
    graph: Graph
    sources: dict[str, Any]
    ranker: Optional[HybridRanker]
    history: sp.csr_matrix
    history_times: Optional[sp.csr_matrix]
    item_text: Optional[np.ndarray]
    entity_text: Optional[np.ndarray]
    user_sample: Optional[UserSample] = None
    _source_history: Optional[dict[str, sp.csr_matrix]] = field(default=None, repr=False)

    def scorer(self) -> Callable[[np.ndarray], Any]:
        """The model's row scorer: the hybrid ranker, or the single source when there is no ranker.

        With a user sample, users outside it are scored by :meth:`score_rows` from their
        :attr:`history` rows (and timestamps).
        """
        from training.pipeline.phase import scorer_of
        from training.pipeline.user_sample import fold_in_scorer

        base = self.ranker.score if self.ranker is not None else scorer_of(self.sources[self._single_source()])
        if self.user_sample is None:
            return base

        def folded(users: np.ndarray) -> Any:
            rows, times, source_rows = self.fold_in_inputs(users)
            return self.score_rows(rows, history_times=times, source_rows=source_rows)

        return fold_in_scorer(base, folded, self.user_sample.fitted)

    def fold_in_inputs(
        self, users: np.ndarray
    ) -> tuple[sp.csr_matrix, Optional[sp.csr_matrix], dict[str, sp.csr_matrix]]:
        """What known users are folded in from: their :attr:`history` rows, its timestamps (or
        ``None``) and, per source, their rows weighted as that source was fitted (``TrainConfig.weighted``).
        """
        if self._source_history is None:
            from training.pipeline.config import TrainConfig

            with warnings.catch_warnings():  # a model saved before a setting was renamed: not the user's to fix
                warnings.simplefilter("ignore", FutureWarning)
                config = TrainConfig.from_dict(self.manifest["config"])
            splits = tuple(self.manifest.get("history_splits", HISTORY_SPLITS))
            self._source_history = {
                name: self.graph.matrix(*splits, weighted=config.weighted(name)) for name in self.sources
            }  # fmt: skip
        users = np.asarray(users, dtype=np.int64)
        times = self.history_times[users] if self.history_times is not None else None
        return self.history[users], times, {name: rows[users] for name, rows in self._source_history.items()}

    def score_rows(
        self, rows: sp.csr_matrix, *, history_times: Optional[sp.csr_matrix] = None,
        source_rows: Optional[dict[str, sp.csr_matrix]] = None,
    ) -> Any:  # fmt: skip
        """Scores ``[B, num_items]`` (torch, CPU) of users known only by their items (CSR ``[B, num_items]``).

        Every source folds the rows in (``Learner.score_new_users``; ``source_rows[name]``
        instead where given) and the hybrid ranker fuses them as for a fitted user
        (``-inf`` outside the candidates); without a ranker, the single source's fold-in.
        ``history_times`` feed the ranker's context features.
        """
        import torch

        from training.pipeline.user_sample import fold_in_hybrid, fold_in_sources

        if self.ranker is not None:
            return fold_in_hybrid(self.ranker, self.sources, rows, history_times, source_rows=source_rows)
        name = self._single_source()
        return torch.as_tensor(fold_in_sources({name: self.sources[name]}, rows, source_rows)[name]).float().cpu()

    def _single_source(self) -> str:
        from training.pipeline.phase import Source

        learners = [name for name in self.sources if name != Source.POP]
        if len(learners) != 1:
            raise ArtifactError(f"{self.path}: no ranker and {len(learners)} sources; cannot choose a scorer")
        return learners[0]


_STATE_FILES = ("config.json", "state.safetensors")
_SAMPLE_FILE = "user_sample.safetensors"
REQUIRED_FILES = ("embeddings.safetensors", "graph/manifest.json")
"""Entries every model artifact's manifest lists (format version 1)."""


def _require(path: Path, manifest: dict[str, Any], entries: list[str], what: str) -> None:
    absent = [e for e in entries if e not in manifest["files"]]
    if absent:
        raise ArtifactError(f"{path}: {what} needs {', '.join(absent)}, which the manifest does not list")


def _shipped_sources(path: Path, manifest: dict[str, Any]) -> list[str]:
    """The manifest's ``shipped_sources``, each a plain name whose files the manifest lists."""
    names = manifest.get("shipped_sources", [])
    if not isinstance(names, list):
        raise ArtifactError(f"{path}: manifest shipped_sources is not a list")
    for name in names:
        check_entry(name, f"{path}: manifest shipped_sources entry")
        if "/" in name:
            raise ArtifactError(f"{path}: manifest shipped_sources entry {name!r} is not a source name")
        _require(path, manifest, [f"sources/{name}/{f}" for f in _STATE_FILES], f"source {name!r}")
    return names


def load_model(path: str | os.PathLike, *, device: Optional[str] = None, verify: bool = True) -> TrainedModel:
    """Load and check a model artifact written by :func:`write_model`.

    Args:
        path: the artifact directory.
        device: where the learners and the ranker run (default: as saved).
        verify: recompute every file's sha256 against the manifest.

    Raises:
        ArtifactError: not a model artifact, a newer format, a missing or modified file
            (naming it), or an incomplete artifact.
    """
    path = Path(path)
    manifest = read_manifest(path, format=FORMAT, max_version=FORMAT_VERSION, verify=verify, required=REQUIRED_FILES)
    shipped = _shipped_sources(path, manifest)
    from safetensors.numpy import load_file  # the learners (torch...) load once the artifact checks out

    from eval.baselines import MostPop
    from kg.graph_io import load_graph
    from training.pipeline.phase import Source, load_source, scorer_of
    from training.ranker import HybridRanker
    from training.ranker.context import RankerContext

    graph = load_graph(path / "graph", verify=False)  # its files are covered by the model's checksums
    splits = tuple(manifest.get("history_splits", HISTORY_SPLITS))
    history = graph.matrix(*splits)
    history_times = graph.timestamp_matrix(*splits) if graph.has_timestamps else None
    sample = _user_sample(path, manifest, graph.num_users)
    fitted, fitted_times = history, history_times  # what the learners and the ranker saw
    if sample is not None:
        fitted = sample.restrict(history)
        fitted_times = sample.restrict(history_times) if history_times is not None else None
    sources: dict[str, Any] = {}
    for name in shipped:
        sources[name] = load_source(path / "sources" / name, device=device)
    if manifest.get("popularity_source"):
        sources[Source.POP] = MostPop().fit(fitted, item_ids=graph.item_ids)
    tensors = load_file(str(path / "embeddings.safetensors"))
    item_text, entity_text = tensors.get("item_text"), tensors.get("entity_text")
    ranker = None
    if manifest.get("ranker"):
        _require(path, manifest, [f"ranker/{f}" for f in _STATE_FILES], "the ranker")
        ranker = HybridRanker.load(path / "ranker", device=device)
        missing = [s for s in ranker.source_names_ if s not in sources]
        if missing:
            raise ArtifactError(f"{path}: the ranker uses sources {missing} that the artifact does not hold")
        ranker.bind(RankerContext.build(
            graph, fitted, item_text_embeddings=item_text, history_times=fitted_times,
            source_scorers={name: scorer_of(sources[name]) for name in ranker.source_names_},
        ))  # fmt: skip
    return TrainedModel(
        path=path, manifest=manifest, graph=graph, sources=sources, ranker=ranker, history=history,
        history_times=history_times, item_text=item_text, entity_text=entity_text, user_sample=sample,
    )  # fmt: skip


def _user_sample(path: Path, manifest: dict[str, Any], num_users: int) -> Optional[UserSample]:
    """The manifest's ``user_sample`` with its fitted users (``None`` when every user was fitted)."""
    described = manifest.get("user_sample")
    if not described:
        return None
    from safetensors.numpy import load_file

    from training.pipeline.user_sample import UserSample

    _require(path, manifest, [_SAMPLE_FILE], "the user sample")
    users = load_file(str(path / _SAMPLE_FILE)).get("fitted_users")
    if users is None or users.ndim != 1 or (len(users) and not 0 <= users.min() <= users.max() < num_users):
        raise ArtifactError(f"{path}: {_SAMPLE_FILE} holds no valid fitted_users for {num_users} users")
    fitted = np.zeros(num_users, dtype=bool)
    fitted[users] = True
    return UserSample(fitted=fitted, setting=described.get("setting"), seed=described.get("seed"))
