"""Per-epoch checkpoints of a GNN training run, so that a stopped run resumes exactly.

A checkpoint directory holds ``state.safetensors`` (model parameters, the best
epoch's parameters, Adam's moments, the generator state) and ``progress.json``
(epochs done, best epoch and score, history, and a fingerprint of the run's
configuration and data), plus the artifact manifest with checksums. It is
rewritten atomically after every epoch: a crash leaves the previous epoch's
checkpoint intact. No pickle: tensors go through safetensors, the rest is JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from kg.artifact import ArtifactError, atomic_dir, read_manifest, write_manifest

__all__ = ["CHECKPOINT_FORMAT", "TrainProgress", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "graphrec.gnn.checkpoint"
_VERSION = 1
_PROGRESS = "progress.json"
_TENSORS = "state.safetensors"


@dataclass
class TrainProgress:
    """Where a training run stands after its last completed epoch.

    Attributes:
        epoch: completed epochs.
        best_epoch: epoch of the best validation score (the last epoch when
            there is no validation data).
        best_score: best validation NDCG@20 so far, ``None`` before the first.
        stale_evals: evaluations since the last one that counted as progress
            (early stopping counter; see ``anchor_score``).
        anchor_score: the score of that evaluation: a later one counts as progress
            when it beats this by more than the schedule's relative ``min_gain``
            (with ``min_gain`` 0 it is ``best_score``).
        stopped: early stopping fired.
        history: one dict per epoch: ``epoch``, ``loss``, ``seconds`` (training
            time) and, on evaluated epochs, ``ndcg`` and ``eval_seconds``.
    """

    epoch: int = 0
    best_epoch: int = 0
    best_score: Optional[float] = None
    stale_evals: int = 0
    anchor_score: Optional[float] = None
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def observe(self, epoch: int, score: float, *, patience: int, min_gain: float) -> bool:
        """Record the validation ``score`` of ``epoch``: the early-stopping rule (sets ``stopped``).

        A score above the best so far becomes the best; a score that beats ``anchor_score``
        by more than the fraction ``min_gain`` is progress and resets the patience count,
        any other counts towards ``patience``. Returns whether ``score`` is the new best
        (the caller keeps those weights).
        """
        best = self.best_score is None or score > self.best_score
        if best:
            self.best_score, self.best_epoch = score, epoch
        if self.anchor_score is None or score > self.anchor_score * (1 + min_gain):
            self.anchor_score, self.stale_evals = score, 0
        else:  # no gain worth the epochs: creeping curves stop too
            self.stale_evals += 1
            self.stopped = self.stale_evals >= patience
        return best


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best_state: Optional[dict[str, torch.Tensor]],
    progress: TrainProgress,
    fingerprint: dict[str, Any],
) -> None:
    """Atomically (re)write the checkpoint in ``directory``."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    for index, slots in optimizer.state_dict()["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    tensors["generator"] = generator.get_state()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_dir(directory, overwrite=True) as tmp:
        save_file(tensors, str(tmp / _TENSORS))
        with open(tmp / _PROGRESS, "w", encoding="utf-8") as handle:
            json.dump({"fingerprint": fingerprint, "progress": asdict(progress)}, handle, indent=2)
        write_manifest(tmp, format=CHECKPOINT_FORMAT, format_version=_VERSION, libraries=("torch",))


def load_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: dict[str, Any],
) -> Optional[tuple[TrainProgress, Optional[dict[str, torch.Tensor]]]]:
    """Restore model, optimiser and generator from ``directory`` if it holds a checkpoint.

    Returns:
        ``(progress, best_state)``, or ``None`` when ``directory`` is absent or empty
        (a fresh run).

    Raises:
        ValueError: the checkpoint belongs to a run with another configuration or data.
        kg.artifact.ArtifactError: the checkpoint is incomplete or corrupt.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir() or not any(directory.iterdir()):
        return None
    read_manifest(directory, format=CHECKPOINT_FORMAT, max_version=_VERSION)
    with open(directory / _PROGRESS, encoding="utf-8") as handle:
        stored = json.load(handle)
    differs = sorted(
        key for key in set(fingerprint) | set(stored["fingerprint"])
        if fingerprint.get(key) != stored["fingerprint"].get(key)
    )
    if differs:
        raise ValueError(
            f"checkpoint_dir {directory} holds a checkpoint of another run (differs in {differs}); "
            "remove it or choose another checkpoint_dir"
        )
    tensors = load_file(str(directory / _TENSORS))
    device = next(model.parameters()).device

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.load_state_dict(section("model."))
    except RuntimeError as exc:
        raise ArtifactError(f"{directory / _TENSORS}: model tensors do not fit this model ({exc})") from None
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in section("optim.").items():
        index, name = key.split(".", 1)
        # Adam keeps its step counter on the CPU unless it runs "capturable".
        slots.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": slots, "param_groups": optimizer.state_dict()["param_groups"]})
    generator.set_state(tensors["generator"])
    best = section("best.") or None
    progress = TrainProgress(**stored["progress"])
    if progress.best_score is not None and not math.isfinite(progress.best_score):
        progress.best_score = None
    return progress, best
