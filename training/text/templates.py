"""Texts of items and entities, as the encoder reads them.

An item's text comes from its row of ``graph.items``: the text columns (title,
description) and the attribute columns (genre, year) named by
``graph.meta["item_text_columns"]`` / ``["item_attribute_columns"]``. The same
:class:`ItemTextTemplate` renders a single dict of fields, so a brand-new item is
described exactly as the catalogue was.

An entity's text is its name when the name reads as words, followed by its relation
context ("actor of: Toy Story; Heat"), built from the triples that link it to items.
Knowledge-graph entities whose name is an opaque id (Freebase mids such as
``m.0bln8`` in ml-100k) are described by that context alone.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from eval.checks import positive_int
from kg.graph import ENTITY, ITEM, Graph

__all__ = ["ItemTextTemplate", "entity_texts", "item_texts", "opaque_entities"]

_OPAQUE_NAME = re.compile(r"^(?:[mg]\.[0-9a-z_]+|[0-9]+|Q[0-9]+)$")
_ID_COLUMN = "item_id"


def _format_value(value: Any) -> str:
    """One field as text: missing -> "", sequences joined by ", ", 1995.0 -> "1995"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return ", ".join(part for part in (_format_value(v) for v in value) if part)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return " ".join(str(value).split())


def _template_fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template={template!r} is not a valid format string ({exc})") from None
    fields = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ValueError(f"template={template!r} has a positional field {{{field}}}; name a column, e.g. {{title}}")
        if re.search(r"[.\[\]]", field):
            raise ValueError(f"template={template!r}: field {{{field}}} must be a plain column name (no . or [])")
        fields.append(field)
    return fields


class _Blank(dict):
    """``format_map`` mapping whose absent keys render empty (a new item may lack a field)."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class ItemTextTemplate:
    """How an item's fields become one text.

    Without ``template`` the text is the non-empty text columns joined by ". ",
    then ``"column: value"`` for each non-empty attribute column joined by "; "
    (``"Toy Story. release year: 1995; class: Animation Children's Comedy"``).
    With ``template`` (a ``str.format`` string over column names, e.g.
    ``"{title}. Genres: {genre}"``) that string is filled in, missing values empty.

    Args:
        text_columns: free-text columns, in order.
        attribute_columns: attribute columns, in order.
        template: optional format string; its fields must be column names.

    Raises:
        ValueError: the template is malformed or uses positional fields.
    """

    text_columns: tuple[str, ...] = ()
    attribute_columns: tuple[str, ...] = ()
    template: Optional[str] = None

    def __post_init__(self) -> None:
        for arg in ("text_columns", "attribute_columns"):
            value = getattr(self, arg)
            if isinstance(value, str) or not all(isinstance(c, str) for c in value):
                raise TypeError(f"{arg} must be a sequence of column names, got {value!r}")
            object.__setattr__(self, arg, tuple(value))
        if self.template is not None:
            if not isinstance(self.template, str):
                raise TypeError(f"template must be a str or None, got {type(self.template).__name__}")
            _template_fields(self.template)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the rendering reads."""
        if self.template is not None:
            return tuple(dict.fromkeys(_template_fields(self.template)))
        return self.text_columns + self.attribute_columns

    @classmethod
    def for_graph(cls, graph: Graph, template: Optional[str] = None) -> "ItemTextTemplate":
        """The template of ``graph``'s item table.

        Column roles come from ``graph.meta["item_text_columns"]`` and
        ``["item_attribute_columns"]``. Where a role is not recorded: text columns are
        the string-typed columns not named as attributes, attribute columns are the
        remaining non-id columns.

        Raises:
            ValueError: the meta or ``template`` names a column the item table lacks.
        """
        available = [c for c in graph.items.columns if c != _ID_COLUMN]
        text = graph.meta.get("item_text_columns")
        attributes = graph.meta.get("item_attribute_columns")
        for role, named in (("item_text_columns", text), ("item_attribute_columns", attributes)):
            unknown = [c for c in (named or []) if c not in available]
            if unknown:
                raise ValueError(f"graph.meta[{role!r}] names {unknown}, absent from the item table {available}")
        if text is None:
            text = [
                c
                for c in available
                if c not in (attributes or []) and pd.api.types.is_string_dtype(graph.items[c])
            ]
        if attributes is None:
            attributes = [c for c in available if c not in text]
        result = cls(text_columns=tuple(text), attribute_columns=tuple(attributes), template=template)
        unknown = [c for c in result.columns if c not in available]
        if unknown:
            raise ValueError(f"template={template!r} uses {unknown}, absent from the item table {available}")
        return result

    def render(self, fields: Mapping[str, Any], *, fallback: str = "") -> str:
        """The text of one item.

        Args:
            fields: column name -> value (a row of ``graph.items`` or a new item's dict);
                absent or missing values render empty.
            fallback: returned when every field is empty (e.g. the item's id).

        Raises:
            TypeError: ``fields`` is not a mapping.
        """
        if not isinstance(fields, Mapping):
            raise TypeError(f"fields must be a mapping of column name to value, got {type(fields).__name__}")
        if self.template is not None:
            values = _Blank({c: _format_value(fields.get(c)) for c in self.columns})
            text = " ".join(self.template.format_map(values).split())
            # A template of pure punctuation around empty fields is still empty.
            return text if any(ch.isalnum() for ch in text) else fallback
        texts = [t for t in (_format_value(fields.get(c)) for c in self.text_columns) if t]
        attributes = []
        for column in self.attribute_columns:
            value = _format_value(fields.get(column))
            if value:
                attributes.append(f"{column.replace('_', ' ')}: {value}")
        if attributes:
            texts.append("; ".join(attributes))
        return ". ".join(texts) or fallback


