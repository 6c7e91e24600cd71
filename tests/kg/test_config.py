"""BuildConfig: defaults, YAML/TOML loading, validation messages."""

from __future__ import annotations

import pytest

from kg import BuildConfig


def test_defaults_follow_protocol():
    config = BuildConfig()
    assert (config.seed, config.train_fraction, config.valid_fraction) == (2026, 0.8, 0.2)
    assert config.split_method == "random"
    assert config.replace(test="t.csv").split_method == "given"
    assert config.lenient is False


def test_yaml_and_toml_give_the_same_config(tmp_path):
    (tmp_path / "b.yaml").write_text(
        "interactions: logs/a.csv\nk_core: 3\nevent_weights: {view: 1, purchase: 5}\nitem_text_columns: [title]\n"
    )
    (tmp_path / "b.toml").write_text(
        'interactions = "logs/a.csv"\nk-core = 3\nitem_text_columns = ["title"]\n[event_weights]\nview = 1\npurchase = 5\n'
    )
    from_yaml = BuildConfig.from_file(tmp_path / "b.yaml")
    from_toml = BuildConfig.from_file(tmp_path / "b.toml")
    assert from_yaml.to_dict() == from_toml.to_dict()
    # Relative paths are relative to the config file.
    assert from_yaml.interactions == str(tmp_path / "logs" / "a.csv")
    assert dict(from_yaml.event_weights) == {"view": 1.0, "purchase": 5.0}
    assert from_yaml.item_text_columns == ("title",)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("interactions: a.csv\nk_cor: 3\n")
    with pytest.raises(ValueError, match=r"c.yaml: unknown build setting 'k_cor'; known: .*k_core"):
        BuildConfig.from_file(path)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"seed": "x"}, TypeError, "seed must be an integer, got 'x'"),
        ({"lenient": 1}, TypeError, "lenient must be true or false"),
        ({"split": "weekly"}, ValueError, "split must be one of"),
        ({"train_fraction": 0}, ValueError, r"train_fraction must be in \(0, 1\], got 0.0"),
        ({"valid_fraction": 1.0}, ValueError, "valid_fraction must be in"),
        ({"k_core": -1}, ValueError, "k_core must be >= 0, got -1"),
        ({"event_weights": {"buy": -2}}, ValueError, r"event_weights\['buy'\] must be a number >= 0"),
        ({"split": "given"}, ValueError, "needs a test file"),
        ({"test": "t.csv", "split": "temporal"}, ValueError, "conflicts"),
        ({"delimiter": "::"}, ValueError, "one character"),
    ],
)
def test_bad_values_are_named(changes, error, message):
    with pytest.raises(error, match=message):
        BuildConfig(**changes)


def test_not_a_mapping_and_bad_syntax(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping of settings, found list"):
        BuildConfig.from_file(tmp_path / "list.yaml")
    (tmp_path / "bad.toml").write_text("k_core = \n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        BuildConfig.from_file(tmp_path / "bad.toml")
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ValueError, match="must end in .yaml, .yml or .toml"):
        BuildConfig.from_file(tmp_path / "x.ini")


def test_python_3_10_reads_toml_with_tomli(tmp_path, monkeypatch):
    """On Python 3.10 (no tomllib) kg.config falls back to tomli, the same parser (setup.cfg installs it there)."""
    import importlib.util
    import sys

    import kg.config

    pytest.importorskip("tomli", reason="tomli is the Python 3.10 TOML parser (pip install tomli)")
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # what 3.10 lacks: importing it now fails
    spec = importlib.util.spec_from_file_location("kg_config_on_310", kg.config.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)  # a separate module object: kg.config itself is untouched
    assert module.tomllib.__name__ == "tomli"
    (tmp_path / "b.toml").write_text('interactions = "a.csv"\nk-core = 3\n[event_weights]\nview = 1\n')
    config = module.BuildConfig.from_file(tmp_path / "b.toml")
    assert (config.k_core, dict(config.event_weights)) == (3, {"view": 1.0})
    (tmp_path / "bad.toml").write_text("k_core = \n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        module.BuildConfig.from_file(tmp_path / "bad.toml")


def test_settings_from_is_the_one_key_check():
    """kg.config.settings_from: dashes, renamed keys (with a warning), unknown keys, old and new together."""
    from kg.config import settings_from

    label = lambda key: f"setting s.{key}"  # noqa: E731
    assert settings_from({"k-core": 3}, ["k_core"], label=label) == {"k_core": 3}
    with pytest.warns(FutureWarning, match=r"setting s\.old-name was renamed to setting s\.new_name"):
        assert settings_from({"old-name": 1}, ["new_name"], label=label, renamed={"old_name": "new_name"}) == {
            "new_name": 1
        }
    with pytest.raises(ValueError, match=r"unknown setting s\.nope; known: a, b"):
        settings_from({"nope": 1}, ["b", "a"], label=label)
    with pytest.raises(ValueError, match=r"setting s\.old_name is the old name of setting s\.new_name"):
        settings_from({"old_name": 1, "new_name": 2}, ["new_name"], label=label, renamed={"old_name": "new_name"})
