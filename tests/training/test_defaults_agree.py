"""One source of truth for defaults: every config section's learner settings equal the learner's own defaults.

``python -m graphrec.train`` builds each learner from its config section
(``section.learner_kwargs()``); a user of the Python API builds it with its
constructor's defaults. Both must be the same learner.
"""

from __future__ import annotations

import inspect

import pytest

from training.sources.als import ALS
from training.pipeline.config import TrainConfig
from training.sources.ease import EASE
from training.gnn import LightGCN
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN
from training.ranker import HybridRanker
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
