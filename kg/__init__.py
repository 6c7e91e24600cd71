"""Reading and validating logs and side tables, id maps, splits, and the graph artifact.

The names below are imported from their modules on first use (PEP 562), so that
``import kg.config`` (what a verb's ``--help`` needs) does not load pandas, pyarrow
and scipy.
"""

from __future__ import annotations

from kg.lazy import lazy_attributes

_LAZY = {
    "ArtifactError": "kg.artifact",
    "BuildConfig": "kg.config",
    "ENTITY": "kg.graph",
    "Graph": "kg.graph",
    "ITEM": "kg.graph",
    "InputError": "kg.errors",
    "Rejections": "kg.errors",
    "SPLIT_CODES": "kg.graph",
    "TableSource": "kg.readers",
    "USER": "kg.graph",
    "build_graph": "kg.build",
    "detect_format": "kg.readers",
    "format_summary": "kg.summary",
    "load_graph": "kg.graph_io",
    "open_delimited": "kg.readers",
    "open_jsonl": "kg.readers",
    "open_lightgcn": "kg.readers",
    "open_parquet": "kg.readers",
    "open_table": "kg.readers",
    "summarize": "kg.summary",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
