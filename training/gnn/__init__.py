"""Graph propagation learners: text-initialised LightGCN and a relation-aware GAT.

Both propagate over users, items and entities (attributes, KG) and optionally
social edges, start items from projected text embeddings plus an ID residual,
train with BPR and early-stop on validation NDCG@20. See :class:`LightGCN`.
"""

from training.gnn.gat import GAT
from training.gnn.lightgcn import LightGCN

__all__ = ["GAT", "LightGCN"]
