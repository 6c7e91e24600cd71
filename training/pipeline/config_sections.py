"""The sections of the training configuration (training/pipeline/config.py holds the whole and its loading).

One frozen dataclass per stage; every field has a default and a one-line doc
(``field(metadata={"doc": ...})``). Sections whose fields mirror a learner's ``__init__``
are turned into that learner by :mod:`training.pipeline.learners` (every argument named);
:meth:`Section.learner_kwargs` lists those fields (pipeline-only ones such as ``enabled`` or
``weighted`` left out), and tests/training/test_defaults_agree.py and test_pipeline_learners.py
check their names and defaults against the learners' signatures.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Union

from eval.checks import positive_float, positive_int
from kg.config import coerce_field, settings_from
from training import renames
from training.sources.names import Source

__all__ = [
    "ALSConfig", "EASEConfig", "EvalConfig", "GNNConfig", "GraphFilterConfig", "ItemKNNConfig", "RankerConfig",
    "SECTIONS", "Section", "TextConfig", "TuneConfig",
]  # fmt: skip


def _doc(text: str, default: Any = None) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Section:
    """Base of every section: type-checks fields on construction."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled",)
    RENAMED: ClassVar[dict[str, str]] = {}
    """Old setting name -> new name (:mod:`training.renames`): accepted with a ``FutureWarning``."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce_field(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, section: str) -> "Section":
        clean = settings_from(
            values, (f.name for f in dataclasses.fields(cls)), label=lambda key: f"setting {section}.{key}",
            renamed=cls.RENAMED,
        )  # fmt: skip
        try:
            return cls(**clean)
        except TypeError as exc:
            raise TypeError(f"{section}.{exc}") from None

    def learner_kwargs(self) -> dict[str, Any]:
        """The fields that are keyword arguments of the learner this section builds."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.PIPELINE_FIELDS
        }

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class TextConfig(Section):
    """Text encoder (``training.text.TextLearner``): fine-tuning, item embeddings, the text source."""

    RENAMED: ClassVar[dict[str, str]] = renames.TEXT
    enabled: bool = _doc("run the text stage (fine-tune + embed); off: no text source, GNN starts random", True)
    model: Optional[str] = _doc("encoder: local path or hub id (None: the packaged all-MiniLM-L6-v2)")
    template: Optional[str] = _doc("item text template, e.g. '{title}. {genre}' (None: every text column)")
    max_length: int = _doc("tokens per text when embedding", 32)
    batch_size: int = _doc("texts per encoder call when embedding", 64)
    profile: str = _doc("user profile of the text source: knn (item-item text neighbors) or mean", "knn")
    neighbors: int = _doc("text neighbors per item of the knn profile", 20)
    fine_tune_steps: Union[int, str] = _doc(
        "contrastive fine-tuning steps on co-interaction pairs (0: none; auto: 2 passes over the items with text, "
        "20-200)",
        "auto",
    )
    fine_tune_batch_size: int = _doc("item pairs per fine-tuning step (in-batch negatives)", 32)
    fine_tune_lr: float = _doc("AdamW peak learning rate of fine-tuning", 2e-4)
    fine_tune_temperature: float = _doc("InfoNCE temperature", 0.05)
    fine_tune_layers: Optional[int] = _doc("top transformer layers fine-tuned (None: all)", 2)
    fine_tune_anchor_power: float = _doc("anchor items sampled by popularity ** power", 0.5)
    fine_tune_neighbors: int = _doc("co-interaction neighbors per item that form positive pairs", 50)
    cache_dir: Optional[str] = _doc("embedding cache directory, keyed by content hash (None: no cache)")


@dataclass(frozen=True)
class ALSConfig(Section):
    """implicit's alternating least squares (``training.sources.als.ALS``)."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled", "weighted")
    enabled: bool = _doc("fit ALS and use it as a ranker source", True)
    weighted: bool = _doc("fit on interaction weights (confidence 1 + alpha * weight); off: binary", True)
    factors: int = _doc("latent factors", 128)
    regularization: float = _doc("L2 regularization (strong values matter: 10-300)", 30.0)
    alpha: float = _doc("confidence scale of the weights", 1.0)
    iterations: int = _doc("ALS sweeps", 30)
    num_threads: int = _doc("implicit's CPU threads (0: all cores)", 0)


@dataclass(frozen=True)
class ItemKNNConfig(Section):
    """Item-item neighbors via implicit (``training.sources.knn.ItemKNN``)."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled", "weighted")
    enabled: bool = _doc("fit item-KNN and use it as a ranker source", True)
    weighted: bool = _doc("fit on interaction weights; off: binary", True)
    similarity: str = _doc("cosine, bm25 or tfidf", "bm25")
    neighbors: int = _doc("neighbors kept per item", 400)
    bm25_k1: float = _doc("BM25 k1", 1.2)
    bm25_b: float = _doc("BM25 b", 0.75)
    num_threads: int = _doc("implicit's CPU threads (0: all cores)", 0)


