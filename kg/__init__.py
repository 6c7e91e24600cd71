"""Reading and validating logs and side tables, id maps, splits, and the graph artifact."""

from kg.artifact import ArtifactError
from kg.build import build_graph
from kg.config import BuildConfig
from kg.errors import InputError, Rejections
from kg.graph import ENTITY, ITEM, SPLIT_CODES, USER, Graph, load_graph
from kg.readers import (
    TableSource,
    detect_format,
    open_delimited,
    open_jsonl,
    open_lightgcn,
    open_parquet,
    open_table,
)
from kg.summary import format_summary, summarize

__all__ = [
    "ArtifactError",
    "BuildConfig",
    "ENTITY",
    "Graph",
    "ITEM",
    "InputError",
    "Rejections",
    "SPLIT_CODES",
    "TableSource",
    "USER",
    "build_graph",
    "detect_format",
    "format_summary",
    "load_graph",
    "open_delimited",
    "open_jsonl",
    "open_lightgcn",
    "open_parquet",
    "open_table",
    "summarize",
]
