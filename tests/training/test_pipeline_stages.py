"""The pipeline's stages are objects listed once; ``Pipeline.run`` iterates them and checkpoints each.

A full run on a small structured graph (tiny BERT for the text stage) checks the list against
what a run does: every file left in the work directory is a stage's declared checkpoint, the
stages run in the list's order, and ``--resume`` restores each one to the same metrics.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_structured_graph
from tests.training.test_text_encoder import build_tiny_model
from training.pipeline.config import STAGES as CLI_STAGES
from training.pipeline.config import TrainConfig
from training.pipeline.runner import Pipeline
from training.pipeline.stages import ALL_STAGES, STAGE_NAMES
from training.pipeline.stages.base import GRAPH_INPUTS, stage
from training.pipeline.workdir import STATE
from training.sources.names import Source

QUICK = [
    "text.fine_tune_steps=3", "text.max_length=16", "als.factors=8", "als.iterations=3", "gnn.epochs=4",
    "gnn.embedding_dim=8", "gnn.num_layers=1", "ranker.ensemble=1", "ranker.epochs=3", "ranker.ablation=true",
    "ranker.candidates_per_source=20",
]  # fmt: skip


def test_the_stage_list_is_the_cli_list_in_order():
    assert STAGE_NAMES == CLI_STAGES == ("text", "als", "neighbors", "gnn", "ranker", "evaluate")
    assert all(s.doc and s.checkpoint for s in ALL_STAGES), "every stage says what it does and what it keeps"


def test_every_need_is_a_graph_split_or_made_by_an_earlier_stage():
    made: set[str] = set(GRAPH_INPUTS)
    for s in ALL_STAGES:
        missing = [need for need in s.needs if need not in made]
        assert not missing, f"stage {s.name} reads {missing}, which no earlier stage makes"
        made.update(s.makes)


def test_each_learned_source_is_fitted_by_exactly_one_stage():
    fitted = [name for s in ALL_STAGES for name in s.sources]
    assert sorted(fitted) == sorted(set(Source) - {Source.POP})
    assert all(set(s.sources) <= set(s.makes) for s in ALL_STAGES)


def test_unknown_stage_names_are_refused_with_the_list(tmp_path):
    config = TrainConfig(device="cpu")
    with pytest.raises(ValueError, match="unknown stages \\['neighbours'\\]; stages are text, als, neighbors"):
        Pipeline(make_structured_graph(num_users=20, num_items=15, per_user=5), config, tmp_path / "w",
                 graph_fingerprint="g", stages=("als", "neighbours"), log=lambda line: None)  # fmt: skip
    assert not (tmp_path / "w").exists()


def test_a_bad_learner_setting_fails_before_the_work_directory_is_touched(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "keep.txt").write_text("not a work directory")
    config = TrainConfig(device="cpu").with_overrides(["als.factors=0"])
    with pytest.raises(ValueError, match="factors"):
        Pipeline(make_structured_graph(num_users=20, num_items=15, per_user=5), config, work,
                 graph_fingerprint="g", stages=("als",), log=lambda line: None)  # fmt: skip
    assert (work / "keep.txt").read_text() == "not a work directory"


def test_the_loop_checkpoints_any_stage_object_and_resumes_it(tmp_path):
    """The bookkeeping is the loop's: begin, done, timings, restored-from, for whatever stage it is given."""
    calls: list[str] = []

    @stage(needs=(), makes=("marker",), checkpoint=("marker.json",))
    def marker(ctx) -> None:
        """Write a marker once; later runs find it."""
        calls.append("restore" if (ctx.work.path / "marker.json").is_file() else "make")
        if calls[-1] == "make":
            ctx.work.save_json("marker.json", {"made": True})

    graph = make_structured_graph(num_users=20, num_items=15, per_user=5)
    config = TrainConfig(device="cpu")
    for resume in (False, True):
        lines: list[str] = []
        pipeline = Pipeline(graph, config, tmp_path / "w", graph_fingerprint="g", stages=(), resume=resume,
                            log=lines.append)  # fmt: skip
        pipeline.stages = [marker]
        result = pipeline.run()
        assert "marker" in result.timings and pipeline.work.done("marker")
        if resume:
            assert lines == [f"[marker] restored from {tmp_path / 'w'}"]
        else:
            assert lines[0] == "[marker] stage 1/1 started" and lines[1].startswith("[marker] done in ")
    assert calls == ["make", "restore"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("stages")
    tiny = build_tiny_model(base / "bert")
    graph = make_structured_graph(num_users=60, num_items=40, per_user=8)
    config = TrainConfig(device="cpu").with_overrides([f"text.model={tiny}", *QUICK])
    lines: list[str] = []
    result = Pipeline(graph, config, base / "work", graph_fingerprint="g", log=lines.append).run()
    return graph, config, base / "work", result, lines


def test_the_stages_run_in_the_list_order(full_run):
    _, _, _, result, lines = full_run
    started = [line.split("]")[0][1:] for line in lines if line.endswith("started")]
    assert started == list(STAGE_NAMES)
    assert list(result.timings) == list(STAGE_NAMES)
    assert {"text", "als", "itemknn", "graphfilter", "ease", "gnn", "pop"} <= set(result.metrics["test"])


def test_every_file_of_the_work_directory_is_a_stage_checkpoint(full_run):
    _, _, work, _, _ = full_run
    declared = [path for s in ALL_STAGES for path in s.checkpoint]
    stray = [
        str(path.relative_to(work)) for path in work.rglob("*") if path.is_file() and path.name != STATE
        and not any(path.relative_to(work).as_posix().startswith(f"{c}/") or path.relative_to(work).as_posix() == c
                    for c in declared)
    ]  # fmt: skip
    assert not stray, f"files no stage declares as its checkpoint: {stray}"
    kept = {c for c in declared if (work / c).exists()}
    assert {"text/entities.npy", "fit/als", "final/gnn", "ranker", "evaluation.json"} <= kept


def test_resume_restores_every_stage_to_the_same_metrics(full_run):
    graph, config, work, first, _ = full_run
    lines: list[str] = []
    again = Pipeline(graph, config, work, graph_fingerprint="g", resume=True, log=lines.append).run()
    assert [line for line in lines if "restored from" in line] == [f"[{n}] restored from {work}" for n in STAGE_NAMES]
    assert again.metrics == first.metrics and again.ablation == first.ablation
    np.testing.assert_array_equal(again.item_text_embeddings, first.item_text_embeddings)
    untimed = [{k: v for k, v in r.hybrid_test.to_dict().items() if k != "seconds"} for r in (first, again)]
    assert untimed[0] == untimed[1]  # the hybrid re-scored on test from the restored ranker and sources
