"""Does the node order of the propagation graph matter for LightGCN's sparse products on CPU?

One LightGCN training step propagates ``layers`` times forwards and as many times
backwards with ``A @ x`` (``A`` the normalised ``[N, N]`` adjacency, ``x`` ``[N, d]``).
The reads of ``x`` follow ``A``'s column indices, so once ``x`` outgrows the caches
(synth-10m: 714k nodes x 64 floats = 183 MB) their locality can set the cost. This
times ``A @ x`` for the graph's own order (users by id, then items, then entities)
against orders that put related nodes close: nodes by descending degree, and
reverse Cuthill-McKee (scipy) of the whole graph. Orders alternate, repeats are
round-robin, the median is reported; products are checked equal up to float
rounding after undoing the permutation.

    python bench/gnn_reorder.py --graph /tmp/s24/scale/graphs/synth-10m --threads 1 2

Prints a markdown table; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import reverse_cuthill_mckee

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kg import load_graph  # noqa: E402
from training.base import to_torch_csr  # noqa: E402
from training.gnn.adjacency import build_edges, normalized_adjacency  # noqa: E402


def orders(adjacency: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Permutations (new position -> old node) to compare."""
    n = adjacency.shape[0]
    degree = np.diff(adjacency.indptr)
    started = time.perf_counter()
    rcm = reverse_cuthill_mckee(adjacency, symmetric_mode=True).astype(np.int64)
    rcm_s = time.perf_counter() - started
    print(f"reverse Cuthill-McKee: {rcm_s:.1f} s", flush=True)
    return {
        "graph order": np.arange(n, dtype=np.int64),
        "degree, descending": np.argsort(-degree, kind="stable").astype(np.int64),
        "reverse Cuthill-McKee": rcm,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", type=Path, required=True)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    graph = load_graph(args.graph)
    edges = build_edges(graph, graph.matrix("train"), use_kg=True, use_social=True)
    base = normalized_adjacency(edges)
    n = base.shape[0]
    print(f"{args.graph.name}: {n:,} nodes, {base.nnz:,} stored entries, d = {args.dim}", flush=True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((n, args.dim), dtype=np.float32))
    variants = {}
    for name, perm in orders(base).items():
        permuted = base[perm][:, perm].tocsr()
        permuted.sort_indices()
        variants[name] = (perm, to_torch_csr(permuted, torch.device("cpu")), x[torch.from_numpy(perm)].contiguous())
    reference = None
    for name, (perm, matrix, xp) in variants.items():
        out = torch.empty_like(x)
        out[torch.from_numpy(perm)] = torch.sparse.mm(matrix, xp)
        if reference is None:
            reference = out
        assert torch.allclose(out, reference, atol=1e-5), name
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, (_, matrix, xp) in variants.items():
                started = time.perf_counter()
                torch.sparse.mm(matrix, xp)
                times[name].append(time.perf_counter() - started)
        base_ms = statistics.median(times["graph order"]) * 1e3
        for name, values in times.items():
            ms = statistics.median(values) * 1e3
            rows.append(f"| {threads} | {name} | {ms:,.1f} | {base_ms / ms:.2f}x |")
    print("\n| threads | node order | ms per A @ x (median) | speed-up |\n|---:|---|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
