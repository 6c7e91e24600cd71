"""EvalResult renderings and write_report's files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from eval import METRIC_KEYS, MostPop, evaluate, write_report

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


def test_write_report_writes_four_files(result, tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keep.txt").write_text("mine")
    paths = write_report(result, tmp_path / "report", title="MostPop")
    assert [p.name for p in paths] == ["metrics.md", "metrics.json", "recall_by_decile.png", "longtail_curve.png"]
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
