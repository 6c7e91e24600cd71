"""Row scorers for the hybrid ranker's tests on the structured graph.

Item co-occurrence (collaborative), title bag-of-words similarity to the user's
history (content) and MostPop: complementary on the structured graph (the titles
carry the taste clusters' topic words), so a learned fusion must beat each.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from eval import MostPop


class Cooccurrence:
    """Scores = the user's items times the item-item co-occurrence counts."""

    def __init__(self, user_items: sp.csr_matrix) -> None:
        self.binary = (user_items > 0).astype(np.float32).tocsr()
        together = (self.binary.T @ self.binary).toarray()
        np.fill_diagonal(together, 0.0)
        self.together = together

    def __call__(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.binary[users] @ self.together, dtype=np.float32))


class TitleSimilarity:
    """Cosine of each item's title bag-of-words with the user's summed history titles."""

    def __init__(self, user_items: sp.csr_matrix, vectors: np.ndarray) -> None:
        self.binary = (user_items > 0).astype(np.float32).tocsr()
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def __call__(self, users: np.ndarray) -> torch.Tensor:
        profile = self.binary[users] @ self.vectors
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        return torch.from_numpy((profile @ self.vectors.T).astype(np.float32))


def title_vectors(graph) -> np.ndarray:
    words = [title.split() for title in graph.items["title"].astype(str)]
    vocabulary = sorted({w for title in words for w in title if not w.isdigit()})
    index = {w: j for j, w in enumerate(vocabulary)}
    vectors = np.zeros((graph.num_items, len(vocabulary)), dtype=np.float32)
    for i, title in enumerate(words):
        for w in title:
            if w in index:
                vectors[i, index[w]] = 1.0
    return vectors


def sources(history: sp.csr_matrix, vectors: np.ndarray) -> dict:
    return {
        "cooc": Cooccurrence(history),
        "title": TitleSimilarity(history, vectors),
        "pop": MostPop().fit(history),
    }