def item_texts(graph: Graph, template: Optional[str] = None) -> list[str]:
    """One text per item of ``graph`` (index order), via :meth:`ItemTextTemplate.for_graph`.

    An item with no text at all gets ``""``: its external id says nothing an
    encoder could use (callers give such items no text vector).

    Returns:
        ``graph.num_items`` strings.
    """
    rendering = ItemTextTemplate.for_graph(graph, template)
    columns = list(rendering.columns)
    if not columns:
        return [""] * graph.num_items
    records = graph.items[columns].to_dict("records")
    return [rendering.render(record) for record in records]


def opaque_entities(graph: Graph) -> np.ndarray:
    """Boolean ``[num_entities]``: entities whose name is empty or an opaque id (``m.0bln8``, ``Q42``, ``17``)."""
    names = graph.entities["name"].astype("string").fillna("").to_numpy(dtype=object)
    return np.array([not n.strip() or bool(_OPAQUE_NAME.match(n.strip())) for n in names], dtype=bool)


def _relation_label(name: str) -> str:
    """``film.film.actor`` -> ``actor``; ``film.film_genre.films_in_this_genre`` -> ``films in this genre``."""
    return " ".join(name.rsplit(".", 1)[-1].replace("_", " ").split()) or name


def _inverse_phrase(label: str) -> str:
    """How an entity at the tail of ``item -label-> entity`` relates to the item.

    ``actor`` -> ``actor of``; ``written by`` -> ``written`` (the writer "written: Heat").
    """
    return label[: -len(" by")] if label.endswith(" by") else f"{label} of"


def entity_texts(graph: Graph, *, max_neighbors: int = 8) -> list[str]:
    """One text per entity of ``graph`` (index order): name plus relation context.

    The context lists, per relation, up to ``max_neighbors`` linked items in
    all (their first text column, else their id; most interacted items first) or
    linked entities with readable names: ``"creator 3. created by of: Heat; Ronin"``.

    Args:
        graph: the graph; triples between items and entities (either direction) and
            between entities give the context.
        max_neighbors: linked nodes named per entity.

    Returns:
        ``graph.num_entities`` strings; an entity with neither a readable name nor
        links gets ``""`` (its id is no text).

    Raises:
        ValueError: ``max_neighbors`` < 0.
    """
    positive_int(max_neighbors, "max_neighbors", minimum=0)
    names = graph.entities["name"].astype("string").fillna("").to_numpy(dtype=object)
    readable = ~opaque_entities(graph)
    rendering = ItemTextTemplate.for_graph(graph)
    if rendering.text_columns:
        item_names = [_format_value(v) for v in graph.items[rendering.text_columns[0]].tolist()]
        item_names = [name or str(i) for name, i in zip(item_names, graph.item_ids)]
    else:
        item_names = list(graph.item_ids)

    labels = [_relation_label(r) for r in graph.relation_names]
    t = graph.triples
    head, tail = t["head"].to_numpy(), t["tail"].to_numpy()
    head_type, tail_type = t["head_type"].to_numpy(), t["tail_type"].to_numpy()
    relation = t["relation"].to_numpy()
    popularity = graph.item_popularity("train") if len(graph.interactions) else np.zeros(graph.num_items)

    # (entity, label, neighbor name, rank): rank orders neighbors, popular items first.
    links: list[tuple[np.ndarray, list[str], list[str], np.ndarray]] = []
    for ent_end, other_end, other_type, phrase in (
        ("tail", "head", ITEM, _inverse_phrase),
        ("head", "tail", ITEM, str),
        ("tail", "head", ENTITY, _inverse_phrase),
        ("head", "tail", ENTITY, str),
    ):
        ent_type_col = tail_type if ent_end == "tail" else head_type
        other_type_col = head_type if ent_end == "tail" else tail_type
        keep = (ent_type_col == ENTITY) & (other_type_col == other_type)
        entity = (tail if ent_end == "tail" else head)[keep]
        other = (head if other_end == "head" else tail)[keep]
        if other_type == ENTITY:
            usable = readable[other]
            entity, other, rel = entity[usable], other[usable], relation[keep][usable]
            neighbor = [str(names[o]).strip() for o in other]
            rank = np.zeros(len(other))
        else:
            rel = relation[keep]
            neighbor = [item_names[o] for o in other]
            rank = -popularity[other].astype(np.float64)
        links.append((entity, [phrase(labels[r]) for r in rel], neighbor, rank))

    context: dict[int, dict[str, list[str]]] = {}
    if links:
        entity = np.concatenate([l[0] for l in links])
        label = [x for l in links for x in l[1]]
        neighbor = [x for l in links for x in l[2]]
        rank = np.concatenate([l[3] for l in links])
        order = np.lexsort((np.arange(len(entity)), rank, entity))
        seen: dict[int, set[str]] = {}
        for row in order:
            e = int(entity[row])
            named = seen.setdefault(e, set())
            if len(named) >= max_neighbors or neighbor[row] in named:
                continue
            named.add(neighbor[row])
            context.setdefault(e, {}).setdefault(label[row], []).append(neighbor[row])

    texts = []
    for e in range(graph.num_entities):
        parts = [str(names[e]).strip()] if readable[e] else []
        parts += [f"{label}: {'; '.join(members)}" for label, members in context.get(e, {}).items()]
        texts.append(". ".join(parts))
    return texts
