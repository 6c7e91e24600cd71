"""The contract every learner in ``training/`` implements.

One abstract base documents ``fit``, ``score``, ``score_new_users``, ``save`` and
``load`` once (as implicit's ``RecommenderBase`` does); ALS, item-KNN, EASE, the
GNNs and the text model implement it, and ``tests/training/contract.py`` runs the
same contract tests against each.

Conventions:

* Hyper-parameters are explicit keyword arguments of ``__init__`` (no ``**kwargs``),
  stored as attributes of the same name; :meth:`Learner.get_config` returns them.
  Learned state is set only in ``fit`` and carries a trailing underscore.
* ``user_items`` is a user x item CSR matrix (rows are users) of the interactions
  to learn from; the learner never looks at other interactions of the graph.
  ``graph`` supplies side information only (text, attributes, KG, social edges).
* ``score`` returns raw scores over the whole catalogue; it does not mask seen
  items (the evaluator and the serving layer do, once).
* Long operations take ``show_progress`` and ``callback(iteration, elapsed, loss)``.
* The implicit-style light path (:mod:`training.sources.implicit_api`) comes with the base:
  ``fit(user_items)`` / ``fit(None, user_items)`` fit on a bare graph made from the
  matrix (every subclass's ``fit`` is wrapped once, in ``__init_subclass__``), and
  ``recommend(userid, user_items, N)`` / ``similar_items(itemid, N)`` return
  implicit's ``(ids, scores)`` arrays.
"""

from __future__ import annotations

import abc
import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import scipy.sparse as sp
import torch

from kg.graph import Graph
from training.sources.implicit_api import ImplicitStyle, implicit_fit

__all__ = [
    "Callback",
    "FactorScores",
    "GraphrecWarning",
    "Learner",
    "ModelFitError",
    "NotFittedError",
    "as_user_index",
    "as_user_items",
    "extends_arguments",
    "load_state",
    "resolve_device",
    "save_state",
    "to_torch_csr",
]

Callback = Callable[[int, float, float], None]
"""``callback(iteration, elapsed_seconds, loss)`` called after each iteration/epoch."""


class FactorScores:
    """A factor model's score rows ``users @ items.T``, kept as factors (CPU float32).

    The hybrid ranker needs a source's full rows only for candidates; for the other
    sources it needs the scores at its candidate pairs and each row's mean and
    variance over the catalogue (the ``{s}.z`` feature). A factor model gives both
    without the ``[B, num_items]`` product: ``mean = u . m`` and ``E[s^2] = u^T G u``
    with the items' mean ``m`` and second-moment matrix ``G = items^T items / num_items``
    (float64, so ``var = E[s^2] - mean^2`` does not cancel).

    Args:
        users: ``[B, d]`` user vectors.
        items: ``[num_items, d]`` item vectors.
        item_mean: ``[d]`` float64 mean of ``items``' rows.
        item_second: ``[d, d]`` float64 ``items.T @ items / num_items``.
    """

    def __init__(
        self, users: torch.Tensor, items: torch.Tensor, item_mean: torch.Tensor, item_second: torch.Tensor
    ) -> None:
        self.users, self.items = users, items
        self.item_mean, self.item_second = item_mean, item_second

    @staticmethod
    def item_moments(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(items, item_mean, item_second)`` of an item factor matrix, on the CPU."""
        items = items.detach().to("cpu", torch.float32).contiguous()
        wide = items.double()
        return items, wide.mean(dim=0), wide.T @ wide / max(len(items), 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.users.shape[0], self.items.shape[0])

    def dense(self) -> torch.Tensor:
        """The full rows, float32 ``[B, num_items]``."""
        return self.users @ self.items.T

    def at(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(rows[p], items[p])``, float32 ``[P]``."""
        products = self.items.index_select(0, items)  # index_select + in place: 3-4x faster than [] gathers
        return products.mul_(self.users.index_select(0, rows)).sum(dim=1)

    def var_mean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Population variance and mean of each row over the catalogue, float32 ``[B]`` each."""
        users = self.users.double()
        mean = users @ self.item_mean
        second = ((users @ self.item_second) * users).sum(dim=1)
        return (second - mean.square()).clamp(min=0.0).float(), mean.float()


class ModelFitError(RuntimeError):
    """Fitting diverged (NaN/inf loss or factors) or cannot proceed."""


class NotFittedError(RuntimeError):
    """A method that needs learned state was called before ``fit``/``load``."""


class GraphrecWarning(UserWarning):
    """A silent conversion or fallback happened (e.g. COO input converted to CSR)."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None`` into CUDA when available, else CPU; validate the rest.

    Only entry points call this; learners receive a concrete device.

    Raises:
        ValueError: ``device`` names CUDA but no CUDA device is available, or is unknown.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a device torch knows ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but torch.cuda.is_available() is False")
    return resolved


def to_torch_csr(matrix: sp.csr_matrix, device: torch.device, *, compact: bool = False) -> torch.Tensor:
    """A scipy CSR matrix as a ``torch.sparse_csr`` float32 tensor on ``device``.

    Indices are int64 copies; with ``compact``, int32 where they fit, and the arrays are
    taken as they are where their dtypes already match (a CPU tensor then shares scipy's
    memory instead of copying it: the graph filter's one-thread operators).
    """
    fits = max(matrix.nnz, *matrix.shape) < np.iinfo(np.int32).max
    index = np.int32 if compact and fits else np.int64

    def array(values: np.ndarray, dtype: type) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=dtype) if compact else values.astype(dtype))

    with warnings.catch_warnings():
        # torch flags every CSR tensor as "beta"; the products used here are stable.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            array(matrix.indptr, index), array(matrix.indices, index), array(matrix.data, np.float32),
            size=matrix.shape, device=device, check_invariants=False,
        )  # fmt: skip


