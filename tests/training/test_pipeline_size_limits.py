"""Item-item sources that cost items x items or items x interactions are skipped above their catalogue limits.

EASE (``ease.max_items``) and the graph filter (``graphfilter.max_items``) are then not
sources of the run: one log line and a manifest note say why, item-KNN carries the
item-item view, and a skipped source takes no share of the tuning budget.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import make_structured_graph
from training.pipeline.config import TrainConfig
from training.pipeline.runner import Pipeline


@pytest.mark.parametrize(
    "limits, skipped",
    [
        (["graphfilter.max_items=29"], {"graphfilter": "30 items > graphfilter.max_items=29"}),
        (["ease.max_items=29"], {"ease": "30 items > ease.max_items=29"}),
        (["graphfilter.max_items=30", "ease.max_items=30"], {}),
        (["graphfilter.max_items=0"], {}),  # 0: no limit
    ],
)
def test_sources_above_their_item_limit_are_skipped_and_said_so(tmp_path, limits, skipped):
    graph = dataclasses.replace(make_structured_graph(num_users=40, num_items=30, per_user=6), meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides(["tune.budget_minutes=0", *limits])
    lines: list[str] = []
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="limits", stages=("neighbors",),
                        log=lines.append)  # fmt: skip
    result = pipeline.run()
    for name in ("itemknn", "graphfilter", "ease"):
        said = [line for line in lines if f"{name} skipped" in line]
        if name in skipped:
            assert name not in result.final.sources and name not in pipeline.phases["fit"].sources
            assert len(said) == 1 and skipped[name] in said[0]
            assert result.notes[name].startswith(f"skipped: {skipped[name]}")
        else:
            assert name in result.final.sources and not said and name not in result.notes


def test_a_skipped_graph_filter_takes_no_share_of_the_tuning_budget(tmp_path):
    from training.pipeline.stages import cf_stages

    graph = dataclasses.replace(make_structured_graph(num_users=40, num_items=30, per_user=6), meta={"seed": 0})
    config = TrainConfig(device="cpu").with_overrides(
        ["graphfilter.max_items=10", "ease.max_items=10", "tune.max_trials=1", "tune.budget_minutes=1"]
    )
    shares: dict[str, float] = {}

    def tuned(ctx, name, *, budget_seconds):
        shares[name] = budget_seconds
        return ctx.make(name).fit(ctx.graph, ctx.matrix(name, ctx.phases["fit"]))

    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="limits-tune", stages=("neighbors",),
                        log=lambda line: None)  # fmt: skip
    original = cf_stages._tuned
    cf_stages._tuned = tuned
    try:
        pipeline.run()
    finally:
        cf_stages._tuned = original
    assert shares == {"itemknn": pytest.approx(60.0)}  # the whole minute: graphfilter and EASE are skipped
