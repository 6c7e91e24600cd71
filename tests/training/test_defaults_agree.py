"""One source of truth for defaults: every config section's learner settings equal the learner's own defaults.

``python -m graphrec.train`` builds each learner from its config section
(``section.learner_kwargs()``); a user of the Python API builds it with its
constructor's defaults. Both must be the same learner.
"""

from __future__ import annotations

import inspect

import pytest

from training.gnn import LightGCN
from training.pipeline.config import TrainConfig
from training.ranker import HybridRanker
from training.sources.als import ALS
from training.sources.ease import EASE
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN
from training.text import TextLearner

LEARNERS = {
    "als": ALS, "itemknn": ItemKNN, "ease": EASE, "graphfilter": GraphFilter, "gnn": LightGCN, "text": TextLearner,
    "ranker": HybridRanker,
}  # fmt: skip


@pytest.mark.parametrize("section", sorted(LEARNERS))
def test_config_defaults_are_the_learner_defaults(section):
    kwargs = getattr(TrainConfig(), section).learner_kwargs()
    parameters = inspect.signature(LEARNERS[section].__init__).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    assert not unknown, f"{section}: settings that are not {LEARNERS[section].__name__} arguments: {unknown}"
    differ = {
        name: (value, parameters[name].default) for name, value in kwargs.items()
        if parameters[name].default is inspect.Parameter.empty
        or (tuple(value) if isinstance(value, list) else value) != parameters[name].default
    }  # fmt: skip
    assert not differ, f"{section}: config default vs {LEARNERS[section].__name__} default: {differ}"


def test_fine_tune_settings_have_one_home():
    """TextLearner's and the text section's ``fine_tune_<x>`` are FineTuneConfig's ``x``: same names, same defaults."""
    import dataclasses

    from training.pipeline.config import TextConfig
    from training.text.finetune import AUTO_FINE_TUNE_STEPS, FINE_TUNE_ARGUMENTS, FineTuneConfig

    fields = {f.name: f.default for f in dataclasses.fields(FineTuneConfig)}
    parameters = inspect.signature(TextLearner.__init__).parameters
    learner = {name[len("fine_tune_") :]: p.default for name, p in parameters.items() if name.startswith("fine_tune_")}
    section = {f.name[len("fine_tune_") :] for f in dataclasses.fields(TextConfig) if f.name.startswith("fine_tune_")}
    assert set(learner) == set(FINE_TUNE_ARGUMENTS) == section
    assert set(FINE_TUNE_ARGUMENTS) <= set(fields)
    assert learner.pop("steps") == "auto" and fields["steps"] == AUTO_FINE_TUNE_STEPS[1]
    assert learner == {name: fields[name] for name in learner}
    # What the learner hands fine_tune is its own settings, field by field.
    config = TextLearner(fine_tune_steps=7, fine_tune_lr=1e-3, fine_tune_neighbors=11, seed=3).fine_tune_config()
    assert (config.steps, config.lr, config.neighbors, config.seed) == (7, 1e-3, 11, 3)
