"""Reading and validating logs and side tables, id maps, splits, and the graph artifact."""

from kg.artifact import ArtifactError
from kg.graph import ENTITY, ITEM, SPLIT_CODES, USER, Graph, load_graph

__all__ = ["ArtifactError", "ENTITY", "Graph", "ITEM", "SPLIT_CODES", "USER", "load_graph"]