@dataclass(frozen=True)
class EASEConfig(Section):
    """Closed-form linear item-item model (``training.sources.ease.EASE``)."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled", "weighted")
    enabled: bool = _doc("fit EASE and use it as a ranker source (skipped above max_items)", True)
    weighted: bool = _doc("fit on interaction weights; off: binary", False)
    regularization: float = _doc("L2 regularization lambda", 500.0)
    max_items: Union[int, str] = _doc(
        "largest catalogue EASE is fitted on (a dense items x items solve; auto: 15,000 on CPU, 40,000 on CUDA)",
        "auto",
    )


@dataclass(frozen=True)
class GraphFilterConfig(Section):
    """Training-free graph filter (``training.sources.graphfilter.GraphFilter``): GF-CF / BSPM / ChebyCF filters.

    Defaults chosen on validation (``bench/graphfilter.py``; test never seen): one Runge-Kutta
    step of BSPM sharpening (t = 1.5) at alpha 0.3 beat the previous Euler step (t = 0.2) on
    both Gowalla (valid NDCG@20 0.1395 vs 0.1365 at rank 512) and ml-100k (0.2880 vs 0.2849 at
    rank 32); Gowalla's own best (alpha 0.2, t = 2.5: 0.1407) loses on ml-100k. ``rank=auto``
    gives 512 on Gowalla (better than 256 in every family) and 21 on ml-100k.

    ``neighbors=1024`` (used above ``dense_max_items`` only): on gowalla the hybrid ranker's
    validation NDCG@20 with the operator was 0.1955 +- 0.0026 against 0.1931 +- 0.0015 with
    the exact filter (3 seeds; the filter alone 0.1370 against 0.1375 on validation, synth-1m
    0.2018 against 0.2019), and it serves 2-3x the users per second
    (bench/results/graphfilter_neighbors*.md).
    """

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled", "weighted", "max_items")
    enabled: bool = _doc("fit the graph filter and use it as a ranker source (skipped above max_items)", True)
    max_items: int = _doc(
        "largest catalogue the filter is fitted on (above dense_max_items its operator costs items x interactions "
        "to build, or every user's scores that much with neighbors=0; 0: no limit)",
        100_000,
    )
    weighted: bool = _doc("filter interaction weights; off: binary, as the papers", False)
    alpha: float = _doc("weight of the ideal low-pass term (top-rank singular vectors)", 0.3)
    rank: Union[int, str] = _doc(
        "singular vectors of the ideal low-pass term (0: linear filter only; auto: items / 80 within 16-512)", "auto"
    )
    exponent: float = _doc("degree normalisation exponent of D_U^-e R D_I^-e", 0.5)
    sharpen: float = _doc("BSPM sharpening time t: s <- s exp(-t P), P scaled to spectral radius 1 (0: none)", 1.5)
    sharpen_order: int = _doc("Taylor degree of the one sharpening step (1: Euler s - t s P; 4: Runge-Kutta 4)", 4)
    kind: str = _doc("low-pass filter: linear (P, GF-CF/BSPM) or chebyshev (ChebyCF's plateau response)", "linear")
    order: int = _doc("Chebyshev polynomial degree (kind=chebyshev; one pass over R per degree)", 8)
    flatness: float = _doc("ChebyCF's plateau flatness phi (1: the linear response)", 1.5)
    degree_power: float = _doc("ChebyCF's item-degree pre/post normalisation b of the low-pass term (0: none)", 0.0)
    ideal_exponent: Optional[float] = _doc("degree exponent of the ideal term (None: exponent)")
    dense_max_items: int = _doc("largest catalogue whose items x items filter is held densely", 10_000)
    neighbors: int = _doc(
        "above dense_max_items: entries kept per item of the sparse items x items filter (0: exact passes per batch)",
        1024,
    )


@dataclass(frozen=True)
class GNNConfig(Section):
    """Graph propagation over the user-item-knowledge graph (``training.gnn``)."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("enabled", "model", "heads", "relation_dim", "nproc")
    enabled: bool = _doc("fit the GNN and use it as a ranker source", True)
    nproc: int = _doc(
        "processes of the GNN fit: >1 runs torch.distributed DDP under torchrun (gloo on CPU, NCCL with one GPU "
        "each; docs/SCALE.md)", 1,
    )  # fmt: skip
    model: str = _doc("lightgcn or gat (relation-aware attention)", "lightgcn")
    embedding_dim: int = _doc("node embedding width", 64)
    num_layers: int = _doc("propagation layers", 3)
    lr: float = _doc("Adam learning rate (1e-2: the validation pick with the auto schedule's large batches)", 1e-2)
    l2: float = _doc("L2 on the batch's embeddings", 1e-3)
    epochs: Union[int, str] = _doc(
        "maximum epochs (early stopping on validation NDCG@20 picks the best; auto: 120)", "auto"
    )
    batch_size: Union[int, str] = _doc(
        "positive pairs per step (auto: positives / 8, at least 2048: an epoch is 8 full-graph propagations)", "auto"
    )
    num_negatives: Union[int, str] = _doc("sampled negatives per positive (auto: 1)", "auto")
    init: str = _doc("item/entity initialisation: text (projected text embeddings + ID residual) or random", "text")
    use_kg: bool = _doc("propagate over item-entity (attribute and KG) edges", True)
    use_social: bool = _doc("propagate over user-user edges", True)
    user_init: str = _doc("user initialisation: mean_items or learned", "mean_items")
    init_std: float = _doc("std of random/residual initialisation", 0.1)
    text_components: int = _doc(
        "text init: whiten the text vectors onto this many top principal components (0: centre and scale only)", 64
    )
    text_scale: float = _doc("text init: RMS norm of the mapped text vectors", 1.0)
    item_l2: float = _doc(
        "weight of the items' rows in the L2 term (text init: how firmly items stay at their text position; 0.1: "
        "better GNN embeddings and tail, a slightly worse hybrid on ml-100k and gowalla)", 1.0,
    )  # fmt: skip
    patience: Union[int, str] = _doc("validations without improvement before stopping (auto: 4)", "auto")
    eval_every: Union[int, str] = _doc("epochs between validations (auto: 2; at most 3,000 sampled users)", "auto")
    min_gain: Union[float, str] = _doc(
        "relative validation gain that counts as progress for patience (auto: 0.002; best weights kept)", "auto"
    )
    mode: str = _doc("full (sparse full-graph propagation) or sampled (neighbor-sampled mini-batches)", "full")
    num_neighbors: int = _doc("neighbors sampled per node and layer in sampled mode", 10)
    heads: int = _doc("attention heads (gat only)", 1)
    relation_dim: int = _doc("relation embedding width (gat only)", 16)

    def learner_kwargs(self) -> dict[str, Any]:
        kwargs = super().learner_kwargs()
        if self.model == "gat":
            kwargs.update(heads=self.heads, relation_dim=self.relation_dim)
        return kwargs


