"""Contrastive fine-tuning of the text encoder on co-interaction pairs.

The encoder learns that two items the same users chose should read alike: each
step draws a batch of anchor items and, for each, one co-interaction neighbor
(:func:`~training.text.similar.co_interaction_neighbors`, cosine-weighted, so
popularity is divided out), and minimises the symmetric in-batch InfoNCE loss
(van den Oord et al., 2018; the in-batch form of Henderson et al., 2017)

.. math::

    \\mathcal{L} = -\\frac{1}{2B} \\sum_{k=1}^{B} \\Big[
        \\log \\frac{e^{s(a_k, p_k)/\\tau}}{\\sum_{m} e^{s(a_k, p_m)/\\tau}}
      + \\log \\frac{e^{s(a_k, p_k)/\\tau}}{\\sum_{m} e^{s(a_m, p_k)/\\tau}} \\Big]

with ``s`` the cosine of the mean-pooled vectors and ``tau`` the temperature.
In-batch "negatives" that are the same item as the positive (or as the anchor)
are masked out. Anchors are drawn with probability proportional to
``degree ** anchor_power``: 0 gives every item with a neighbor the same share
(the long tail is trained as much as the head), 1 follows popularity.

Only the top ``layers`` transformer blocks are updated by default: the frozen
lower layers keep the general language knowledge that cold items depend on, and
their output for a text never changes, so it is computed once
(:class:`~training.text.prefix.PrefixCache`: the most-drawn texts first, within a
memory budget) and every step runs only the top blocks. The cache stays on the encoder
(``encoder.prefix``), so the embedding pass after fine-tuning runs only the top
blocks too. The step plan (anchors and positives) is drawn up front, which is what
tells the cache which texts are worth keeping.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import number, positive_int
from eval.progress import progress_bar
from kg.graph import Graph
from training.base import Callback, ModelFitError, as_user_items
from training.text.encoder import TextEncoder
from training.text.prefix import PrefixCache
from training.text.similar import co_interaction_neighbors
from training.text.templates import item_texts

__all__ = [
    "AUTO_FINE_TUNE_STEPS",
    "FINE_TUNE_ARGUMENTS",
    "FineTuneConfig",
    "FineTuneReport",
    "auto_fine_tune_steps",
    "fine_tune",
    "info_nce",
    "trainable_parameters",
]


AUTO_FINE_TUNE_PASSES = 2
"""``fine_tune_steps="auto"``: anchors drawn per item with text (steps = passes x items / batch)."""
AUTO_FINE_TUNE_STEPS = (20, 200)
"""Bounds of the automatic step count: at least a warm-up's worth, at most the fixed budget of old."""


def auto_fine_tune_steps(num_text_items: int, batch_size: int) -> int:
    """Fine-tuning steps sized to the catalogue: ``passes * items / batch``, within :data:`AUTO_FINE_TUNE_STEPS`.

    Zero when no item has text.
    """
    if num_text_items < 2:
        return 0
    low, high = AUTO_FINE_TUNE_STEPS
    return int(min(high, max(low, math.ceil(AUTO_FINE_TUNE_PASSES * num_text_items / batch_size))))


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of :func:`fine_tune`.

    Args:
        steps: optimiser steps.
        batch_size: anchor/positive pairs per step (``2 * batch_size`` texts at most).
        lr: AdamW peak learning rate (linear warm-up, then linear decay to 0).
        temperature: InfoNCE temperature ``tau``.
        max_length: tokens per text while training; ``None`` uses the encoder's.
        layers: how many of the top transformer blocks are trained; ``None``
            trains every weight (embeddings included).
        weight_decay: AdamW weight decay.
        warmup_fraction: share of ``steps`` spent warming the learning rate up.
        neighbors: co-interaction neighbors kept per item (the positives).
        anchor_power: anchors are drawn with probability ``degree ** anchor_power``.
        seed: seeds pair sampling and dropout.

    Raises:
        ValueError: a setting is out of range.
    """

    steps: int = 200
    batch_size: int = 32
    lr: float = 2e-4
    temperature: float = 0.05
    max_length: Optional[int] = None
    layers: Optional[int] = 2
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    neighbors: int = 50
    anchor_power: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(name: str, low: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            positive_int(value, f"FineTuneConfig.{name}", minimum=low)

        integer("steps", 0)
        integer("batch_size", 2)
        integer("max_length", 1, optional=True)
        integer("layers", 0, optional=True)
        integer("neighbors", 1)
        integer("seed", 0)
        for name, bounds in (
            ("lr", {"low": 0.0, "low_open": True}),
            ("temperature", {"low": 0.0, "low_open": True}),
            ("weight_decay", {"low": 0.0}),
            ("warmup_fraction", {"low": 0.0, "high": 1.0}),
            ("anchor_power", {}),
        ):
            number(getattr(self, name), f"FineTuneConfig.{name}", **bounds)


FINE_TUNE_ARGUMENTS = ("steps", "batch_size", "lr", "temperature", "layers", "anchor_power", "neighbors")
"""The :class:`FineTuneConfig` fields that :class:`~training.text.TextLearner` takes as ``fine_tune_<field>``
(and the ``text`` config section as ``text.fine_tune_<field>``), with the same defaults except ``steps``
(``"auto"`` there). The others keep their defaults; ``seed`` is the learner's own."""


