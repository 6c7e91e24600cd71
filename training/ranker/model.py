"""The learned scorer of the hybrid ranker and its losses.

Two scorers map a (user, candidate) feature vector to a score: a linear model
(exact per-feature contributions; user-activity interactions come from the
``act.{s}.z`` features) and a small MLP with a linear skip term (the skip keeps
the linear model's behaviour reachable, so the MLP is never worse to start from).
Both take standardised features ``[..., F]`` and return scores ``[...]``. The
hybrid averages an :class:`Ensemble` of them, each fitted on its own seeded
inner split (bagging over users: less variance from the small validation split).

Losses work on padded candidate lists ``[U, C]`` with a validity mask:

* ``listwise``: softmax cross-entropy of the list against its positives
  (ListNet with a one-hot-per-positive target; Cao et al., 2007);
* ``bpr`` (:func:`list_bpr_loss`): every positive against a uniformly drawn negative of the same list
  (Rendle et al., 2009).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Ensemble", "LinearScorer", "MLPScorer", "list_bpr_loss", "listwise_loss", "make_scorer"]

MODELS = ("mlp", "linear")
LOSSES = ("listwise", "bpr")


class LinearScorer(nn.Module):
    """``score = w . x + b``.

    Args:
        num_features: F.

    Shapes:
        input ``[..., F]``, output ``[...]``.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.linear.in_features})"


class MLPScorer(nn.Module):
    """``score = w . x + MLP(x)``, the MLP having two hidden ReLU layers.

    Args:
        num_features: F.
        hidden: width of the hidden layers.
        dropout: dropout before each hidden layer's activation output is used.

    Shapes:
        input ``[..., F]``, output ``[...]``.
    """

    def __init__(self, num_features: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.skip = nn.Linear(num_features, 1)
        self.mlp = nn.Sequential(
            nn.Linear(num_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        # Start from the linear model: the deep part contributes nothing at first.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.skip(features) + self.mlp(features)).squeeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.skip.in_features}, hidden={self.mlp[0].out_features})"


class Ensemble(nn.Module):
    """The mean of several scorers' outputs (a mean of linear scorers stays linear).

    Args:
        members: the fitted scorers.

    Shapes:
        input ``[..., F]``, output ``[...]``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(features) for member in self.members]).mean(dim=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.members)} x {self.members[0]!r})"


def make_scorer(model: str, num_features: int, hidden: int, dropout: float) -> nn.Module:
    """The scorer named by ``model`` (``"mlp"`` or ``"linear"``)."""
    if model == "linear":
        return LinearScorer(num_features)
    if model == "mlp":
        return MLPScorer(num_features, hidden=hidden, dropout=dropout)
    raise ValueError(f"model={model!r} is not one of {MODELS}")


def listwise_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over lists of ``-sum(log softmax(scores)[positives]) / |positives|``.

    Args:
        scores: float ``[U, C]``.
        labels: float ``[U, C]``, 1 for positives (every list has at least one).
        mask: bool ``[U, C]``, False for padding.

    Returns:
        A scalar tensor.
    """
    log_p = torch.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
    log_p = log_p.masked_fill(~mask, 0.0)
    per_list = -(labels * log_p).sum(dim=1) / labels.sum(dim=1).clamp(min=1.0)
    return per_list.mean()


def list_bpr_loss(
    scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Mean of ``-log sigmoid(s_pos - s_neg)`` with one sampled negative per positive, within candidate lists.

    Not :func:`training.gnn.bpr.bpr_loss`, which is the GNN's BPR over embedding
    rows; this one ranks the candidates of a padded ``[U, C]`` list (``loss="bpr"``).

    Args:
        scores: float ``[U, C]``.
        labels: float ``[U, C]``, 1 for positives.
        mask: bool ``[U, C]``, False for padding.
        generator: seeds the negative sampling.

    Returns:
        A scalar tensor (0 when no list has a negative).
    """
    weights = (mask & (labels == 0)).float().cpu()
    has_negative = weights.sum(dim=1) > 0
    weights[~has_negative] = 1.0  # any column; those rows are dropped below
    draws = torch.multinomial(weights, scores.shape[1], replacement=True, generator=generator)
    negative_scores = scores.gather(1, draws.to(scores.device))
    positive = (labels > 0) & mask & has_negative.to(scores.device).unsqueeze(1)
    if not positive.any():
        return scores.sum() * 0.0
    diff = scores[positive] - negative_scores[positive]
    return nn.functional.softplus(-diff).mean()
