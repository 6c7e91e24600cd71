"""Reading and validating logs and side tables, id maps, splits, and the graph artifact.

The names below are imported from their modules on first use (PEP 562), so that
``import kg.config`` (what a verb's ``--help`` needs) does not load pandas, pyarrow
and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "load_graph": "kg.graph",
    "open_delimited": "kg.readers",
    "open_jsonl": "kg.readers",
    "open_lightgcn": "kg.readers",
    "open_parquet": "kg.readers",
    "open_table": "kg.readers",
    "summarize": "kg.summary",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'kg' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