@dataclass(frozen=True)
class FineTuneReport:
    """What :func:`fine_tune` did.

    Attributes:
        steps: optimiser steps taken.
        losses: the loss of every step.
        seconds: wall time of the training loop (pair mining included).
        pairs: candidate (anchor, positive) pairs, i.e. stored neighbor entries.
        anchors: items that had a neighbor and could be drawn as anchors.
        trained_parameters: weights updated.
        fingerprint: the encoder's fingerprint after training.
    """

    steps: int
    losses: tuple[float, ...]
    seconds: float
    pairs: int
    anchors: int
    trained_parameters: int
    fingerprint: str

    def to_dict(self) -> dict:
        return {**asdict(self), "losses": list(self.losses)}


def info_nce(
    anchors: torch.Tensor, positives: torch.Tensor, false_negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric in-batch InfoNCE (see the module docstring).

    Args:
        anchors: unit vectors ``[B, d]``.
        positives: unit vectors ``[B, d]``; row ``k`` is the positive of anchor ``k``.
        false_negatives: bool ``[B, B]``; entry ``(k, m)``, ``k != m``, true where
            ``positives[m]`` must not count as a negative of ``anchors[k]`` (nor
            ``anchors[k]`` as one of ``positives[m]``).
        temperature: ``tau``.

    Returns:
        The scalar loss.
    """
    logits = anchors @ positives.T / temperature
    logits = logits.masked_fill(false_negatives, float("-inf"))
    target = torch.arange(len(anchors), device=anchors.device)
    return 0.5 * (
        torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)
    )


def _layer_stack(model: torch.nn.Module) -> Optional[torch.nn.ModuleList]:
    """The model's list of transformer blocks: its ModuleList holding the most weights."""
    best, best_size = None, 0
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module):
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = module, size
    return best


def trainable_parameters(model: torch.nn.Module, layers: Optional[int]) -> list[torch.nn.Parameter]:
    """The weights :func:`fine_tune` updates: the top ``layers`` blocks, or all.

    Models without a recognisable block list train every weight.
    """
    stack = _layer_stack(model)
    if layers is None or stack is None or layers >= len(stack):
        return [p for p in model.parameters()]
    return [p for block in list(stack)[len(stack) - layers :] for p in block.parameters()]


