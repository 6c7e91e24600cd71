"""The training pipeline's work directory: stage checkpoints that make ``--resume`` exact.

Layout (all written atomically; nothing is pickled)::

    state.json                  config, graph fingerprint, stages done, timings (wall seconds per
                                stage, summed over the runs that worked on it), notes
    fit/<source>/               each source fitted on train (ranker fitting phase)
    final/<source>/             each source refitted on train + valid
    gnn-checkpoints/<phase>/    per-epoch GNN checkpoints (resume mid-stage)
    text/entities.npy           entity text embeddings (GNN initialisation)
    ranker/                     the fitted hybrid ranker
    evaluation.json             metrics and the ablation table

Each stage declares its part of this layout (``Stage.checkpoint``, :mod:`training.pipeline.stages`).
A run resumes only with the same configuration and graph; anything else is an
error that says so rather than a silently mixed model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kg.artifact import atomic_file, to_jsonable
from kg.atomic import discard

__all__ = ["ResumeError", "WorkDir"]

STATE = "state.json"


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for key in keys for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


class ResumeError(RuntimeError):
    """``--resume`` was asked for a work directory that belongs to another run."""


class WorkDir:
    """Checkpoint bookkeeping of one training run.

    Args:
        path: the directory (created when missing).
        config: the resolved configuration (``TrainConfig.to_dict()``).
        graph_fingerprint: identifies the graph (its manifest's checksum).
        resume: keep what an earlier run with the same config and graph finished;
            without it the directory is cleared first.

    Raises:
        ResumeError: ``resume`` and the directory holds a run of another config or graph.
    """

    def __init__(
        self, path: str | os.PathLike, *, config: dict[str, Any], graph_fingerprint: str, resume: bool
    ) -> None:
        self.path = Path(path)
        self.config = to_jsonable(config)
        self.graph_fingerprint = graph_fingerprint
        state_path = self.path / STATE
        if resume and state_path.is_file():
            with open(state_path, encoding="utf-8") as handle:
                state = json.load(handle)
            if state.get("graph") != graph_fingerprint:
                raise ResumeError(
                    f"{self.path} holds a run on another graph; rerun without --resume to start afresh"
                )
            if state.get("config") != self.config:
                changed = _differences(state.get("config", {}), self.config)
                raise ResumeError(
                    f"{self.path} holds a run with another configuration (differs in {', '.join(changed)}); "
                    "rerun without --resume to start afresh"
                )
            self.state = state
            self._close_interrupted_stage()
        else:
            if self.path.exists():
                if any(self.path.iterdir()) and not state_path.is_file():
                    raise ResumeError(
                        f"{self.path} exists and is not a graphrec work directory; choose another --work-dir"
                    )
                discard(self.path)
            self.state = {"graph": graph_fingerprint, "config": self.config, "done": [], "timings": {}, "notes": {}}
        self.path.mkdir(parents=True, exist_ok=True)
        # Wall seconds that earlier runs of this work directory spent (0 for a fresh run).
        self.previous_seconds = sum(self.state["timings"].values()) + sum(self.state.get("interrupted", {}).values())
        self.save()

    def _close_interrupted_stage(self) -> None:
        """Credit a stage that an earlier run began but never finished with the time it kept.

        The earlier run may have been killed, so it could not record its own time: the
        stage is credited from its start to the last file written in the work directory
        (its last checkpoint), which is the part of its work that ``--resume`` keeps.
        """
        running = self.state.pop("running", None)
        if not running:
            return
        last = max((p.stat().st_mtime for p in self.path.rglob("*") if p.is_file()), default=running["since"])
        interrupted = self.state.setdefault("interrupted", {})
        stage = running["stage"]
        interrupted[stage] = round(interrupted.get(stage, 0.0) + max(0.0, last - running["since"]), 3)

    # -- bookkeeping ---------------------------------------------------------------------
    def save(self) -> None:
        with atomic_file(self.path / STATE) as tmp:
            tmp.write_text(json.dumps(to_jsonable(self.state), indent=2), encoding="utf-8")

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def begin(self, stage: str) -> None:
        """Record that ``stage`` starts now (so a resumed run can credit the time it kept)."""
        self.state["running"] = {"stage": stage, "since": time.time()}
        self.save()

    def mark_done(self, stage: str, seconds: float) -> float:
        """Record ``stage`` as finished after ``seconds`` in this run; returns its total over all runs."""
        if stage not in self.state["done"]:
            self.state["done"].append(stage)
        total = float(seconds) + self.state.get("interrupted", {}).pop(stage, 0.0)
        self.state["timings"][stage] = round(total, 3)
        self.state.pop("running", None)
        self.save()
        return total

    def note(self, key: str, value: Any) -> None:
        self.state["notes"][key] = to_jsonable(value)
        self.save()

    def notes(self) -> dict[str, Any]:
        return dict(self.state["notes"])

    # -- paths ---------------------------------------------------------------------------
    def source_dir(self, phase: str, name: str) -> Path:
        return self.path / phase / name

    def gnn_checkpoints(self, phase: str) -> Path:
        return self.path / "gnn-checkpoints" / phase

    @property
    def ranker_dir(self) -> Path:
        return self.path / "ranker"

    # -- arrays and JSON -----------------------------------------------------------------
    def save_array(self, name: str, array: np.ndarray) -> None:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)

    def load_array(self, name: str) -> Optional[np.ndarray]:
        path = self.path / name
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def save_json(self, name: str, value: Any) -> None:
        with atomic_file(self.path / name) as tmp:
            tmp.write_text(json.dumps(to_jsonable(value), indent=2), encoding="utf-8")

    def load_json(self, name: str) -> Any:
        with open(self.path / name, encoding="utf-8") as handle:
            return json.load(handle)
