"""External string ids to contiguous internal indices, batch by batch.

Internal indices are deterministic and independent of row order: nodes of a
kind are sorted by external id, in numeric order when every id of that kind is
an integer and in string (code point) order otherwise, the rule docs/PROTOCOL.md
uses for its tail tie break. Ids that are equal as integers but spelled
differently (``"7"``, ``"007"``) stay distinct and are ordered by spelling.

:class:`IdEncoder` collects batches of ids as compact dictionary arrays and
assigns final indices once every batch is in (:meth:`IdEncoder.finish`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["IdEncoder", "external_order"]

_INTEGER = r"^[+-]?\d{1,18}$"


def external_order(ids: pa.Array) -> np.ndarray:
    """Permutation sorting ``ids`` by the rule in the module docstring.

    Shapes:
        ``ids``: ``[n]`` strings -> ``[n]`` int64 positions, smallest first.
    """
    if len(ids) == 0:
        return np.empty(0, dtype=np.int64)
    if pc.all(pc.match_substring_regex(ids, _INTEGER)).as_py():
        # Arrow's cast takes no leading "+": "+4" is the number 4, spelled its own way.
        numbers = pc.cast(pc.replace_substring_regex(ids, r"^\+", ""), pa.int64())
        table = pa.table({"number": numbers, "spelling": ids})
        order = pc.sort_indices(table, sort_keys=[("number", "ascending"), ("spelling", "ascending")])
    else:
        order = pc.sort_indices(ids)
    return order.to_numpy().astype(np.int64)


class IdEncoder:
    """Dictionary of one node kind's external ids, built from batches.

    :meth:`add` keeps each batch as a compact Arrow dictionary array (int32
    codes into the batch's own distinct ids); :meth:`finish` unifies the batch
    dictionaries in one pass (``ChunkedArray.unify_dictionaries``, a single
    hash table over the distinct ids of each batch) and sorts the vocabulary;
    :meth:`codes` then gives final indices. Nothing is re-hashed per batch.

    Args:
        kind: ``"user"``, ``"item"``, ... for messages.
    """

    _TYPE = pa.dictionary(pa.int32(), pa.string())

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._chunks: list[pa.DictionaryArray | None] = []
        self._vocab: pa.Array | None = None
        self._rank: np.ndarray | None = None

    def __len__(self) -> int:
        if self._vocab is None:
            raise RuntimeError(f"call finish() before counting the {self.kind} ids")
        return len(self._vocab)

    @property
    def finished(self) -> bool:
        return self._rank is not None

    @property
    def has_ids(self) -> bool:
        """Whether any id is registered."""
        if self._vocab is not None:
            return len(self._vocab) > 0
        return any(chunk is not None and len(chunk.dictionary) for chunk in self._chunks)

    def add(self, ids: pa.Array, keep: np.ndarray | None = None) -> int:
        """Register a batch of ids; returns a handle for :meth:`codes`.

        Args:
            ids: string or dictionary(string) array.
            keep: rows to register (refused rows are left out and add no id).
        """
        if self.finished:
            raise RuntimeError(f"{self.kind} ids are already finished; use lookup()")
        if not pa.types.is_dictionary(ids.type):
            ids = pc.dictionary_encode(ids)
        null = ids.indices.is_null().to_numpy(zero_copy_only=False)
        if null.any():
            # A null id has no code: its row must have been refused (left out of ``keep``).
            if keep is None or (keep & null).any():
                raise ValueError(f"a null {self.kind} id in a kept row; refuse rows without an id before add()")
        indices = pc.fill_null(ids.indices, 0).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        if keep is not None and not keep.all():
            indices = indices[keep]
        dictionary = ids.dictionary
        if not pa.types.is_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        # Only ids that a kept row uses enter the vocabulary (a batch dictionary
        # may hold values of refused rows, or of other batches of a row group).
        used = np.bincount(indices, minlength=len(dictionary)) > 0 if len(indices) else np.zeros(len(dictionary), bool)
        if not used.all():
            position = (np.cumsum(used) - 1).astype(np.int32)
            dictionary = dictionary.filter(pa.array(used))
            indices = position[indices]
        chunk = pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32, copy=False)), dictionary)
        self._chunks.append(chunk)
        return len(self._chunks) - 1

    def finish(self) -> None:
        """Unify the batches and sort the vocabulary into final indices."""
        if self.finished:
            return
        if self._chunks:
            unified = pa.chunked_array(self._chunks, type=self._TYPE).unify_dictionaries()
            self._chunks = list(unified.chunks)
            vocab = self._chunks[0].dictionary if self._chunks else pa.array([], pa.string())
        else:
            vocab = pa.array([], pa.string())
        order = external_order(vocab)
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        self._vocab = vocab.take(pa.array(order))
        self._rank = rank

    def codes(self, handles: list[int] | int, *, release: bool = True) -> np.ndarray:
        """Final indices (int32) of the rows of the batches ``handles``, in order.

        Args:
            handles: what :meth:`add` returned.
            release: drop the batches afterwards (each can be read once).
        """
        if not self.finished:
            raise RuntimeError(f"call finish() before reading {self.kind} codes")
        handles = [handles] if isinstance(handles, int) else list(handles)
        parts = []
        for handle in handles:
            chunk = self._chunks[handle]
            if chunk is None:
                raise RuntimeError(f"{self.kind} batch {handle} was already read")
            parts.append(self._rank[chunk.indices.to_numpy(zero_copy_only=False)])
            if release:
                self._chunks[handle] = None
        return np.concatenate(parts) if parts else np.empty(0, np.int32)

    @property
    def ids(self) -> pa.Array:
        """External ids by final index (after :meth:`finish`)."""
        if not self.finished:
            raise RuntimeError(f"call finish() before reading the {self.kind} ids")
        return self._vocab

    def known(self, ids: pa.Array) -> np.ndarray:
        """Mask of ``ids`` already registered (before or after :meth:`finish`).

        Before :meth:`finish` each batch's dictionary is searched in turn (one
        hash set per batch): meant for a side table's ids, not a whole log.
        """
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary_decode()
        ids = ids.cast(pa.string())
        if self.finished:
            return pc.fill_null(pc.is_in(ids, value_set=self._vocab), False).to_numpy(zero_copy_only=False)
        found = np.zeros(len(ids), dtype=bool)
        for chunk in self._chunks:
            if chunk is not None and not found.all():
                found |= pc.fill_null(pc.is_in(ids, value_set=chunk.dictionary), False).to_numpy(zero_copy_only=False)
        return found

    def lookup(self, ids: pa.Array) -> np.ndarray:
        """Final indices of ``ids`` (int64, -1 where the id is unknown); after :meth:`finish`."""
        if not self.finished:
            raise RuntimeError(f"call finish() before looking up {self.kind} ids")
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary_decode()
        found = pc.index_in(ids.cast(pa.string()), value_set=self._vocab)
        return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