@dataclass(frozen=True)
class RankerConfig(Section):
    """The learned hybrid ranker (``training.ranker.HybridRanker``)."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = (
        "enabled", "popularity_source", "refit", "ablation", "ablation_users", "ablation_ensemble", "fit_users",
    )  # fmt: skip
    enabled: bool = _doc("fit the hybrid ranker on the validation split", True)
    popularity_source: bool = _doc("add a popularity prior (MostPop) as a candidate source", True)
    refit: bool = _doc("refit every source on train + validation before the final model", True)
    ablation: bool = _doc("add the ablation table (each source, hybrid, hybrid minus each group) to the report", True)
    ablation_users: int = _doc(
        "above this many users the ablation refits and evaluates on a seeded sample of this many (stated)", 5000
    )
    ablation_ensemble: int = _doc(
        "ensemble members of each ablation refit; the full hybrid is refitted so too as the rows' reference "
        "(0: the ranker's own ensemble, no reference row)",
        1,
    )
    fit_users: int = _doc(
        "the ranker learns from at most this many validation users (a seeded sample above it, noted; 0: all)", 5000
    )
    candidates_per_source: int = _doc("top-N of every source that forms the candidates", 50)
    candidate_sources: str = _doc(
        "whose top-N are the candidates when ranking: auto (all but the factor models ALS, GNN and popularity, "
        "which are then scored at the candidates only; the source with the best validation candidate recall "
        "stays), all (every source's), or source names separated by commas; the fit learns from all",
        "auto",
    )
    model: str = _doc("mlp or linear", "mlp")
    hidden: int = _doc("MLP hidden width", 64)
    dropout: float = _doc("MLP dropout", 0.0)
    loss: str = _doc("listwise (softmax over each candidate list) or bpr", "listwise")
    epochs: int = _doc("maximum epochs", 60)
    lr: float = _doc("Adam learning rate", 1e-3)
    weight_decay: float = _doc("Adam weight decay", 1e-4)
    batch_users: int = _doc("users per source call when featurising and scoring", 256)
    train_batch_users: int = _doc("candidate lists per optimisation step", 32)
    valid_fraction: float = _doc("share of fitting users held out for the ranker's early stopping", 0.1)
    patience: int = _doc("epochs without improvement before stopping", 5)
    ensemble: int = _doc("scorers fitted with successive seeds and averaged", 5)
    tail_weight: float = _doc("weight of tail positives in the listwise target (1: none)", 1.0)
    valid_k: int = _doc("cut-off of the ranker's early-stopping NDCG", 20)
    feature_groups: Optional[tuple[str, ...]] = _doc(
        "feature groups (None: the default set; see training.ranker.features)"
    )

    def learner_kwargs(self) -> dict[str, Any]:
        kwargs = super().learner_kwargs()
        if kwargs["feature_groups"] is None:
            del kwargs["feature_groups"]
        return kwargs


@dataclass(frozen=True)
class EvalConfig(Section):
    """Evaluation (docs/PROTOCOL.md) of every source and the hybrid."""

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("valid_users", "test_users")
    k: int = _doc("the cut-off K", 20)
    valid_users: int = _doc(
        "each source's validation row is computed on at most this many users (a seeded sample above it, stated; "
        "0: all)", 5000,
    )  # fmt: skip
    test_users: int = _doc(
        "the test rows (every source, the hybrid, the ablation) are computed on at most this many test users "
        "(a seeded sample above it, stated: full ranking costs users x items; 0: all)", 50_000,
    )  # fmt: skip
    sparse_max_train: int = _doc("users with at most this many train items form the sparse-user row", 5)
    batch_size: int = _doc("users per scorer call", 1024)


@dataclass(frozen=True)
class TuneConfig(Section):
    """Validation-driven tuning of the collaborative sources (``training.pipeline.tune``, Optuna TPE).

    Before a tuned source is fitted, its key settings are searched by NDCG@K on the
    validation split (fitted on train; test never seen); the chosen values and the
    search history go into the manifest's notes (``tune_<source>``).
    """

    PIPELINE_FIELDS: ClassVar[tuple[str, ...]] = ("budget_minutes", "sources", "valid_users", "max_trials")
    budget_minutes: float = _doc(
        "total search time at most, split evenly over the tuned sources that are on (0: off)", 15.0
    )
    sources: tuple[str, ...] = _doc(
        "sources to tune (graphfilter, als, itemknn, ease)",
        (Source.GRAPHFILTER, Source.ALS, Source.ITEMKNN, Source.EASE),
    )
    valid_users: int = _doc("validation users scored per trial (a seeded sample; 0: all)", 2000)
    max_trials: int = _doc(
        "trials per source at most; the search stops at whichever of this and the budget comes first (0: the budget "
        "alone, so trial counts vary with machine speed)",
        16,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_float(self.budget_minutes, "tune.budget_minutes", allow_zero=True, reason=" (0: off)")
        known = (Source.GRAPHFILTER, Source.ALS, Source.ITEMKNN, Source.EASE)
        unknown = [name for name in self.sources if name not in known]
        if unknown:
            raise ValueError(f"tune.sources: no tuner for {unknown}; tunable: {', '.join(known)}")
        positive_int(self.valid_users, "tune.valid_users", minimum=0)
        positive_int(self.max_trials, "tune.max_trials", minimum=0)


SECTIONS: dict[str, type[Section]] = {
    Source.TEXT: TextConfig,
    Source.ALS: ALSConfig,
    Source.ITEMKNN: ItemKNNConfig,
    Source.EASE: EASEConfig,
    Source.GRAPHFILTER: GraphFilterConfig,
    Source.GNN: GNNConfig,
    "ranker": RankerConfig,
    "eval": EvalConfig,
    "tune": TuneConfig,
}
