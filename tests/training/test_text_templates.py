"""Item and entity texts: templates over item fields, column roles, KG relation context."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kg.graph import ENTITY, ITEM, Graph
from training.text import ItemTextTemplate, entity_texts, item_texts


def test_default_rendering_joins_text_then_attributes():
    template = ItemTextTemplate(text_columns=("title", "description"), attribute_columns=("release_year", "genres"))
    fields = {
        "title": "Toy Story",
        "description": "  toys   come alive ",
        "release_year": 1995.0,
        "genres": ["Animation", "Comedy"],
    }
    assert template.render(fields) == "Toy Story. toys come alive. release year: 1995; genres: Animation, Comedy"


def test_missing_values_are_left_out():
    template = ItemTextTemplate(text_columns=("title", "description"), attribute_columns=("year", "genre"))
    assert template.render({"title": "Heat", "description": None, "year": float("nan"), "genre": pd.NA}) == "Heat"
    assert template.render({"year": 2.5}) == "year: 2.5"
    assert template.render({}, fallback="i42") == "i42"


def test_custom_template_fills_named_columns():
    template = ItemTextTemplate(text_columns=("title",), template="{title} ({year}): {genre}")
    fields = {"title": "Heat", "year": 1995, "genre": ["Crime", "Thriller"]}
    assert template.render(fields) == "Heat (1995): Crime, Thriller"
    # A new item may lack a field; a template that renders only punctuation is empty.
    assert template.render({"title": "Heat"}) == "Heat ():"
    assert template.render({}, fallback="x") == "x"
    assert template.columns == ("title", "year", "genre")


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{} and {title}", "positional"),
        ("{0}", "positional"),
        ("{title.upper}", "plain column"),
        ("{title", "not a valid"),
    ],
)
def test_malformed_templates_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        ItemTextTemplate(template=bad)


def test_render_needs_a_mapping():
    with pytest.raises(TypeError, match="fields must be a mapping"):
        ItemTextTemplate(text_columns=("title",)).render(["Heat"])


def test_for_graph_reads_column_roles_from_meta(structured_graph):
    template = ItemTextTemplate.for_graph(structured_graph)
    assert template.text_columns == ("title",) and template.attribute_columns == ("genre",)
    texts = item_texts(structured_graph)
    assert len(texts) == structured_graph.num_items
    title, genre = structured_graph.items.loc[5, ["title", "genre"]]
    assert texts[5] == f"{title}. genre: {genre}"
    assert item_texts(structured_graph, "{genre}|{title}")[5] == f"{genre}|{title}"


def _graph(items: pd.DataFrame, meta: dict, **tables) -> Graph:
    interactions = pd.DataFrame(
        {"user": [0], "item": [0], "weight": [1.0], "count": [1], "timestamp": [0.0], "split": [0]}
    )
    return Graph(interactions=interactions, items=items, users=pd.DataFrame({"user_id": ["u0"]}), meta=meta, **tables)


def test_roles_fall_back_to_dtypes_and_empty_items_get_no_text():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "name": pd.array(["Heat", None], dtype="string"),
            "year": [1995, np.nan],
        }
    )
    graph = _graph(items, {})
    template = ItemTextTemplate.for_graph(graph)
    assert template.text_columns == ("name",) and template.attribute_columns == ("year",)
    # An item without text gets none (not its id: an id string is noise to an encoder).
    assert item_texts(graph) == ["Heat. year: 1995", ""]


def test_unknown_columns_are_named():
    graph = _graph(pd.DataFrame({"item_id": ["a"], "title": ["Heat"]}), {"item_text_columns": ["title", "plot"]})
    with pytest.raises(ValueError, match=r"item_text_columns.*\['plot'\]"):
        ItemTextTemplate.for_graph(graph)
    graph = _graph(pd.DataFrame({"item_id": ["a"], "title": ["Heat"]}), {})
    with pytest.raises(ValueError, match=r"uses \['plot'\]"):
        item_texts(graph, "{title}: {plot}")


def test_entity_texts_of_the_structured_graph(structured_graph):
    texts = entity_texts(structured_graph, max_neighbors=3)
    assert len(texts) == structured_graph.num_entities
    titles = structured_graph.items["title"].tolist()
    # genre entity 0: readable name "g0", then up to 3 items of that genre.
    name, context = texts[0].split(". ", 1)
    assert name == "g0" and context.startswith("genre of: ")
    listed = context[len("genre of: ") :].split("; ")
    assert len(listed) == 3 and all(t in titles for t in listed)
    genre0 = set(np.flatnonzero(structured_graph.items["genre"].to_numpy() == "g0"))
    assert {titles.index(t) for t in listed} <= genre0
    # Most interacted items come first.
    popularity = structured_graph.item_popularity("train")
    counts = [popularity[titles.index(t)] for t in listed]
    assert counts == sorted(counts, reverse=True) and max(counts) == popularity[sorted(genre0)].max()
    # creator entities: "creator c. created by" reads "created: ..."
    assert texts[4].startswith("creator 0. created: ")


def test_opaque_kg_entities_are_described_by_their_relations():
    items = pd.DataFrame({"item_id": ["1", "2"], "movie_title": ["Toy Story", "Heat"]})
    entities = pd.DataFrame(
        {"entity_id": ["m.0abc", "m.0xyz", "m.0lonely"], "name": ["m.0abc", "Tom Hanks", "m.0lonely"], "source": "kg"}
    )
    relations = pd.DataFrame(
        {
            "relation": [
                "film.film.actor",
                "film.film.directed_by",
                "film.film_genre.films_in_this_genre",
                "people.person.spouse",
            ]
        }
    )
    triples = pd.DataFrame(
        {
            "head": [0, 1, 0, 0, 1],
            "head_type": [ITEM, ITEM, ITEM, ENTITY, ENTITY],
            "relation": [1, 1, 0, 2, 3],
            "tail": [0, 0, 1, 1, 0],
            "tail_type": [ENTITY, ENTITY, ENTITY, ITEM, ENTITY],
        }
    )
    meta = {"item_text_columns": ["movie_title"]}
    graph = _graph(items, meta, entities=entities, relations=relations, triples=triples)
    texts = entity_texts(graph)
    assert texts[0] == "directed: Toy Story; Heat. spouse of: Tom Hanks"
    assert texts[1] == "Tom Hanks. actor of: Toy Story"
    assert texts[2] == ""


def test_entity_context_is_capped_and_validated(structured_graph):
    assert entity_texts(structured_graph, max_neighbors=0)[0] == "g0"
    with pytest.raises(ValueError, match="max_neighbors"):
        entity_texts(structured_graph, max_neighbors=-1)


_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-5, 3000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(["title", "plot", "year", "genre"]), _values),
    fallback=st.text(max_size=5),
)
def test_rendering_is_total_and_tidy(fields, fallback):
    for template in (
        ItemTextTemplate(text_columns=("title", "plot"), attribute_columns=("year", "genre")),
        ItemTextTemplate(text_columns=("title",), template="{title} - {year} - {genre}"),
    ):
        text = template.render(fields, fallback=fallback)
        assert isinstance(text, str)
        if text != fallback:
            assert text == text.strip() and "  " not in text
        words = (" ".join(str(v) for v in fields.values() if isinstance(v, (str, list))) + fallback).lower()
        if "nan" not in words and "inf" not in words:
            assert "nan" not in text.lower() and "inf" not in text.lower()
    # Finite numbers render exactly, integral floats without ".0".
    year = fields.get("year")
    if isinstance(year, float) and math.isfinite(year) and year.is_integer():
        assert f"year: {int(year)}" in ItemTextTemplate(attribute_columns=("year",)).render(fields)
