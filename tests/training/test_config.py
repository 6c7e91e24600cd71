"""TrainConfig: files, overrides, errors that name the setting, round trip."""

from __future__ import annotations

import warnings

import pytest

from training.pipeline.config import STAGES, TrainConfig, describe, parse_override


def test_defaults_round_trip():
    config = TrainConfig()
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.als.regularization == 30.0 and config.gnn.model == "lightgcn" and config.eval.k == 20
    assert STAGES == ("text", "als", "neighbors", "gnn", "ranker", "evaluate")


def test_yaml_and_toml_agree(tmp_path):
    (tmp_path / "c.yaml").write_text("seed: 7\nals: {factors: 16, weighted: false}\ngnn:\n  model: gat\n  heads: 2\n")
    (tmp_path / "c.toml").write_text("seed = 7\n[als]\nfactors = 16\nweighted = false\n[gnn]\nmodel = 'gat'\nheads = 2\n")
    from_yaml, from_toml = TrainConfig.from_file(tmp_path / "c.yaml"), TrainConfig.from_file(tmp_path / "c.toml")
    assert from_yaml == from_toml
    assert from_yaml.seed == 7 and from_yaml.als.factors == 16 and not from_yaml.als.weighted
    assert from_yaml.gnn.learner_kwargs()["heads"] == 2
    assert "heads" not in TrainConfig().gnn.learner_kwargs()  # LightGCN takes no heads


def test_overrides_parse_yaml_scalars():
    config = TrainConfig().with_overrides(["als.factors=8", "ranker.feature_groups=[sources, popularity]",
                                           "text.model=null", "seed=3", "gnn.lr=0.01"])
    assert config.als.factors == 8 and config.seed == 3 and config.gnn.lr == 0.01
    assert config.ranker.feature_groups == ("sources", "popularity")
    assert parse_override("a.b=x=y") == (("a", "b"), "x=y")


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (["als.factor=8"], ValueError, r"unknown setting als\.factor; known: .*factors"),
        (["alss.factors=8"], ValueError, r"unknown section 'alss'"),
        (["als.factors=eight"], TypeError, r"als\.factors must be an integer, got 'eight'"),
        (["als.weighted=2"], TypeError, r"als\.weighted must be true or false"),
        (["device=tpu"], ValueError, r"device must be auto, cpu or cuda"),
        (["gnn.model=gcn"], ValueError, r"gnn\.model must be lightgcn or gat"),
        (["nothing"], ValueError, r"expected section\.field=value"),
    ],
)
def test_bad_settings_name_the_setting(overrides, error, match):
    with pytest.raises(error, match=match):
        TrainConfig().with_overrides(overrides)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ranker: {epochz: 3}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown setting ranker\.epochz"):
        TrainConfig.from_file(path)
    (tmp_path / "c.ini").write_text("x")
    with pytest.raises(ValueError, match=r"must end in \.yaml, \.yml or \.toml"):
        TrainConfig.from_file(tmp_path / "c.ini")


def test_every_setting_is_documented():
    table = describe()
    for section in ("text", "als", "itemknn", "ease", "graphfilter", "gnn", "ranker", "eval"):
        for name in getattr(TrainConfig(), section).to_dict():
            assert f"`{section}.{name}`" in table


def test_shipped_example_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("ml-100k.yaml", "lastfm.yaml"):
        config = TrainConfig.from_file(root / name)
        assert config.seed == 2026
    assert not TrainConfig.from_file(root / "lastfm.yaml").text.enabled


def test_work_dir_never_clears_a_foreign_directory(tmp_path):
    from training.pipeline.workdir import ResumeError, WorkDir

    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(ResumeError, match="not a graphrec work directory"):
        WorkDir(tmp_path, config={"a": 1}, graph_fingerprint="g", resume=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    work = WorkDir(tmp_path / "w", config={"a": 1, "b": {"c": 2}}, graph_fingerprint="g", resume=False)
    work.mark_done("als", 1.0)
    again = WorkDir(tmp_path / "w", config={"a": 1, "b": {"c": 2}}, graph_fingerprint="g", resume=True)
    assert again.done("als") and not again.done("gnn")
    with pytest.raises(ResumeError, match=r"differs in b\.c"):
        WorkDir(tmp_path / "w", config={"a": 1, "b": {"c": 3}}, graph_fingerprint="g", resume=True)
    with pytest.raises(ResumeError, match="another graph"):
        WorkDir(tmp_path / "w", config={"a": 1, "b": {"c": 2}}, graph_fingerprint="h", resume=True)
    fresh = WorkDir(tmp_path / "w", config={"a": 1, "b": {"c": 2}}, graph_fingerprint="g", resume=False)
    assert not fresh.done("als")


def test_old_text_setting_names_load_with_a_warning(tmp_path):
    """Issue 15 renamed text.neighbours, text.fine_tune_neighbours and text.fine_tune_learning_rate."""
    path = tmp_path / "old.yaml"
    path.write_text("text: {neighbours: 7, fine_tune_neighbours: 9, fine_tune_learning_rate: 0.001}\n")
    with pytest.warns(FutureWarning, match=r"setting text\.neighbours was renamed to setting text\.neighbors"):
        config = TrainConfig.from_file(path)
    assert (config.text.neighbors, config.text.fine_tune_neighbors, config.text.fine_tune_lr) == (7, 9, 0.001)
    assert "neighbours" not in config.to_dict()["text"]
    with pytest.warns(FutureWarning, match="fine_tune_learning_rate"):
        assert TrainConfig().with_overrides(["text.fine_tune_learning_rate=0.01"]).text.fine_tune_lr == 0.01
    with pytest.raises(ValueError, match=r"text\.neighbours is the old name of setting text\.neighbors"):
        TrainConfig.from_dict({"text": {"neighbours": 7, "neighbors": 8}})


def test_current_names_load_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainConfig().with_overrides(["text.neighbors=7", "text.fine_tune_lr=0.01"]).text.neighbors == 7
