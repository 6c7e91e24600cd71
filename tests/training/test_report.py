"""The training report's markdown: title, plot links, no repeated table (training/pipeline/report.py)."""

from __future__ import annotations

import pytest

from eval import MostPop, RandomScorer, evaluate
from eval.report import PLOT_FILES
from training.pipeline.report import format_report, run_name


@pytest.fixture(scope="module")
def metrics(structured_graph):
    train = structured_graph.matrix("train", "valid")
    test = structured_graph.matrix("test")
    ids = structured_graph.item_ids
    pop = evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=10).to_dict()
    rand = evaluate(RandomScorer(seed=1).fit(train), train=train, test=test, item_ids=ids, k=10).to_dict()
    return {"test": {"pop": pop, "random": rand, "hybrid": pop}, "valid": {}, "sparse_threshold": 5}


def _ablation(metrics):
    rows = [dict(metrics["test"][n], name=n, kind="source") for n in ("pop", "random")]
    rows.append(dict(metrics["test"]["hybrid"], name="hybrid", kind="hybrid"))
    rows.append(dict(metrics["test"]["random"], name="hybrid - content", kind="ablation"))
    return rows


def _report(metrics, **overrides):
    args = dict(
        title="graphrec training report: demo", metrics=metrics, ablation=_ablation(metrics), timings={"als": 1.0},
        notes={}, counts={"users": 3}, k=10,
    )  # fmt: skip
    args.update(overrides)
    return format_report(**args)


def test_report_links_its_plots(metrics):
    curves = {"gnn": {"epoch": [5, 10], "valid_ndcg": [0.2, 0.3], "label": "GNN (valid NDCG@20)"}}
    text = _report(metrics, curves=curves)
    assert text.startswith("# graphrec training report: demo\n")
    for name in PLOT_FILES.values():
        assert f"]({name})" in text, name
    assert "GNN (valid NDCG@20): best 0.3000 at epoch 10" in text
    assert f"]({PLOT_FILES['training_curves']})" not in _report(metrics)  # no curves, no link


def test_ablation_does_not_repeat_the_test_table(metrics):
    text = _report(metrics)
    test_section, ablation_section = text.split("## Ablation", 1)
    ablation_section = ablation_section.split("\n## ", 1)[0]
    assert "| random |" in test_section and "| MostPop |" in test_section
    assert "| random |" not in ablation_section and "MostPop" not in ablation_section
    assert "**hybrid**" not in ablation_section
    assert "| hybrid - content |" in ablation_section
    assert "relative to the full hybrid" in ablation_section
    only_sources = [row for row in _ablation(metrics) if row["kind"] != "ablation"]
    assert "## Ablation" not in _report(metrics, ablation=only_sources)


def test_run_name(tmp_path):
    assert run_name(tmp_path / "graphrec-demo" / "graph", demo=True) == "demo"
    assert run_name(tmp_path / "ml-100k") == "ml-100k"
    assert run_name(tmp_path / "lastfm" / "graph") == "lastfm/graph"


def test_every_sparse_user_figure_carries_its_user_count(structured_graph):
    from training.pipeline.report import metrics_table

    train, test, ids = structured_graph.matrix("train", "valid"), structured_graph.matrix("test"), structured_graph.item_ids
    pop = evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=10, sparse_max_train=10)
    n = pop.sparse["n_users"]
    assert n == pop.n_users > 0  # every user of this graph has 10 train items
    ablation_row = {"ndcg": 0.5, "sparse_ndcg": 0.25, "sparse_users": 7}
    lines = metrics_table([("pop", pop.to_dict()), ("hybrid - content", ablation_row)], 10).splitlines()
    assert lines[2].endswith(f"{pop.sparse['ndcg']:.4f} (n={n}) |")
    assert lines[3].endswith("0.2500 (n=7) |")
    assert "(n=" not in metrics_table([("x", {"ndcg": 0.5})], 10)  # no sparse figure, no count


def test_ablation_under_a_budget_compares_with_its_reference(metrics):
    rows = _ablation(metrics)
    reference = dict(metrics["test"]["pop"], name="hybrid (ablation budget)", kind="reference", budget={"ensemble": 1})
    rows.insert(-1, reference)
    section = _report(metrics, ablation=rows).split("## Ablation", 1)[1].split("\n## ", 1)[0]
    assert "| hybrid (ablation budget) |" in section and "| hybrid - content |" in section
    assert "ablation budget (ensemble=1)" in section
    assert "relative to the full hybrid under the same budget" in section
