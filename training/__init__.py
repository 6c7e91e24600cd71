"""Learners (text encoder, ALS, item-KNN/EASE, GNNs, hybrid ranker) and the training pipeline."""

from training.base import GraphrecWarning, Learner, ModelFitError, NotFittedError, resolve_device

__all__ = ["GraphrecWarning", "Learner", "ModelFitError", "NotFittedError", "resolve_device"]
