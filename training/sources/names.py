"""The sources the hybrid ranker fuses, by name: the one place a source name is written.

:class:`Source` owns every source's name, its display label, and :data:`EMBEDDING_PRECEDENCE`,
whose vectors stand for the model's items. It imports nothing from the project, so
every learner can name itself with it (``name = Source.ALS``) without import cycles.

A member *is* its plain string: ``Source.ALS == "als"``, ``hash(Source.ALS) ==
hash("als")``, ``f"{Source.ALS}"``, ``str(Source.ALS)`` and ``repr(Source.ALS)`` are
those of ``"als"``, so members work unchanged as dict keys (looked up with plain strings
read back from a manifest), in JSON, safetensors metadata, folder names and error
messages, and every saved artifact loads as before. (PyYAML's ``safe_dump`` refuses
``str`` subclasses: dump ``member.value`` there.)

Not source names: ``"hybrid"`` (the ranker's fusion, :data:`training.ranker.evaluation.HYBRID`),
the GNN's learner kinds ``"lightgcn"`` and ``"gat"`` (the classes' ``name``), the pipeline's
stage names and the GNN's ``init="text"``.
"""

from __future__ import annotations

import enum

__all__ = ["EMBEDDING_PRECEDENCE", "Source"]


class Source(str, enum.Enum):
    """A source's name (the member's value, a plain string) and its display label.

    Example::

        >>> Source.GRAPHFILTER == "graphfilter", Source("ease").label
        (True, 'EASE')
    """

    label: str

    def __new__(cls, value: str, label: str) -> Source:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    TEXT = "text", "text similarity"
    ALS = "als", "ALS"
    ITEMKNN = "itemknn", "item-KNN"
    EASE = "ease", "EASE"
    GRAPHFILTER = "graphfilter", "graph filter"
    GNN = "gnn", "GNN"
    POP = "pop", "MostPop"
    """``eval.MostPop``: the one source that is a callable baseline, not a saved learner (refitted on load)."""

    # A member formats, prints and reprs as its plain string (the Enum defaults say "Source.ALS").
    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__

    @classmethod
    def label_of(cls, name: str) -> str:
        """A source's label, or ``name`` itself for what is not a source (the hybrid, an ablation row)."""
        member = cls._value2member_map_.get(name)
        return name if member is None else member.label


EMBEDDING_PRECEDENCE = (Source.GNN, Source.ALS, Source.TEXT)
"""Whose vectors stand for the model's items (similarity, diversity, export): the GNN's, else ALS's, else text."""
