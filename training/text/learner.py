"""TextLearner: recommend items whose text reads like a user's history.

Every item is embedded from its text (:mod:`training.text.templates`) by a
:class:`~training.text.TextEncoder`, optionally fine-tuned first on the training
interactions (:func:`~training.text.fine_tune`). A user is scored from their history
in one of two ways (``profile``):

``"mean"``
    the user vector is the weighted mean of their history's item vectors,
    L2-normalised; an item's score is its cosine with it. Cheap, and the user
    vectors are what :meth:`TextLearner.user_embeddings` exports.
``"knn"``
    item-KNN on text similarity: each item keeps its ``neighbors`` most similar
    items (cosine), and a user's score for item ``j`` is the weighted sum, over
    history items ``i`` with ``j`` among their neighbors, of ``cos(i, j)``, divided
    by the total history weight.

Content needs no interactions, so cold items (no train interactions) are scored like
any other; that is this learner's job in the hybrid ranker.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import choice, int_or_auto, positive_int
from kg.graph import Graph
from training import renames
from training.base import Callback, GraphrecWarning, Learner, as_user_index, as_user_items
from training.sources.names import Source
from training.sources.neighbors import csr_from_state, csr_state, sparse_times
from training.text.encoder import TextEncoder
from training.text.finetune import (
    AUTO_FINE_TUNE_STEPS,
    FINE_TUNE_ARGUMENTS,
    FineTuneConfig,
    FineTuneReport,
    auto_fine_tune_steps,
    fine_tune,
)
from training.text.similar import text_neighbors
from training.text.templates import ItemTextTemplate, item_texts

__all__ = ["TextLearner"]

_PROFILES = ("mean", "knn")
_ENCODER_DIR = "encoder"


def embed_texts(encoder: TextEncoder, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """Unit vectors of ``texts``; an empty text gets a zero row (it says nothing to encode).

    Shapes:
        returns float32 ``[len(texts), encoder.dim]``.
    """
    texts = list(texts)
    present = [i for i, text in enumerate(texts) if text.strip()]
    vectors = np.zeros((len(texts), encoder.dim), np.float32)
    if present:
        vectors[present] = encoder.embed([texts[i] for i in present], show_progress=show_progress)
    return vectors


class TextLearner(Learner):
    """Content-based recommender over (optionally fine-tuned) text embeddings.

    Args:
        model: encoder weights: a local directory or hub id; ``None`` is the packaged
            all-MiniLM-L6-v2 (:func:`~training.text.default_model_path`).
        template: item text template (``str.format`` over item columns); ``None``
            renders text columns then ``"column: value"`` attributes.
        max_length: tokens per item text.
        batch_size: texts per forward pass when embedding.
        profile: ``"mean"`` or ``"knn"`` (module docstring).
        neighbors: text neighbors per item for ``profile="knn"``.
        fine_tune_steps: contrastive fine-tuning steps before embedding; 0 skips it;
            ``"auto"`` sizes them to the catalogue (:func:`~training.text.finetune.auto_fine_tune_steps`).
        fine_tune_batch_size, fine_tune_lr, fine_tune_temperature, fine_tune_layers,
        fine_tune_anchor_power, fine_tune_neighbors: the :class:`~training.text.FineTuneConfig`
            fields of the same names without the prefix (documented there), with its defaults
            (:data:`~training.text.finetune.FINE_TUNE_ARGUMENTS`).
        cache_dir: on-disk embedding cache; ``None`` caches in memory only.
        seed: seeds fine-tuning (embedding itself is deterministic).
        device: where the encoder runs and :meth:`score` computes.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = Source.TEXT
    renamed_arguments = renames.TEXT

    def __init__(
        self,
        *,
        model: Optional[str] = None,
        template: Optional[str] = None,
        max_length: int = 32,
        batch_size: int = 64,
        profile: str = "knn",
        neighbors: int = 20,
        fine_tune_steps: Union[int, str] = "auto",
        fine_tune_batch_size: int = 32,
        fine_tune_lr: float = 2e-4,
        fine_tune_temperature: float = 0.05,
        fine_tune_layers: Optional[int] = 2,
        fine_tune_anchor_power: float = 0.5,
        fine_tune_neighbors: int = 50,
        cache_dir: Optional[str] = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        choice(profile, "profile", _PROFILES)
        for arg, value, low in (
            ("max_length", max_length, 1),
            ("batch_size", batch_size, 1),
            ("neighbors", neighbors, 1),
            ("seed", seed, 0),
        ):
            positive_int(value, arg, minimum=low)
        if template is not None:
            ItemTextTemplate(template=template)  # fails early on a malformed template
        self.model = None if model is None else str(model)
        self.template = template
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.profile = profile
        self.neighbors = int(neighbors)
        self.fine_tune_steps = int_or_auto(fine_tune_steps, "fine_tune_steps", minimum=0)
        self.fine_tune_batch_size = int(fine_tune_batch_size)
        self.fine_tune_lr = float(fine_tune_lr)
        self.fine_tune_temperature = float(fine_tune_temperature)
        self.fine_tune_layers = None if fine_tune_layers is None else int(fine_tune_layers)
        self.fine_tune_anchor_power = float(fine_tune_anchor_power)
        self.fine_tune_neighbors = int(fine_tune_neighbors)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.seed = int(seed)
        self.device = str(device)
        try:
            self.fine_tune_config()  # validates the fine-tuning settings
        except (TypeError, ValueError) as exc:  # named as the caller wrote them
            raise type(exc)(str(exc).replace("FineTuneConfig.", "fine_tune_")) from None
        self.encoder_: Optional[TextEncoder] = None
        self._encoder_source: Optional[str] = None

    def fine_tune_config(self, num_text_items: Optional[int] = None) -> FineTuneConfig:
        """The :class:`~training.text.FineTuneConfig` that :meth:`fit` uses.

        Args:
            num_text_items: items with text, which ``fine_tune_steps="auto"`` is sized
                to (``None``: the upper bound, for validating the settings).
        """
        steps = self.fine_tune_steps
        if steps == "auto":
            steps = AUTO_FINE_TUNE_STEPS[1] if num_text_items is None else auto_fine_tune_steps(
                num_text_items, self.fine_tune_batch_size
            )
        settings = {name: getattr(self, f"fine_tune_{name}") for name in FINE_TUNE_ARGUMENTS}
        return FineTuneConfig(**{**settings, "steps": steps}, seed=self.seed)

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        graph: Graph,
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
    ) -> "TextLearner":
        """Fine-tune (if ``fine_tune_steps``), embed every item, build the user profiles.

        Args:
            graph: item texts and attributes; fixes the matrix shape.
            user_items: CSR ``[num_users, num_items]`` of weights; the only
                interactions fine-tuning and the profiles see.
            valid_items: ignored (fine-tuning runs a fixed number of steps).
            show_progress: progress bars for fine-tuning and embedding.
            callback: ``callback(step, elapsed_seconds, loss)`` per fine-tuning step.

        Returns:
            ``self``.

        Raises:
            TypeError: ``user_items`` is not scipy sparse.
            ValueError: its shape does not match ``graph``.
            ModelFitError: fine-tuning diverged.
        """
        matrix = as_user_items(user_items, num_items=graph.num_items, num_users=graph.num_users)
        rendering = ItemTextTemplate.for_graph(graph, self.template)
        encoder = TextEncoder(
            self.model,
            max_length=self.max_length,
            batch_size=self.batch_size,
            device=self.device,
            cache_dir=self.cache_dir,
        )
        texts = item_texts(graph, self.template)
        num_text = sum(1 for text in texts if text.strip())
        config = self.fine_tune_config(num_text)
        report: Optional[FineTuneReport] = None
        if config.steps > 0 and num_text < 2:
            # Ids only (a bare matrix, lastfm): no text to learn from; every item vector is zero.
            warnings.warn(
                f"{num_text} of {graph.num_items} items have text; fine-tuning skipped", GraphrecWarning, stacklevel=2
            )
        elif config.steps > 0:
            report = fine_tune(
                encoder,
                graph,
                matrix,
                config,
                template=self.template,
                show_progress=show_progress,
                callback=callback,
            )
        vectors = embed_texts(encoder, texts, show_progress=show_progress)
        encoder.prefix = None  # the frozen blocks' states served the item pass; free them
        self.encoder_ = encoder
        self._encoder_source = None
        self.template_ = rendering
        self.fine_tune_report_ = report
        self._set_items(vectors, matrix)
        self.fitted_ = True
        return self

    def with_history(self, user_items: sp.csr_matrix) -> "TextLearner":
        """A copy that keeps this learner's encoder and item vectors but profiles ``user_items``.

        The training pipeline's refit on train + validation uses it: the encoder was
        fine-tuned on train only, and only the user profiles change.
        """
        self._check_fitted()
        matrix = as_user_items(user_items, num_items=len(self.item_vectors_))
        other = copy.copy(self)
        other._set_items(self.item_vectors_, matrix, knn=getattr(self, "knn_", None))
        return other

    def _set_items(
        self, vectors: np.ndarray, user_items: sp.csr_matrix, *, knn: Optional[sp.csr_matrix] = None
    ) -> None:
        self.item_vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
        self._items = torch.as_tensor(self.item_vectors_, device=self.device)
        self.history_ = user_items
        if self.profile == "mean":
            self.user_vectors_ = self._profiles(user_items)
        else:  # the text neighbors depend on the vectors only: a new history reuses them
            self.knn_ = text_neighbors(self.item_vectors_, self.neighbors) if knn is None else knn

    def _profiles(self, user_items: sp.csr_matrix) -> np.ndarray:
        summed = np.asarray(user_items @ self.item_vectors_, dtype=np.float32)
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return np.divide(summed, norms, out=np.zeros_like(summed), where=norms > 0)

    # -- scoring --------------------------------------------------------------------------
    def _score_history(self, user_items: sp.csr_matrix) -> torch.Tensor:
        if self.profile == "mean":
            profiles = torch.as_tensor(self._profiles(user_items), device=self.device)
            return profiles @ self._items.T
        totals = np.asarray(user_items.sum(axis=1), dtype=np.float32).ravel()
        # Dividing by the history weight keeps scores in [-1, 1] whatever the history length.
        rows = sp.diags(1.0 / np.maximum(totals, 1e-12)) @ user_items
        return sparse_times(sp.csr_matrix(rows, dtype=np.float32), self.knn_).to(self.device)

    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores ``[len(users), num_items]`` (float32, on ``device``); see the module docstring."""
        self._check_fitted()
        users = as_user_index(users, num_users=self.history_.shape[0])
        if self.profile == "mean":
            return torch.as_tensor(self.user_vectors_[users], device=self.device) @ self._items.T
        return self._score_history(self.history_[users])

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """Scores for users described only by their items (profile built from those rows).

        Shapes:
            ``user_items`` ``[B, num_items]`` -> ``[B, num_items]``.
        """
        self._check_fitted()
        return self._score_history(as_user_items(user_items, num_items=len(self.item_vectors_)))

    def item_embeddings(self) -> np.ndarray:
        """The item text vectors ``[num_items, d]`` (unit rows)."""
        self._check_fitted()
        return self.item_vectors_

    def user_embeddings(self) -> Optional[np.ndarray]:
        """The user profile vectors ``[num_users, d]`` with ``profile="mean"``, else ``None``."""
        self._check_fitted()
        return self.user_vectors_ if self.profile == "mean" else None

    # -- new items ------------------------------------------------------------------------
    @property
    def encoder(self) -> TextEncoder:
        """The (fine-tuned) encoder; after :meth:`load` it is read back on first use."""
        self._check_fitted()
        if self.encoder_ is None:
            self.encoder_ = TextEncoder(
                self._encoder_source or self.model,
                max_length=self.max_length,
                batch_size=self.batch_size,
                device=self.device,
                cache_dir=self.cache_dir,
                safetensors_only=self._encoder_source is not None,
            )
        return self.encoder_

    def embed_items(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Vectors of new items from their fields, with the fitted template and encoder.

        Args:
            items: one mapping of column name -> value per item.

        Returns:
            float32 ``[len(items), d]``, comparable with :meth:`item_embeddings`.
        """
        self._check_fitted()
        return embed_texts(self.encoder, [self.template_.render(fields) for fields in items])

    # -- persistence ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "item_vectors": self.item_vectors_,
            **csr_state("history", self.history_),
            "text_columns": list(self.template_.text_columns),
            "attribute_columns": list(self.template_.attribute_columns),
            "fine_tuned": self.fine_tune_report_ is not None or self._encoder_source is not None,
        }
        if self.fine_tune_report_ is not None:
            state["fine_tune_losses"] = np.asarray(self.fine_tune_report_.losses, dtype=np.float32)
            state["fine_tune_seconds"] = self.fine_tune_report_.seconds
        if self.profile == "knn":
            # Saved, not recomputed on load: finding them compares every item with every other
            # (about 5 minutes at 200,000 items on 2 cores, on every load of a model for serving).
            state.update(csr_state("knn", self.knn_))
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        history = csr_from_state("history", state)
        self.template_ = ItemTextTemplate(
            text_columns=tuple(state["text_columns"]),
            attribute_columns=tuple(state["attribute_columns"]),
            template=self.template,
        )
        self.fine_tune_report_ = None
        self._fine_tuned_on_load = bool(state["fine_tuned"])
        # Learners saved before the neighbors were part of the state find them again.
        knn = csr_from_state("knn", state) if self.profile == "knn" and "knn_data" in state else None
        if knn is not None and knn.shape != (len(state["item_vectors"]),) * 2:
            raise ValueError(f"saved text neighbors have shape {knn.shape}, expected one row per item")
        self._set_items(state["item_vectors"], history, knn=knn)

    def save(self, path: str | os.PathLike) -> None:
        """Write config, state and, when fine-tuned, the encoder (``path/encoder``).

        ``path/encoder`` reloads with ``AutoModel``/``AutoTokenizer``.
        """
        super().save(path)
        if self.fine_tune_report_ is not None or self._encoder_source is not None:
            self.encoder.save(Path(path) / _ENCODER_DIR, overwrite=True)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device | None = None) -> "TextLearner":
        """Rebuild a learner saved by :meth:`save` (the encoder is read on first use).

        Raises:
            FileNotFoundError: the learner was fine-tuned but ``path/encoder`` is missing.
        """
        learner = super().load(path, device=device)
        encoder_dir = Path(path) / _ENCODER_DIR
        if learner._fine_tuned_on_load:
            if not (encoder_dir / "config.json").is_file():
                raise FileNotFoundError(f"{encoder_dir} is missing; {path} holds a fine-tuned text learner")
            learner._encoder_source = str(encoder_dir)
        return learner
