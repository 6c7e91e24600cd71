"""Arguments and settings that were renamed, old name -> new name, so what was written before still loads.

Issue 15 gave each concept one name: American ``neighbor`` (as the stage ``neighbors``,
``itemknn.neighbors`` and ``gnn.num_neighbors`` already were, and as scikit-learn and
PyG spell it) and ``lr`` for a learning rate (as ``gnn.lr`` and ``ranker.lr``). A
learner's ``load`` reads a saved ``config.json`` through :attr:`training.base.Learner.renamed_arguments`
silently (the artifact is not the user's to fix); a config file or ``--set`` with an old
key loads with a ``FutureWarning`` that names the new one (:func:`kg.config.settings_from`).

This module imports nothing, so the configuration can read it without loading torch.
"""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT = {
    "neighbours": "neighbors",
    "fine_tune_neighbours": "fine_tune_neighbors",
    "fine_tune_learning_rate": "fine_tune_lr",
}
"""``training.text.TextLearner`` arguments and ``text.*`` settings."""
