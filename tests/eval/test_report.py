"""EvalResult renderings and write_report's files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from eval import METRIC_KEYS, MostPop, RandomScorer, evaluate, write_report
from eval.longtail import LONGTAIL_BINS, binned_shares, popularity_order
from eval.report import PLOT_FILES, REPORT_FILES, plot_data, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(structured_graph):
    train = structured_graph.matrix("train", "valid")
    test = structured_graph.matrix("test")
    ids = structured_graph.item_ids
    return evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=10)


def test_to_dict_has_the_metric_keys_and_breakdowns(result):
    data = result.to_dict()
    assert [key for key in data if key in METRIC_KEYS] == list(METRIC_KEYS)
    assert all(isinstance(data[key], float) for key in METRIC_KEYS)
    assert (data["k"], data["n_users"], data["n_items"], data["head_size"]) == (10, 120, 80, 16)
    assert len(data["deciles"]) == 10 and sum(d["n_items"] for d in data["deciles"]) == 80
    assert sum(d["n_test_items"] for d in data["deciles"]) == 240
    # Structured graph: every user has 9-10 train items, none is sparse -> undefined, written as null.
    assert data["sparse"] == {"threshold": 5, "n_users": 0, "recall": None, "ndcg": None}
    assert json.loads(result.to_json()) == data


def test_markdown_table_shows_the_numbers(result):
    text = result.to_markdown()
    assert f"| Recall@10 | {result.metrics['recall']:.4f} |" in text
    assert f"| TailRecall@10 ({result.n_tail_users} users) |" in text
    assert "| sparse (<= 5 train items) | 0 | n/a | n/a |" in text
    assert text.count("\n| ") >= 10 + 2 + 10


def test_write_report_writes_its_files(result, tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keep.txt").write_text("mine")
    paths = write_report(result, tmp_path / "report", title="MostPop")
    assert [p.name for p in paths] == [*REPORT_FILES, "plots.json"]
    assert (tmp_path / "report" / "metrics.md").read_text().startswith("# MostPop\n")
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["recall"] == pytest.approx(
        result.metrics["recall"]
    )
    for name in ("recall_by_decile.png", "longtail_curve.png"):
        data = (tmp_path / "report" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert (tmp_path / "report" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "report").iterdir() if p.name.startswith(".")) == []


def test_write_report_refuses_a_file_as_directory(result, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        write_report(result, tmp_path / "file")


def test_notes_mention_short_lists():
    train = sp.csr_matrix((np.ones(1, np.float32), ([0], [0])), shape=(2, 3))
    test = sp.csr_matrix((np.ones(2, np.float32), ([0, 1], [1, 2])), shape=(2, 3))
    result = evaluate(lambda u: np.zeros((len(u), 3), np.float32), train=train, test=test, item_ids="abc", k=3)
    assert result.n_short_lists == 1  # user 0 has only 2 unmasked items
    assert "1 of 2 users had fewer than 3 items (0 had none)" in result.to_markdown()


@pytest.fixture(scope="module")
def several(structured_graph, result):
    """Three models from one evaluation: what a hybrid's report compares."""
    train = structured_graph.matrix("train", "valid")
    test = structured_graph.matrix("test")
    ids = structured_graph.item_ids
    rand = evaluate(RandomScorer(seed=0).fit(train), train=train, test=test, item_ids=ids, k=10)
    return {"pop": result.to_dict(), "random": rand.to_dict(), "hybrid": result.to_dict()}


def test_plots_draw_one_line_per_model(several, tmp_path):
    curves = {"gnn": {"epoch": [5, 10, 15], "valid_ndcg": [0.1, 0.2, 0.15], "label": "GNN"}}
    paths = write_plots(tmp_path, several, curves=curves, title="demo (test)")
    assert [p.name for p in paths] == [*PLOT_FILES.values(), "plots.json"]
    data = json.loads((tmp_path / "plots.json").read_text())
    assert list(data["recall_by_decile"]["series"]) == ["pop", "random", "hybrid"]
    assert all(len(v) == 10 for v in data["recall_by_decile"]["series"].values())
    assert list(data["longtail"]["series"]) == ["pop", "random", "hybrid"]
    assert data["training_curves"]["gnn"]["valid_ndcg"] == [0.1, 0.2, 0.15]
    for name in PLOT_FILES.values():
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    # the figures themselves hold one line per model
    from eval.report import _longtail_curve, _recall_by_decile

    assert len(_recall_by_decile(data["recall_by_decile"], "t").axes[0].get_lines()) == 3
    assert len(_longtail_curve(data["longtail"], "t").axes[0].get_lines()) == 3 + 1  # + the head|tail line


def test_plots_refuse_mixed_catalogues(several):
    other = dict(several["pop"], n_items=5)
    with pytest.raises(ValueError, match="different catalogues"):
        plot_data({"a": several["pop"], "b": other})


def test_longtail_curve_is_binned_for_large_catalogues():
    rng = np.random.default_rng(0)
    train = rng.zipf(1.6, 4500).astype(np.int64)
    recs = rng.poisson(3.0, 4500).astype(np.int64)
    order = popularity_order(train)
    curve = binned_shares(train, recs, order)
    assert len(curve["first_rank"]) == LONGTAIL_BINS
    assert curve["first_rank"][0] == 1 and curve["last_rank"][-1] == 4500
    assert all(b == a + 1 for a, b in zip(curve["last_rank"][:-1], curve["first_rank"][1:]))
    assert sum(curve["train_share"]) == pytest.approx(1.0) and sum(curve["rec_share"]) == pytest.approx(1.0)
    assert curve["train_share"][0] >= curve["train_share"][-1]
    tiny = binned_shares(np.array([3, 1, 2]), np.array([0, 1, 0]), np.array([0, 2, 1]))
    assert tiny["first_rank"] == [1, 2, 3] and tiny["rec_share"] == [0.0, 0.0, 1.0]
