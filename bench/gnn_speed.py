"""Training speed of graphrec's LightGCN vs torch_geometric's reference LightGCN, side by side.

    python -m graphrec.build --format recbole --interactions ../shared/data/ml-100k/ml-100k.inter --out /tmp/g-ml100k
    python bench/gnn_speed.py --graph /tmp/g-ml100k

Two sections, both timed in this one process:

1. Propagation kernel: forward + backward of ``num_layers`` LightGCN layers over the
   user-item graph, with (a) our symmetric torch sparse CSR product, (b) the same
   CSR product with torch's own autograd, (c) torch_geometric's ``LGConv`` message
   passing on ``edge_index`` (what ``torch_geometric.nn.LightGCN`` does), on the
   given graph and on a larger synthetic power-law graph.
2. Training: seconds per epoch and test quality of ``training.gnn.LightGCN``
   (random init, user-item edges only, i.e. the same model) and of
   ``torch_geometric.nn.LightGCN`` trained as in PyG's ``examples/lightgcn.py``
   (every mini-batch: full propagation ``model(edge_index, edge_label_index)`` and
   ``recommendation_loss``), with the same graph, batch size, embedding size,
   layers, learning rate, L2 weight and one uniform negative per positive.
   Following that example both train on the protocol's train (train + valid) and
   report test NDCG@20 every ``--eval-every`` epochs; the table gives the best and
   the last. Seconds per epoch exclude evaluation.

Prints a markdown table and writes it to bench/results/gnn_speed.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

from bench.common import emit  # noqa: E402
from eval import evaluate  # noqa: E402
from kg import load_graph  # noqa: E402
from training.gnn import LightGCN  # noqa: E402
from training.gnn.adjacency import (  # noqa: E402
    GraphView,
    build_edges,
    normalized_adjacency,
    to_torch_csr,
)
from training.gnn.lightgcn import LightGCNEncoder  # noqa: E402

CPU = torch.device("cpu")


def _kernel_times(edge_index: torch.Tensor, norm: sp.csr_matrix, *, dim: int, layers: int, repeats: int) -> dict:
    """Seconds of one forward + backward through ``layers`` propagation layers, per method."""
    from torch_geometric.nn import LGConv

    n = norm.shape[0]
    adjacency = to_torch_csr(norm, CPU)
    encoder = LightGCNEncoder(layers)
    conv = LGConv()
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def ours():
        return encoder(x, GraphView(num_nodes=n, adjacency=adjacency, symmetric=True))

    def torch_autograd():
        return encoder(x, GraphView(num_nodes=n, adjacency=adjacency, symmetric=False))

    def pyg():
        out, h = x, x
        for _ in range(layers):
            h = conv(h, edge_index)
            out = out + h
        return out / (layers + 1)

    methods = {"ours: symmetric CSR": ours, "torch CSR autograd": torch_autograd, "PyG LGConv (edge_index)": pyg}
    times = {name: [] for name in methods}
    for _ in range(repeats + 1):  # round-robin so that load changes hit every method alike
        for name, fn in methods.items():
            x.grad = None
            start = time.perf_counter()
            fn().square().sum().backward()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t[1:])) for name, t in times.items()}


def _synthetic(num_users: int, num_items: int, num_edges: int, seed: int) -> tuple[torch.Tensor, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users, num_edges)
    items = (rng.zipf(1.4, num_edges) - 1) % num_items
    ui = sp.csr_matrix((np.ones(num_edges, np.float32), (users, items)), shape=(num_users, num_items))
    ui.sum_duplicates()
    ui.data[:] = 1.0
    adjacency = sp.bmat([[None, ui], [ui.T, None]], format="csr").astype(np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0)
    norm = sp.csr_matrix(sp.diags(inv) @ adjacency @ sp.diags(inv), dtype=np.float32)
    coo = adjacency.tocoo()
    return torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64)), norm


def _train_pyg(graph, train, test, args) -> dict:
    """torch_geometric's LightGCN, trained as in its examples/lightgcn.py."""
    from torch_geometric.nn import LightGCN as PygLightGCN

    torch.manual_seed(args.seed)
    num_users, num_items = train.shape
    coo = train.tocoo()
    users = torch.from_numpy(coo.row.astype(np.int64))
    items = torch.from_numpy(coo.col.astype(np.int64)) + num_users
    label_index = torch.stack([users, items])
    edge_index = torch.cat([label_index, label_index.flip(0)], dim=1)
    model = PygLightGCN(num_nodes=num_users + num_items, embedding_dim=args.dim, num_layers=args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    seconds, curve = [], []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(label_index.size(1))
        for begin in range(0, len(order), args.batch_size):
            index = order[begin : begin + args.batch_size]
            positive = label_index[:, index]
            negative = torch.stack([positive[0], torch.randint(num_users, num_users + num_items, (index.numel(),))])
            edge_label_index = torch.cat([positive, negative], dim=1)
            optimizer.zero_grad()
            pos_rank, neg_rank = model(edge_index, edge_label_index).chunk(2)
            loss = model.recommendation_loss(
                pos_rank, neg_rank, node_id=edge_label_index.unique(), lambda_reg=args.l2
            )
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            model.eval()
            with torch.no_grad():
                emb = model.get_embedding(edge_index)
            user_emb, item_emb = emb[:num_users], emb[num_users:]
            result = evaluate(lambda b: user_emb[torch.as_tensor(b)] @ item_emb.T, train=train, test=test,
                              item_ids=graph.item_ids, k=20)
            curve.append((epoch, result.metrics["ndcg"]))
    return {"seconds": seconds, "curve": curve}


def _train_ours(graph, train, test, args) -> dict:
    learner = LightGCN(
        embedding_dim=args.dim,
        num_layers=args.layers,
        lr=args.lr,
        l2=args.l2,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_negatives=1,
        init="random",
        use_kg=False,
        use_social=False,
        patience=args.epochs,
        eval_every=args.eval_every,
        seed=args.seed,
        device="cpu",
    )
    # As in PyG's example, the "validation" curve is the test curve (same for both models).
    learner.fit(graph, train, valid_items=test)
    history = learner.history_
    return {
        "seconds": [h["seconds"] for h in history],
        "curve": [(h["epoch"], h["ndcg"]) for h in history if "ndcg" in h],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True, help="graph artifact (python -m graphrec.build)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument(
        "--l2", type=float, default=1e-4, help="L2 weight of both (torch_geometric's lambda_reg default)"
    )
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--kernel-repeats", type=int, default=10)
    parser.add_argument("--synthetic", default="50000,20000,2000000", help="users,items,edges of the larger graph")
    parser.add_argument("--skip-training", action="store_true", help="only the kernel section")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gnn_speed.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    graph = load_graph(args.graph)
    train = graph.matrix("train", "valid")
    test = graph.matrix("test")
    edges = build_edges(graph, train, use_kg=False, use_social=False)
    command = shlex.join(["python", "bench/gnn_speed.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "## GNN training speed: graphrec LightGCN vs torch_geometric LightGCN (CPU)",
        "",
        f"Command: `{command}`  ",
        f"Graph `{args.graph.name}`: {graph.num_users:,} users, {graph.num_items:,} items, {train.nnz:,} train "
        f"(train + valid) pairs, {test.nnz:,} test pairs. torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, dim {args.dim}, {args.layers} layers.",
        "",
        "### Propagation kernel (forward + backward, median of "
        f"{args.kernel_repeats} round-robin repeats)",
        "",
        "| graph | nodes | edges | method | ms | vs PyG |",
        "|---|---:|---:|---|---:|---:|",
    ]
    synthetic = [int(v) for v in args.synthetic.split(",")]
    norm = normalized_adjacency(edges)
    for label, (edge_index, matrix) in (
        (args.graph.name, (edges.edge_index(), norm)),
        ("synthetic " + "x".join(f"{v:,}" for v in synthetic[:2]), _synthetic(*synthetic, seed=args.seed)),
    ):
        times = _kernel_times(edge_index, matrix, dim=args.dim, layers=args.layers, repeats=args.kernel_repeats)
        reference = times["PyG LGConv (edge_index)"]
        for name, seconds in times.items():
            lines.append(
                f"| {label} | {matrix.shape[0]:,} | {matrix.nnz:,} | {name} | {1000 * seconds:.1f} | "
                f"{reference / seconds:.1f}x |"
            )
        print("\n".join(lines[-3:]), flush=True)

    if not args.skip_training:
        runs = {}
        for name, run in (("torch_geometric LightGCN", _train_pyg), ("graphrec LightGCN", _train_ours)):
            started = time.perf_counter()
            runs[name] = run(graph, train, test, args)
            print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
        reference = float(np.median(runs["torch_geometric LightGCN"]["seconds"]))
        lines += [
            "",
            f"### Training: {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, L2 {args.l2}, "
            "1 negative per positive",
            "",
            "| model | s/epoch (median) | speed-up | best test NDCG@20 (epoch) | last test NDCG@20 |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, run in runs.items():
            per_epoch = float(np.median(run["seconds"]))
            best = max(run["curve"], key=lambda point: point[1])
            lines.append(
                f"| {name} | {per_epoch:.3f} | {reference / per_epoch:.1f}x | {best[1]:.4f} ({best[0]}) | "
                f"{run['curve'][-1][1]:.4f} |"
            )
    text = "\n".join(lines) + "\n"
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
