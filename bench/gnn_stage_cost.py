"""Wall and CPU seconds of the pipeline's gnn stage alone (fit + final phase).

Prints one JSON line (timings, the gnn notes, the stage's log lines). By default one
torch thread and GNN init random (the stage alone); ``--text`` runs the text stage
first and keeps the default text init, as ``graphrec.train`` does. To compare two
checkouts run it with each first on ``PYTHONPATH``::

    PYTHONPATH=/path/to/old OMP_NUM_THREADS=1 python bench/gnn_stage_cost.py /tmp/sg/ml-100k /tmp/work-old
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python bench/gnn_stage_cost.py /tmp/sg/ml-100k /tmp/work-new

and for the stage's growth from one log size to the next at the defaults (2 threads, text init)::

    python bench/gnn_stage_cost.py /tmp/s25/scale/graphs/synth-1m /tmp/w1 --threads 2 --text
    python bench/gnn_stage_cost.py /tmp/s25/scale/graphs/synth-10m /tmp/w10 --threads 2 --text
"""

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", help="graph artifact directory")
    p.add_argument("work", help="the pipeline's work directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--text", action="store_true", help="run the text stage first and keep gnn.init=text")
    args = p.parse_args()

    import graphrec  # noqa: F401  (first: sets the allocator's huge pages as the verbs do)
    import torch

    import training
    from kg import load_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    torch.set_num_threads(args.threads)
    graph = load_graph(args.graph)
    config = TrainConfig(device="cpu").with_overrides([] if args.text else ["gnn.init=random"])
    stages = ("text", "gnn") if args.text else ("gnn",)
    lines: list[str] = []
    cpu, wall = time.process_time(), time.perf_counter()
    result = Pipeline(graph, config, args.work, graph_fingerprint="x", stages=stages, log=lines.append).run()
    print(json.dumps({
        "code": training.__file__, "graph": args.graph, "threads": args.threads, "stages": stages,
        "cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
        "timings": result.timings, "notes": {k: v for k, v in result.notes.items() if k.startswith("gnn")},
        "curve": result.training_curves.get("gnn"), "log": lines,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