def _sample_positives(neighbors: sp.csr_matrix, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One neighbor per anchor, drawn with probability proportional to its weight."""
    draws = rng.random(len(anchors))
    positives = np.empty(len(anchors), np.int64)
    for k, (item, u) in enumerate(zip(anchors, draws)):
        start, end = neighbors.indptr[item], neighbors.indptr[item + 1]
        cumulative = np.cumsum(neighbors.data[start:end], dtype=np.float64)
        pick = min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), end - start - 1)
        positives[k] = neighbors.indices[start + pick]
    return positives


def _false_negatives(anchors: np.ndarray, positives: np.ndarray, device: torch.device) -> torch.Tensor:
    same_item = (positives[None, :] == positives[:, None]) | (positives[None, :] == anchors[:, None])
    np.fill_diagonal(same_item, False)
    return torch.as_tensor(same_item, device=device)


def fine_tune(
    encoder: TextEncoder,
    graph: Graph,
    user_items: sp.csr_matrix,
    config: FineTuneConfig = FineTuneConfig(),
    *,
    template: Optional[str] = None,
    show_progress: bool = False,
    callback: Optional[Callback] = None,
) -> FineTuneReport:
    """Fine-tune ``encoder`` in place so co-interacted items embed close together.

    Runs on ``encoder.device``; seeded by ``config.seed`` (the caller's global torch
    RNG state is left untouched). Afterwards the encoder is in eval mode and its
    fingerprint is refreshed, so cached vectors of the old weights are not reused;
    ``encoder.prefix`` holds the frozen blocks' states (``None`` when every block
    trained), which :meth:`TextEncoder.embed` reuses; set it to ``None`` to free them.
    Save the result with :meth:`TextEncoder.save`.

    Args:
        encoder: the encoder to train.
        graph: supplies the item texts.
        user_items: users x items CSR of the interactions to learn from (train only).
        config: the settings.
        template: item text template (see :class:`~training.text.ItemTextTemplate`).
        show_progress: tqdm bar over the steps, with the loss.
        callback: ``callback(step, elapsed_seconds, loss)`` after every step.

    Returns:
        A :class:`FineTuneReport`.

    Raises:
        TypeError: ``user_items`` is not scipy sparse.
        ValueError: ``user_items`` does not match ``graph``, or yields no co-interaction pair.
        ModelFitError: the loss became NaN or infinite.
    """
    started = time.perf_counter()
    matrix = as_user_items(user_items, num_items=graph.num_items, num_users=graph.num_users)
    texts = item_texts(graph, template)
    neighbors = co_interaction_neighbors(matrix, top=config.neighbors)
    # Items without text (no columns, all empty) are neither anchors nor positives.
    has_text = sp.diags(np.array([bool(text.strip()) for text in texts], dtype=neighbors.dtype))
    neighbors = sp.csr_matrix(has_text @ neighbors @ has_text)
    neighbors.eliminate_zeros()
    anchor_pool = np.flatnonzero(np.diff(neighbors.indptr) > 0)
    if len(anchor_pool) < 2:
        raise ValueError(
            f"user_items yields co-interaction neighbors for {len(anchor_pool)} item(s); fine-tuning needs "
            "users with at least two items"
        )
    degree = np.bincount(matrix.indices, minlength=graph.num_items)[anchor_pool].astype(np.float64)
    weights = degree**config.anchor_power
    anchor_p = weights / weights.sum()
    batch = min(config.batch_size, len(anchor_pool))

    model = encoder.model
    trained = trainable_parameters(model, config.layers)
    saved_flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(round(config.warmup_fraction * config.steps)))

    rng = np.random.default_rng(config.seed)
    plan = []
    for _ in range(config.steps):
        anchors = rng.choice(anchor_pool, size=batch, replace=False, p=anchor_p)
        plan.append((anchors, _sample_positives(neighbors, anchors, rng)))
    uses = np.zeros(graph.num_items, np.int64)
    for anchors, positives in plan:
        np.add.at(uses, np.unique(np.concatenate([anchors, positives])), 1)
    max_length = encoder.max_length if config.max_length is None else config.max_length
    encoder.prefix = None
    blocks = encoder.num_blocks
    if config.steps and config.layers is not None and 1 <= config.layers < blocks and encoder.splittable:
        encoder.prefix = PrefixCache(encoder, blocks - config.layers, max_length=max_length)
        # The most-drawn texts first, in one length-sorted pass, as many as surely fit the budget.
        fits = encoder.prefix.budget_bytes // (max_length * encoder.dim * 4)
        drawn = np.flatnonzero(uses)
        first = drawn[np.argsort(-uses[drawn], kind="stable")][:fits]
        encoder.prefix.states([texts[i] for i in first])

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    devices = [encoder.device] if encoder.device.type == "cuda" else []
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.seed)
            model.train()
            bar = progress_bar(range(config.steps), desc="text fine-tune", unit="step", disable=not show_progress)
            for step in bar:
                anchors, positives = plan[step]
                items, slots = np.unique(np.concatenate([anchors, positives]), return_inverse=True)
                if encoder.prefix is None:
                    vectors = encoder.encode([texts[i] for i in items], max_length=max_length)
                else:  # frozen blocks from the cache (texts drawn again later are kept)
                    states = encoder.prefix.states([texts[i] for i in items], keep=uses[items] > 1)
                    vectors = encoder.encode_from(states, encoder.prefix.split)
                slots = torch.as_tensor(slots, device=vectors.device)
                loss = info_nce(
                    vectors[slots[:batch]],
                    vectors[slots[batch:]],
                    _false_negatives(anchors, positives, vectors.device),
                    config.temperature,
                )
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise ModelFitError(
                        f"fine-tuning loss is {value} at step {step} (lr={config.lr}, "
                        f"temperature={config.temperature}); lower the learning rate"
                    )
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, max_norm=1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(value)
                bar.set_postfix(loss=f"{value:.3f}")
                if callback is not None:
                    callback(step, time.perf_counter() - started, value)
    finally:
        model.eval()
        for p, flag in zip(model.parameters(), saved_flags):
            p.requires_grad_(flag)
        fingerprint = encoder.refresh_fingerprint()
    return FineTuneReport(
        steps=len(losses),
        losses=tuple(losses),
        seconds=time.perf_counter() - started,
        pairs=int(neighbors.nnz),
        anchors=int(len(anchor_pool)),
        trained_parameters=int(sum(p.numel() for p in trained)),
        fingerprint=fingerprint,
    )