def as_user_items(
    user_items: Any, *, num_items: int | None = None, name: str = "user_items", num_users: int | None = None
) -> sp.csr_matrix:
    """Validate a user x item matrix and return it as float32 CSR with sorted indices.

    Non-CSR sparse input is converted with a :class:`GraphrecWarning`.

    Raises:
        TypeError: not a scipy sparse matrix.
        ValueError: wrong number of columns (or of rows, when ``num_users`` is given),
            negative or non-finite values.
    """
    if not sp.issparse(user_items):
        raise TypeError(f"{name} must be a scipy.sparse CSR matrix (users x items), got {type(user_items).__name__}")
    if not sp.isspmatrix_csr(user_items) and not isinstance(user_items, sp.csr_array):
        warnings.warn(
            f"{name} was {user_items.format.upper()}, converted to CSR (a copy of {user_items.nnz} entries); pass CSR to avoid it",
            GraphrecWarning,
            stacklevel=3,
        )
    matrix = sp.csr_matrix(user_items, dtype=np.float32)
    if num_items is not None and matrix.shape[1] != num_items:
        raise ValueError(f"{name} has {matrix.shape[1]} columns, expected one per item ({num_items})")
    if num_users is not None and matrix.shape[0] != num_users:
        raise ValueError(f"{name} has {matrix.shape[0]} rows, expected one per user ({num_users})")
    if matrix.nnz and (not np.isfinite(matrix.data).all() or (matrix.data < 0).any()):
        raise ValueError(f"{name} must hold finite, non-negative values")
    if not matrix.has_sorted_indices:
        matrix.sort_indices()
    return matrix


def sample_at_most(users: np.ndarray, limit: Optional[int], seed: int) -> np.ndarray:
    """``users`` itself when there are at most ``limit`` of them (``None`` or 0: no limit), else a sorted
    seeded sample of ``limit`` of them: the one way the pipeline, the ablation, the tuner and the GNN's
    early stopping cut a large set of users down.
    """
    if not limit or len(users) <= limit:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=int(limit), replace=False))


