"""GNN training on several processes with ``torch.distributed`` (DDP over BPR batches).

Every rank holds the whole graph and the same parameters. Each global batch
(the one a single process would take, same seeded order and negatives) is cut
into ``world`` contiguous shards; a rank computes the loss of its shard over a
full-graph propagation, scaled by its share of the batch, and the gradients are
summed across ranks (``all_reduce``) before Adam's step. The summed gradient is
the gradient of the global batch's mean loss, so N processes follow the same
trajectory as one, up to float summation order (``tests/training/test_gnn_distributed.py``).
Rank 0 validates (and tells the others the score, so all stop together) and
writes checkpoints; every rank resumes from them.

Process groups come from ``torchrun`` (gloo on CPU, NCCL on CUDA):
:func:`fit_distributed` starts ``python -m torch.distributed.run --standalone
--nproc-per-node N -m training.gnn.distributed ...``; each rank loads the graph
artifact, fits, and rank 0 saves the learner (``Learner.save``), which the caller
loads back. The same module is the rank's entry point (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from eval.checks import positive_int

__all__ = ["Shard", "fit_distributed", "main"]


@dataclass(frozen=True)
class Shard:
    """This process's place in an initialised ``torch.distributed`` group of ``world`` ranks."""

    rank: int
    world: int

    @classmethod
    def current(cls) -> Optional["Shard"]:
        """The running group's shard, or ``None`` outside a group (or in a group of one)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        return cls(dist.get_rank(), dist.get_world_size())

    def part(self, count: int) -> slice:
        """This rank's contiguous share of ``count`` batch rows (``torch.tensor_split``'s cut)."""
        base, extra = divmod(count, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Sum every parameter's gradient over the ranks (a rank without a gradient adds zeros)."""
        import torch.distributed as dist

        for parameter in model.parameters():
            if not parameter.requires_grad:
                continue
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad)

    def sum(self, value: float) -> float:
        """``value`` summed over the ranks."""
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return float(tensor.item())

    def from_rank0(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    @staticmethod
    def _device() -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def fit_distributed(
    learner_config: dict[str, Any],
    *,
    graph_path: str | os.PathLike,
    splits: Sequence[str],
    out: str | os.PathLike,
    nproc: int,
    valid_splits: Sequence[str] = (),
    features: Optional[str | os.PathLike] = None,
    warm_start: Optional[str | os.PathLike] = None,
    checkpoint_dir: Optional[str | os.PathLike] = None,
    log=print,
):
    """Fit a GNN on ``nproc`` processes and return the fitted learner (rank 0's, loaded from ``out``).

    Args:
        learner_config: the learner's ``get_config()`` (``"model"``: ``"lightgcn"`` or ``"gat"`` added by the caller).
        graph_path: the graph artifact every rank loads.
        splits: the splits that form the training matrix (``("train",)`` or ``("train", "valid")``).
        out: where rank 0 saves the fitted learner.
        nproc: processes (ranks); CPU ranks use gloo, CUDA ranks NCCL (one GPU each).
        valid_splits: the splits of the early-stopping matrix (empty: none).
        features: a safetensors file with ``item_features`` / ``entity_features`` (text init).
        warm_start: a saved learner (``Learner.save``) to continue from.
        checkpoint_dir: per-epoch checkpoints (resume), written by rank 0.
        log: where the ranks' output lines go.

    Raises:
        RuntimeError: a rank failed (its output is in the message).
    """
    from training.pipeline.phase import load_source

    positive_int(nproc, "nproc")
    spec = {
        "learner": learner_config, "graph": os.fspath(graph_path), "splits": list(splits),
        "valid_splits": list(valid_splits), "out": os.fspath(out),
        "features": None if features is None else os.fspath(features),
        "warm_start": None if warm_start is None else os.fspath(warm_start),
        "checkpoint_dir": None if checkpoint_dir is None else os.fspath(checkpoint_dir),
    }  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    spec_path = Path(out) / "distributed.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "training.gnn.distributed", "--spec", str(spec_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in (done.stdout or "").splitlines():
        log(f"  {line}")
    if done.returncode != 0:
        raise RuntimeError(f"distributed GNN training failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return load_source(Path(out) / "learner")


def _run(spec: dict[str, Any]) -> None:
    """One rank: join the group, load the graph, fit; rank 0 saves the learner."""
    import torch.distributed as dist
    from safetensors.numpy import load_file

    from kg.graph_io import load_graph
    from training.gnn import GAT, LightGCN
    from training.pipeline.phase import load_source

    cuda = torch.cuda.is_available() and str(spec["learner"].get("device", "cpu")).startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        config = dict(spec["learner"])
        cls = GAT if config.pop("model", "lightgcn") == "gat" else LightGCN
        if cuda:
            config["device"] = f"cuda:{torch.cuda.current_device()}"
        rank0 = dist.get_rank() == 0
        graph = load_graph(spec["graph"], verify=rank0)
        features: dict[str, Any] = {}
        if spec["features"]:
            features = {k: np.asarray(v) for k, v in load_file(spec["features"]).items()}
        valid = graph.matrix(*spec["valid_splits"]) if spec["valid_splits"] else None
        warm = load_source(spec["warm_start"]) if spec["warm_start"] else None
        learner = cls(**config).fit(
            graph, graph.matrix(*spec["splits"], weighted=True), valid_items=valid, show_progress=False,
            checkpoint_dir=spec["checkpoint_dir"], warm_start=warm, **features,
        )  # fmt: skip
        if rank0:
            learner.save(Path(spec["out"]) / "learner")
            print(f"rank 0 of {dist.get_world_size()}: {len(learner.history_)} epochs, best epoch {learner.best_epoch_}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """A rank's entry point (started by ``torchrun`` from :func:`fit_distributed`)."""
    parser = argparse.ArgumentParser(description="one rank of a distributed GNN fit (started by fit_distributed)")
    parser.add_argument("--spec", required=True, help="the JSON written by fit_distributed")
    args = parser.parse_args(argv)
    _run(json.loads(Path(args.spec).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
