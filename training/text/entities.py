"""Text vectors of knowledge-graph entities, at a cost that follows the readable ones.

Encoding every entity's text (:func:`~training.text.entity_texts`) costs one encoder
pass per entity; on ml-100k's Freebase KG that is 34,001 passes, almost all of them
for entities whose name is an opaque id (``m.0bln8``) and whose only text is a list
of the films they link to. Such an entity is described as well, and for free, by the
mean of the vectors of the items it links to. So:

* an entity with a readable name (``Tom Hanks``, ``genre: Comedy``) is encoded from
  its name and relation context;
* an entity with an opaque or empty name that links to items gets the L2-normalised
  mean of those items' vectors (a sparse product);
* any other entity gets an all-NaN row ("no text"; the GNN gives it a free vector).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kg.graph import ENTITY, ITEM, Graph
from training.text.encoder import TextEncoder
from training.text.templates import entity_texts, opaque_entities

__all__ = ["entity_item_links", "entity_vectors"]


def entity_item_links(graph: Graph) -> sp.csr_matrix:
    """Binary ``[num_entities, num_items]`` CSR: entity ``e`` and item ``i`` share a triple (either direction)."""
    t = graph.triples
    head, tail = t["head"].to_numpy(np.int64), t["tail"].to_numpy(np.int64)
    head_type, tail_type = t["head_type"].to_numpy(), t["tail_type"].to_numpy()
    forward = (head_type == ITEM) & (tail_type == ENTITY)
    backward = (head_type == ENTITY) & (tail_type == ITEM)
    rows = np.concatenate([tail[forward], head[backward]])
    cols = np.concatenate([head[forward], tail[backward]])
    links = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(graph.num_entities, graph.num_items), dtype=np.float32
    )
    links.sum_duplicates()
    links.data[:] = 1.0
    return links


def entity_vectors(
    graph: Graph, encoder: TextEncoder, item_vectors: np.ndarray, *, show_progress: bool = False
) -> tuple[np.ndarray, dict[str, int]]:
    """One text vector per entity (module docstring), and how each was obtained.

    Args:
        graph: entities, their names and triples.
        encoder: encodes the readable entities' texts.
        item_vectors: ``[num_items, d]`` item text vectors (rows of items without
            text are zero and do not count towards a mean).

    Returns:
        ``(vectors, counts)``: float32 ``[num_entities, d]`` (all-NaN rows: no text)
        and ``{"encoded": .., "item_mean": .., "none": ..}``.

    Shapes:
        ``item_vectors``: ``[num_items, d]``.
    """
    item_vectors = np.asarray(item_vectors, dtype=np.float32)
    dim = item_vectors.shape[1]
    vectors = np.full((graph.num_entities, dim), np.nan, np.float32)
    if not graph.num_entities:
        return vectors, {"encoded": 0, "item_mean": 0, "none": 0}
    opaque = opaque_entities(graph)
    readable = np.flatnonzero(~opaque)
    if len(readable):
        texts = entity_texts(graph)
        vectors[readable] = encoder.embed([texts[e] for e in readable], show_progress=show_progress)
    has_text = np.linalg.norm(item_vectors, axis=1) > 0
    links = entity_item_links(graph) @ sp.diags(has_text.astype(np.float32))
    summed = np.asarray(links @ item_vectors, dtype=np.float32)
    norms = np.linalg.norm(summed, axis=1)
    by_mean = opaque & (norms > 0)
    vectors[by_mean] = summed[by_mean] / norms[by_mean, None]
    counts = {"encoded": int(len(readable)), "item_mean": int(by_mean.sum())}
    counts["none"] = int(graph.num_entities - counts["encoded"] - counts["item_mean"])
    return vectors, counts