def as_user_index(users: Any, *, num_users: int, name: str = "users") -> np.ndarray:
    """Validate a batch of internal user indices and return them as a 1-D int64 array.

    Raises:
        TypeError: not integers.
        ValueError: not 1-D, or an index outside ``[0, num_users)``.
    """
    index = np.asarray(users)
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"{name} must be integer user indices, got dtype {index.dtype}")
    if index.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {index.shape}")
    index = index.astype(np.int64, copy=False)
    if index.size and (index.min() < 0 or index.max() >= num_users):
        raise ValueError(f"{name} holds indices outside [0, {num_users}): min {index.min()}, max {index.max()}")
    return index


def extends_arguments(cls: type) -> type:
    """Class decorator for a learner that adds keyword arguments to its base class's.

    ``cls.__init__(self, *, <new or re-defaulted arguments>, **options)`` forwards
    ``options`` to the base's ``__init__``, so the base's arguments are written once.
    Its signature, which :meth:`Learner.get_config`, ``repr``, ``help`` and
    :func:`inspect.signature` read, becomes the base's keyword arguments (with the
    defaults ``cls`` re-declares) followed by ``cls``'s new ones.

    Raises:
        TypeError: ``cls.__init__`` does not end in ``**options``, or takes a
            positional argument besides ``self``.
    """
    own = inspect.signature(cls.__init__)
    self_param, *params = own.parameters.values()
    if not params or params[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        raise TypeError(f"{cls.__name__}.__init__ must end in **options to extend its base class's arguments")
    params = params[:-1]
    if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params):
        raise TypeError(f"{cls.__name__}.__init__ may add keyword-only arguments only")
    declared = {p.name: p for p in params}
    _, *inherited = inspect.signature(super(cls, cls).__init__).parameters.values()
    merged = [declared.pop(p.name, p) for p in inherited]
    cls.__init__.__signature__ = own.replace(parameters=[self_param, *merged, *declared.values()])
    return cls


