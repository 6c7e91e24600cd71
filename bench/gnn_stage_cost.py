"""Wall and CPU seconds of the pipeline's gnn stage alone (fit + final phase), one torch thread, GNN init random.

Prints one JSON line (timings, the gnn notes, the stage's log lines). To compare two
checkouts run it with each first on ``PYTHONPATH``::

    PYTHONPATH=/path/to/old OMP_NUM_THREADS=1 python bench/gnn_stage_cost.py /tmp/sg/ml-100k /tmp/work-old
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python bench/gnn_stage_cost.py /tmp/sg/ml-100k /tmp/work-new
"""

import json
import sys
import time


def main() -> None:
    import torch

    import training
    from kg import load_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    torch.set_num_threads(1)
    graph = load_graph(sys.argv[1])
    config = TrainConfig(device="cpu").with_overrides(["gnn.init=random"])
    lines: list[str] = []
    cpu, wall = time.process_time(), time.perf_counter()
    result = Pipeline(graph, config, sys.argv[2], graph_fingerprint="x", stages=("gnn",), log=lines.append).run()
    print(json.dumps({
        "code": training.__file__, "cpu_s": round(time.process_time() - cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1), "timings": result.timings,
        "notes": {k: v for k, v in result.notes.items() if k.startswith("gnn")}, "log": lines,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
