"""Per-group contributions to one hybrid score, by occlusion.

A group's contribution is how much the score drops when its (standardised)
features are set to 0, their mean over the fitting pairs:
``score(x) - score(x with x_g = 0)``. For a linear scorer this is exactly
``w_g . x_g``, so ``bias + sum of the disjoint groups' contributions = score``;
for the MLP it is an occlusion estimate whose parts need not add up.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

__all__ = ["occlusion"]


def occlusion(scorer: nn.Module, features: torch.Tensor, masks: Mapping[str, Sequence[bool]]) -> dict[str, float]:
    """Score, bias and each mask's occlusion contribution for one feature vector.

    Args:
        scorer: maps ``[..., F]`` standardised features to scores ``[...]``.
        features: float ``[F]``, standardised.
        masks: name -> F booleans, True for the features of that part.

    Returns:
        ``{"score": score(x), "bias": score(0), name: score(x) - score(x | mask = 0) ...}``.
    """
    rows = [features]
    for mask in masks.values():
        occluded = features.clone()
        occluded[torch.tensor(list(mask), dtype=torch.bool, device=features.device)] = 0.0
        rows.append(occluded)
    rows.append(torch.zeros_like(features))
    with torch.no_grad():
        scores = scorer(torch.stack(rows)).float().cpu().tolist()
    out = {"score": scores[0], "bias": scores[-1]}
    out.update({name: scores[0] - value for name, value in zip(masks, scores[1:-1])})
    return out
