"""The graph artifact: users, items, entities, interactions, typed triples and splits.

A :class:`Graph` is what ``python -m graphrec.build`` produces and every learner,
the evaluator and the serving layer consume. It holds compact integer arrays
(internal indices are contiguous, ``0..num_x - 1``) plus the external id of every
node, so outputs can always be translated back to the user's own ids.

Tables (pandas DataFrames; Parquet files in the artifact):

``interactions`` one row per distinct (user, item) pair
    ``user`` int32, ``item`` int32, ``weight`` float32 (aggregated event
    weight), ``count`` int32 (raw events collapsed into the pair),
    ``timestamp`` float64 (latest event, unix seconds; NaN when the log has
    none), ``split`` int8 (:data:`SPLIT_CODES`: 0 train, 1 valid, 2 test).
    "valid" is carved from train; docs/PROTOCOL.md's "train" when evaluating on test
    is ``("train", "valid")``.
``triples`` typed knowledge edges
    ``head`` int32, ``head_type`` int8, ``relation`` int16, ``tail`` int32,
    ``tail_type`` int8, where the node types are :data:`USER`, :data:`ITEM`,
    :data:`ENTITY` and the index is into that type's id array. Item attributes
    (``item -attr-> entity``), KG triples (item-entity, entity-entity,
    item-item) and user attributes (``user -attr-> entity``) all live here.
``social`` user-user edges: ``user`` int32, ``friend`` int32 (as given; the
    CSR view symmetrises).
``items`` / ``users`` side tables, row ``i`` describes node ``i``; first column
    ``item_id`` / ``user_id`` (external id, string), then text and attribute columns.
``entities`` row ``i`` describes entity ``i``: ``entity_id`` (unique external
    key), ``name`` (human-readable text), ``source`` (``"kg"`` or ``"attribute"``).
``relations`` row ``r`` names relation ``r``: ``relation`` (string).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "ENTITY",
    "FORMAT",
    "FORMAT_VERSION",
    "Graph",
    "ITEM",
    "NODE_TYPES",
    "SPLIT_CODES",
    "USER",
]

FORMAT = "graphrec.graph"
FORMAT_VERSION = 1

USER, ITEM, ENTITY = 0, 1, 2
NODE_TYPES = ("user", "item", "entity")
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}

_INTERACTION_DTYPES = {
    "user": np.int32,
    "item": np.int32,
    "weight": np.float32,
    "count": np.int32,
    "timestamp": np.float64,
    "split": np.int8,
}
_TRIPLE_DTYPES = {
    "head": np.int32,
    "head_type": np.int8,
    "relation": np.int16,
    "tail": np.int32,
    "tail_type": np.int8,
}
_SOCIAL_DTYPES = {"user": np.int32, "friend": np.int32}

def _typed_frame(frame: pd.DataFrame | None, dtypes: dict[str, Any]) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame({name: np.empty(0, dtype=dt) for name, dt in dtypes.items()})
    missing = [name for name in dtypes if name not in frame.columns]
    if missing:
        raise ValueError(f"table is missing columns {missing}; expected {list(dtypes)}")
    # copy=False: the arrays are already fresh or owned by the caller's frame; copy-on-write
    # keeps them safe, and a 20M-row build does not hold two copies of its edge arrays.
    return pd.DataFrame(
        {name: np.asarray(frame[name].to_numpy(), dtype=dt) for name, dt in dtypes.items()}, copy=False
    )


@dataclass(eq=False)
class Graph:
    """A user-item-knowledge graph with splits. See the module docstring for the tables.

    Construct through :func:`kg.build_graph` (from logs) or :func:`load_graph`
    (from an artifact); the constructor normalises dtypes and checks indices.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    entities: pd.DataFrame = None  # type: ignore[assignment]
    relations: pd.DataFrame = None  # type: ignore[assignment]
    triples: pd.DataFrame = None  # type: ignore[assignment]
    social: pd.DataFrame = None  # type: ignore[assignment]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = _typed_frame(self.interactions, _INTERACTION_DTYPES)
        self.triples = _typed_frame(self.triples, _TRIPLE_DTYPES)
        self.social = _typed_frame(self.social, _SOCIAL_DTYPES)
        if self.entities is None:
            self.entities = pd.DataFrame(
                {
                    "entity_id": pd.array([], dtype="string"),
                    "name": pd.array([], dtype="string"),
                    "source": pd.array([], dtype="string"),
                }
            )
        if self.relations is None:
            self.relations = pd.DataFrame({"relation": pd.array([], dtype="string")})
        for name, column in (
            ("items", "item_id"),
            ("users", "user_id"),
            ("entities", "entity_id"),
            ("relations", "relation"),
        ):
            frame = getattr(self, name)
            if column not in frame.columns:
                raise ValueError(f"{name} table has no {column!r} column")
            setattr(self, name, frame.reset_index(drop=True))
        self.check()

    @classmethod
    def from_csr(cls, user_items: sp.spmatrix) -> "Graph":
        """A bare graph (no side tables, no KG) from a user x item matrix, all in ``train``.

        The light path for implicit-style use (``learner.fit(user_items)``): user ``u``
        and item ``i`` get the external ids ``str(u)`` / ``str(i)``; each stored entry is
        one interaction whose weight is its value (explicit zeros are kept as weight 0).

        Args:
            user_items: scipy sparse ``[num_users, num_items]`` of non-negative weights.

        Returns:
            A :class:`Graph` whose ``matrix("train", weighted=True)`` equals ``user_items``.

        Raises:
            TypeError: ``user_items`` is not a scipy sparse matrix.
            ValueError: negative or non-finite values.
        """
        if not sp.issparse(user_items):
            raise TypeError(f"user_items must be a scipy sparse matrix (users x items), got {type(user_items).__name__}")
        coo = sp.coo_matrix(user_items)
        coo.sum_duplicates()
        values = coo.data.astype(np.float32)
        if values.size and (not np.isfinite(values).all() or (values < 0).any()):
            raise ValueError("user_items must hold finite, non-negative values")
        order = np.lexsort((coo.col, coo.row))
        n = len(order)
        interactions = pd.DataFrame(
            {
                "user": coo.row[order],
                "item": coo.col[order],
                "weight": values[order],
                "count": np.ones(n, np.int32),
                "timestamp": np.full(n, np.nan),
                "split": np.full(n, SPLIT_CODES["train"], np.int8),
            }
        )
        num_users, num_items = coo.shape
        users = pd.DataFrame({"user_id": pd.array([str(u) for u in range(num_users)], dtype="string")})
        items = pd.DataFrame({"item_id": pd.array([str(i) for i in range(num_items)], dtype="string")})
        return cls(interactions=interactions, items=items, users=users, meta={"source": "csr"})

    # -- sizes and ids -------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def user_ids(self) -> np.ndarray:
        """External user ids (object array of str), indexed by internal user index."""
        return self.users["user_id"].astype(str).to_numpy(dtype=object)

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids (object array of str), indexed by internal item index."""
        return self.items["item_id"].astype(str).to_numpy(dtype=object)

    @property
    def entity_ids(self) -> np.ndarray:
        return self.entities["entity_id"].astype(str).to_numpy(dtype=object)

    @property
    def relation_names(self) -> list[str]:
        return self.relations["relation"].astype(str).tolist()

    @property
    def has_timestamps(self) -> bool:
        return bool(len(self.interactions)) and bool(np.isfinite(self.interactions["timestamp"]).any())

    def counts(self) -> dict[str, int]:
        """Row counts as recorded in the manifest's ``counts``."""
        split = self.interactions["split"].to_numpy()
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": len(self.interactions),
            "train": int((split == SPLIT_CODES["train"]).sum()),
            "valid": int((split == SPLIT_CODES["valid"]).sum()),
            "test": int((split == SPLIT_CODES["test"]).sum()),
            "entities": self.num_entities,
            "relations": self.num_relations,
            "triples": len(self.triples),
            "social": len(self.social),
        }

    def check(self) -> None:
        """Raise ``ValueError`` if any index is out of range or a (user, item) pair repeats."""
        inter = self.interactions
        _check_range("interactions.user", inter["user"].to_numpy(), self.num_users)
        _check_range("interactions.item", inter["item"].to_numpy(), self.num_items)
        bad_split = ~np.isin(inter["split"].to_numpy(), list(SPLIT_CODES.values()))
        if bad_split.any():
            raise ValueError(f"interactions.split has codes outside {SPLIT_CODES}")
        if len(inter):
            key = inter["user"].to_numpy().astype(np.int64) * max(self.num_items, 1) + inter["item"].to_numpy()
            # Sorted input (what build_graph writes) needs no sort; bare np.unique takes numpy 2.4's
            # hash path, ~50 s for 17M keys against 0.3 s for np.sort.
            if not (key[1:] > key[:-1]).all():
                key = np.sort(key)
            if (key[1:] == key[:-1]).any():
                raise ValueError("interactions repeat a (user, item) pair; build_graph deduplicates them")
        sizes = {USER: self.num_users, ITEM: self.num_items, ENTITY: self.num_entities}
        for end in ("head", "tail"):
            types = self.triples[f"{end}_type"].to_numpy()
            idx = self.triples[end].to_numpy()
            for code, size in sizes.items():
                _check_range(f"triples.{end} ({NODE_TYPES[code]})", idx[types == code], size)
            if len(types) and not np.isin(types, list(sizes)).all():
                raise ValueError(f"triples.{end}_type has codes outside {sizes}")
        _check_range("triples.relation", self.triples["relation"].to_numpy(), self.num_relations)
        _check_range("social.user", self.social["user"].to_numpy(), self.num_users)
        _check_range("social.friend", self.social["friend"].to_numpy(), self.num_users)

    # -- matrix views -------------------------------------------------------------------
    def split_mask(self, *splits: str) -> np.ndarray:
        """Boolean mask over ``interactions`` rows in any of the named splits."""
        if not splits:
            raise ValueError("name at least one split: 'train', 'valid' or 'test'")
        unknown = [s for s in splits if s not in SPLIT_CODES]
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r}; expected one of {list(SPLIT_CODES)}")
        codes = [SPLIT_CODES[s] for s in splits]
        return np.isin(self.interactions["split"].to_numpy(), codes)

    def matrix(self, *splits: str, weighted: bool = False) -> sp.csr_matrix:
        """User x item CSR matrix (float32) of the named splits.

        Args:
            *splits: any of ``"train"``, ``"valid"``, ``"test"``; e.g.
                ``graph.matrix("train", "valid")`` is docs/PROTOCOL.md's train when
                evaluating on test.
            weighted: values are the aggregated event weights instead of 1.

        Shapes:
            ``[num_users, num_items]``
        """
        mask = self.split_mask(*splits)
        inter = self.interactions
        values = inter["weight"].to_numpy()[mask] if weighted else np.ones(int(mask.sum()), np.float32)
        matrix = sp.csr_matrix(
            (values.astype(np.float32), (inter["user"].to_numpy()[mask], inter["item"].to_numpy()[mask])),
            shape=(self.num_users, self.num_items),
            dtype=np.float32,
        )
        matrix.sort_indices()
        return matrix

    def timestamp_matrix(self, *splits: str) -> sp.csr_matrix:
        """User x item CSR (float64) of the latest timestamp of each pair (NaN where unknown)."""
        mask = self.split_mask(*splits)
        inter = self.interactions
        matrix = sp.csr_matrix(
            (
                inter["timestamp"].to_numpy()[mask],
                (inter["user"].to_numpy()[mask], inter["item"].to_numpy()[mask]),
            ),
            shape=(self.num_users, self.num_items),
            dtype=np.float64,
        )
        matrix.sort_indices()
        return matrix

    def typed_edges(self, head_type: int, tail_type: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(heads, tails, relations) of triples between two node types.

        With ``symmetric`` a triple stored the other way round (``tail_type -> head_type``)
        is returned flipped, so ``item -> entity`` also collects ``entity -> item``.
        """
        t = self.triples
        ht, tt = t["head_type"].to_numpy(), t["tail_type"].to_numpy()
        fwd = (ht == head_type) & (tt == tail_type)
        heads = [t["head"].to_numpy()[fwd]]
        tails = [t["tail"].to_numpy()[fwd]]
        rels = [t["relation"].to_numpy()[fwd]]
        if symmetric and head_type != tail_type:
            bwd = (ht == tail_type) & (tt == head_type)
            heads.append(t["tail"].to_numpy()[bwd])
            tails.append(t["head"].to_numpy()[bwd])
            rels.append(t["relation"].to_numpy()[bwd])
        return (
            np.concatenate(heads).astype(np.int64),
            np.concatenate(tails).astype(np.int64),
            np.concatenate(rels).astype(np.int64),
        )

    def item_entity_matrix(self, relations: Iterable[str] | None = None) -> sp.csr_matrix:
        """Binary item x entity CSR (float32) of every item-entity triple, either direction.

        Args:
            relations: restrict to these relation names (default: all).

        Shapes:
            ``[num_items, num_entities]``
        """
        return self._binary_matrix(ITEM, ENTITY, self.num_items, self.num_entities, relations)

    def user_entity_matrix(self, relations: Iterable[str] | None = None) -> sp.csr_matrix:
        """Binary user x entity CSR (float32) of user-attribute triples. Shape ``[num_users, num_entities]``."""
        return self._binary_matrix(USER, ENTITY, self.num_users, self.num_entities, relations)

    def _binary_matrix(self, head_type, tail_type, rows, cols, relations) -> sp.csr_matrix:
        heads, tails, rels = self.typed_edges(head_type, tail_type, symmetric=True)
        if relations is not None:
            wanted = set(relations)
            names = self.relation_names
            unknown = wanted - set(names)
            if unknown:
                raise ValueError(f"unknown relations {sorted(unknown)}; the graph has {names}")
            keep = np.isin(rels, [names.index(r) for r in wanted])
            heads, tails = heads[keep], tails[keep]
        matrix = sp.csr_matrix(
            (np.ones(len(heads), np.float32), (heads, tails)), shape=(rows, cols), dtype=np.float32
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def social_matrix(self) -> sp.csr_matrix:
        """Symmetric binary user x user CSR (float32) of social edges. Shape ``[num_users, num_users]``."""
        u = self.social["user"].to_numpy().astype(np.int64)
        f = self.social["friend"].to_numpy().astype(np.int64)
        rows, cols = np.concatenate([u, f]), np.concatenate([f, u])
        keep = rows != cols
        matrix = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
            shape=(self.num_users, self.num_users),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def item_popularity(self, *splits: str) -> np.ndarray:
        """Number of distinct users per item in the named splits (int64, ``[num_items]``)."""
        mask = self.split_mask(*splits)
        return np.bincount(self.interactions["item"].to_numpy()[mask], minlength=self.num_items).astype(np.int64)

    def to_hetero_data(self, splits: tuple[str, ...] = ("train",)):
        """A ``torch_geometric.data.HeteroData`` view (:func:`kg.hetero.to_hetero_data`)."""
        from kg.hetero import to_hetero_data

        return to_hetero_data(self, splits)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
        """Write the graph artifact atomically; returns the manifest (:func:`kg.graph_io.save_graph`)."""
        from kg.graph_io import save_graph

        return save_graph(self, path, overwrite=overwrite)


def _check_range(name: str, values: np.ndarray, size: int) -> None:
    if len(values) and (values.min() < 0 or values.max() >= size):
        raise ValueError(f"{name} has indices outside [0, {size}): min {values.min()}, max {values.max()}")