class Learner(ImplicitStyle, abc.ABC):
    """Base class of every learner.

    Subclasses set :attr:`name` (a short stable identifier used in artifacts and
    reports) and implement :meth:`fit`, :meth:`score` and the state hooks
    :meth:`_state` / :meth:`_set_state`. ``save``/``load`` and the implicit-style
    ``recommend`` / ``similar_items`` are implemented here.
    """

    name: ClassVar[str] = "learner"
    factor_scores: ClassVar[bool] = False
    """Whether :meth:`score` is ``user_factors_[users] @ item_factors_.T`` (then :meth:`score_factors` works)."""
    renamed_arguments: ClassVar[dict[str, str]] = {}
    """Old ``__init__`` argument name -> new name: :meth:`load` reads a config saved before the rename."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None and not getattr(fit, "__isabstractmethod__", False) and not getattr(
            fit, "__implicit_fit__", False
        ):
            # fit(user_items) and fit(None, user_items) build a bare graph from the matrix.
            cls.fit = implicit_fit(fit)

    # -- to implement ---------------------------------------------------------------------
    @abc.abstractmethod
    def fit(
        self,
        graph: Optional[Graph],
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
    ) -> "Learner":
        """Learn from ``user_items`` (users x items CSR, values = weights or 1).

        Args:
            graph: side information (text, attributes, KG, social); its
                ``num_users``/``num_items`` fix the matrix shape. ``None`` (or
                ``fit(user_items)`` alone) uses :meth:`kg.graph.Graph.from_csr`.
            user_items: the interactions to learn from, shape ``[num_users, num_items]``.
            valid_items: held-out interactions for early stopping, same shape;
                learners without early stopping ignore it.
            show_progress: show a tqdm progress bar.
            callback: ``callback(iteration, elapsed_seconds, loss)`` after each iteration.

        Returns:
            ``self``.

        Raises:
            ModelFitError: the fit diverged.
        """

    @abc.abstractmethod
    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for a batch of known users.

        Args:
            users: int64 internal user indices, shape ``[B]``.

        Returns:
            float32 tensor ``[B, num_items]`` on the learner's device; higher is better.
            Seen items are not masked.
        """

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """Scores for users the model was not fitted on, described only by their items.

        Args:
            user_items: CSR ``[B, num_items]`` of the new users' interactions.

        Returns:
            float32 tensor ``[B, num_items]``.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot fold in new users")

    def item_embeddings(self) -> Optional[np.ndarray]:
        """Item vectors ``[num_items, d]`` (float32) where the model has them, else ``None``."""
        return None

    def user_embeddings(self) -> Optional[np.ndarray]:
        """User vectors ``[num_users, d]`` (float32) where the model has them, else ``None``."""
        return None

    def score_factors(self, users: np.ndarray) -> Optional[FactorScores]:
        """:meth:`score`'s rows as :class:`FactorScores` where they are a product of factors, else ``None``.

        A learner whose ``score`` is ``user_factors_[users] @ item_factors_.T`` sets
        :attr:`factor_scores` and gets this for free; the item side's moments are
        computed once per fitted ``item_factors_``.
        """
        if not self.factor_scores:
            return None
        self._check_fitted()
        index = as_user_index(users, num_users=self.user_factors_.shape[0])
        cache = self.__dict__.get("_factor_moments")
        if cache is None or cache[0] is not self.item_factors_:
            cache = (self.item_factors_, FactorScores.item_moments(self.item_factors_))
            self.__dict__["_factor_moments"] = cache
        vectors = self.user_factors_[torch.from_numpy(index).to(self.user_factors_.device)]
        return FactorScores(vectors.detach().to("cpu", torch.float32), *cache[1])

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learned state: a dict of numpy arrays / tensors and JSON-able scalars."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_state` returned (arrays arrive as numpy)."""

    # -- provided -------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    def get_config(self) -> dict[str, Any]:
        """The ``__init__`` keyword arguments of this learner, by name."""
        params = inspect.signature(type(self).__init__).parameters
        return {p: getattr(self, p) for p in params if p != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def save(self, path: str | os.PathLike) -> None:
        """Write config and learned state into directory ``path`` (created if needed).

        Files: ``config.json`` and ``state.safetensors``. No pickle. Atomicity is the
        caller's (the model artifact writes into a temporary directory).
        """
        self._check_fitted()
        config = {k: (str(v) if isinstance(v, torch.device) else v) for k, v in self.get_config().items()}
        save_state(path, kind=self.name, config=config, state=self._state())

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device | None = None) -> "Learner":
        """Rebuild a learner saved by :meth:`save`.

        Args:
            path: the directory written by ``save``.
            device: override the saved ``device`` config (learners that have one).
        """
        kind, config, state = load_state(path)
        if kind != cls.name:
            raise ValueError(f"{path} holds a {kind!r} learner, not {cls.name!r}")
        config = {cls.renamed_arguments.get(key, key): value for key, value in config.items()}
        if device is not None and "device" in config:
            config["device"] = str(device)
        learner = cls(**config)
        learner._set_state(state)
        learner.fitted_ = True
        return learner


def save_state(path: str | os.PathLike, *, kind: str, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``config.json`` (kind, config, scalar state) and ``state.safetensors`` (arrays)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays, scalars = {}, {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            arrays[key] = np.ascontiguousarray(value.detach().cpu().numpy())
        elif isinstance(value, np.ndarray):
            arrays[key] = np.ascontiguousarray(value)
        else:
            scalars[key] = value
    save_file(arrays, str(path / "state.safetensors"))
    with open(path / "config.json", "w", encoding="utf-8") as handle:
        json.dump({"kind": kind, "config": config, "scalars": scalars}, handle, indent=2)


def load_state(path: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Read what :func:`save_state` wrote: ``(kind, config, state)``; arrays as numpy."""
    from safetensors.numpy import load_file

    path = Path(path)
    config_path, state_path = path / "config.json", path / "state.safetensors"
    for required in (config_path, state_path):
        if not required.is_file():
            raise FileNotFoundError(f"{required} is missing; {path} is not a saved learner")
    with open(config_path, encoding="utf-8") as handle:
        stored = json.load(handle)
    state = dict(stored.get("scalars", {}))
    state.update(load_file(str(state_path)))
    return stored["kind"], stored["config"], state
