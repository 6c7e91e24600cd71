"""RecBole atomic files: typed headers (``name:type``) and sibling discovery.

RecBole stores one data set as ``<stem>.inter``, ``.item``, ``.user``, ``.kg``
and ``.link``, tab-separated, each with a header whose fields carry a type:
``token`` (one categorical value), ``token_seq`` (space-separated values),
``float`` and ``float_seq``. The delimited reader reads the rows; this module
knows the header convention and the file family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["RECBOLE_TYPES", "RECBOLE_SUFFIXES", "parse_typed_header", "recbole_siblings"]

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
RECBOLE_SUFFIXES = {"items": ".item", "users": ".user", "kg": ".kg", "link": ".link"}


def parse_typed_header(fields: Sequence[str]) -> tuple[list[str], dict[str, str]] | None:
    """Split ``name:type`` header fields into names and declared types.

    Returns:
        ``(names, {name: type})`` when every field is ``name:type`` with a RecBole
        type, else ``None`` (an ordinary header).
    """
    names, types = [], {}
    for raw in fields:
        name, sep, kind = raw.strip().rpartition(":")
        if not sep or not name or kind not in RECBOLE_TYPES:
            return None
        names.append(name)
        types[name] = kind
    return (names, types) if names else None


def recbole_siblings(inter_path: str | Path) -> dict[str, Path]:
    """The side files next to a RecBole ``.inter`` file that exist.

    Args:
        inter_path: e.g. ``data/ml-100k/ml-100k.inter``.

    Returns:
        ``{"items": ..., "users": ..., "kg": ..., "link": ...}`` for the siblings
        with the same stem that are present.
    """
    inter_path = Path(inter_path)
    found = {}
    for role, suffix in RECBOLE_SUFFIXES.items():
        candidate = inter_path.with_suffix(suffix)
        if candidate.is_file():
            found[role] = candidate
    return found
