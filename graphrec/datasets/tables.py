"""The side tables of the synthetic data: items, users, KG triples and social edges.

Each table is rendered from the latent :class:`~graphrec.datasets.latent.World`
with its own seeded stream, vectorised (indices drawn with numpy, strings
assembled with pyarrow compute; no per-row Python), so a catalogue of a million
items takes seconds. Text is drawn from the
item's topic vocabulary plus shared generic words; attributes and KG entities
lean towards the topic's values, so both carry the topic without revealing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graphrec.datasets.latent import GroupSampler, World, format_ids, stream
from graphrec.datasets.vocab import (
    CATEGORIES,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DESCRIPTION_NOUNS,
    DESCRIPTION_OPENINGS,
    GENERIC_TAGS,
    GENERIC_WORDS,
    TOPICS,
)

if TYPE_CHECKING:
    from graphrec.datasets.synthetic import SyntheticConfig

__all__ = ["items_table", "kg_table", "social_table", "users_table"]

_CATEGORY_PRICE = {
    "book": 14.0, "film": 10.0, "album": 11.0, "podcast": 3.0,
    "game": 35.0, "course": 40.0, "comic": 8.0, "documentary": 9.0,
}
# How strongly attributes follow the topic; the rest is drawn regardless of it.
_CATEGORY_TOPIC_SHARE = 0.75
_USER_COUNTRY_TOPIC_SHARE = 0.35
_CREATOR_COUNTRY_TOPIC_SHARE = 0.6


class _Vocabulary:
    """Per-topic word lists flattened into one Arrow array, for vectorised draws by topic."""

    def __init__(self, lists: list[tuple[str, ...]]):
        self.sizes = np.array([len(words) for words in lists])
        self.offsets = np.cumsum(self.sizes) - self.sizes
        self.words = pa.array([word for words in lists for word in words])

    def distinct(self, topic: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Indices into ``words`` of ``k`` different words of each row's topic.

        ``k`` must not exceed the smallest list.
        """
        size = self.sizes[topic]
        picked: list[np.ndarray] = []
        for j in range(k):
            index = (rng.random(len(topic)) * (size - j)).astype(np.int64)
            if picked:
                # Step over the words already taken, smallest first: a uniform draw among the rest.
                for taken in np.sort(np.stack(picked, axis=1), axis=1).T:
                    index += index >= taken
            picked.append(index)
        return [self.offsets[topic] + index for index in picked]


def _pick(values: tuple[str, ...], count: int, rng: np.random.Generator) -> pa.Array:
    return pa.array(values).take(rng.integers(0, len(values), count))


def _concat(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _choose(variants: list[pa.Array], which: np.ndarray) -> pa.Array:
    """Row ``i`` of ``variants[which[i]]``."""
    return pa.concat_arrays(variants).take(which * len(which) + np.arange(len(which)))


def _frame(columns: dict[str, pa.Array | np.ndarray]) -> pd.DataFrame:
    return pa.table(columns).to_pandas()


def _years(seconds: np.ndarray) -> np.ndarray:
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def _other_topic(topic: np.ndarray, num_topics: int, rng: np.random.Generator) -> np.ndarray:
    return (topic + 1 + rng.integers(0, max(num_topics - 1, 1), len(topic))) % num_topics


def items_table(config: SyntheticConfig, world: World) -> pd.DataFrame:
    """``item_id, title, description, category, tags, price, year`` (one row per item)."""
    rng = stream(config, "item_text")
    topics = TOPICS[: config.num_topics]
    topic, n = world.item_topic, config.num_items
    vocabulary = _Vocabulary([t.words for t in topics])
    capitalised = pc.utf8_capitalize(vocabulary.words)
    picks = vocabulary.distinct(topic, 5, rng)
    a, b, c, d, e = (capitalised.take(index) for index in picks)
    generic = pc.utf8_capitalize(_pick(GENERIC_WORDS, n, rng))
    title = _choose(
        [_concat(a, " ", b), _concat(a, " ", b, " ", c), _concat("The ", a, " ", generic),
         _concat(generic, " of the ", a, " ", b)],
        rng.integers(0, 4, n),
    )
    topic_category = np.array([CATEGORIES.index(t.category) for t in topics])[topic]
    category_code = np.where(rng.random(n) < _CATEGORY_TOPIC_SHARE, topic_category, rng.integers(0, len(CATEGORIES), n))
    category = pa.array(CATEGORIES).take(category_code)
    subgenres = _Vocabulary([tuple(sub.replace("-", " ") for sub in t.subgenres) for t in topics])
    # Descriptions mix the item's own topic words with one word of a random topic (noise).
    stray = vocabulary.words.take((rng.random(n) * len(vocabulary.words)).astype(np.int64))
    c, d, e, a = (vocabulary.words.take(index) for index in (*picks[2:], picks[0]))
    description = _concat(
        _pick(DESCRIPTION_OPENINGS, n, rng), " ", _pick(DESCRIPTION_NOUNS, n, rng), " of ", c, ", ", d, " and ", e,
        ": ", a, " meets ", stray, " in this ", subgenres.words.take(subgenres.distinct(topic, 1, rng)[0]), " ",
        category, ".",
    )
    tag_words = _Vocabulary([t.tags for t in topics])
    first, second = (tag_words.words.take(index) for index in tag_words.distinct(topic, 2, rng))
    tags = pc.if_else(rng.random(n) < 0.5, _concat(first, "|", second), first)
    tags = pc.if_else(rng.random(n) < 0.3, _concat(tags, "|", _pick(GENERIC_TAGS, n, rng)), tags)
    base = np.array([_CATEGORY_PRICE[name] for name in CATEGORIES])[category_code]
    price = np.maximum(np.round(base * rng.lognormal(0.0, 0.35, n)) - 0.01, 0.99).round(2)
    start_year = int(_years(np.array([config.start_time]))[0])
    era = np.array([t.era for t in topics])[topic]
    back_year = np.clip(np.round(era + rng.normal(0, 10, n)), 1920, start_year - 1).astype(np.int64)
    year = np.where(world.item_kind == 0, back_year, _years(world.item_release))
    return _frame(
        {
            "item_id": format_ids("i", n, 5),
            "title": title,
            "description": description,
            "category": category,
            "tags": tags,
            "price": price,
            "year": year,
        }
    )


def _countries(topic_country: np.ndarray, share: float, rng: np.random.Generator) -> pa.Array:
    """Country codes: the topic's with probability ``share``, else by audience size."""
    weights = np.asarray(COUNTRY_WEIGHTS) / np.sum(COUNTRY_WEIGHTS)
    drawn = rng.choice(len(COUNTRIES), len(topic_country), p=weights)
    return pa.array(COUNTRIES).take(np.where(rng.random(len(topic_country)) < share, topic_country, drawn))


def users_table(config: SyntheticConfig, world: World) -> pd.DataFrame:
    """``user_id, age, country`` (one row per user; both mildly follow the user's taste)."""
    rng = stream(config, "users", 1)
    topics = TOPICS[: config.num_topics]
    age_of = np.array([t.age for t in topics], dtype=np.float64)
    mean_age = 0.7 * age_of[world.user_topic] + 0.3 * age_of[world.user_second_topic]
    age = np.clip(np.round(mean_age + rng.normal(0, 9, config.num_users)), 16, 80).astype(np.int64)
    country_of = np.array([COUNTRIES.index(t.country) for t in topics])
    return _frame(
        {
            "user_id": format_ids("u", config.num_users, 6),
            "age": age,
            "country": _countries(country_of[world.user_topic], _USER_COUNTRY_TOPIC_SHARE, rng),
        }
    )


def kg_table(config: SyntheticConfig, world: World) -> pd.DataFrame:
    """``head, relation, tail`` triples: item -> creator/series/genre, entity -> entity.

    Entity ids carry a ``kind:`` prefix (``creator:0012``, ``series:0003``,
    ``genre:bebop``, ``country:FR``) so they never collide with item ids. No
    triple repeats.
    """
    rng = stream(config, "kg", 1)
    topics = TOPICS[: config.num_topics]
    item_ids = format_ids("i", config.num_items, 5)
    creator_ids = format_ids("creator:", config.num_creators, 4)
    series_ids = format_ids("series:", config.num_series, 4)
    genres = _Vocabulary([tuple(f"genre:{sub}" for sub in t.subgenres) for t in topics])
    topic = world.item_topic
    main, extra = genres.distinct(topic, 2, rng)
    in_series = np.flatnonzero(world.item_series >= 0)
    # A series or creator without items would be KG triples that reach no item (the build refuses those).
    used_series = np.unique(world.item_series[in_series])
    used_creators = np.unique(world.item_creator)
    has_extra = np.flatnonzero(rng.random(len(topic)) < 0.25)
    # A few items cross over to a genre of another topic.
    crossover = np.flatnonzero(rng.random(len(topic)) < (0.1 if len(topics) > 1 else 0.0))
    other_genre = genres.distinct(_other_topic(topic[crossover], len(topics), rng), 1, rng)[0]
    country_of = np.array([COUNTRIES.index(t.country) for t in topics])
    creator_country = _countries(country_of[world.creator_topic], _CREATOR_COUNTRY_TOPIC_SHARE, rng)
    parent = pa.array([f"genre:{t.genre}" for t in topics for _ in t.subgenres])
    parts = [
        (item_ids, "created_by", creator_ids.take(world.item_creator)),
        (item_ids.take(in_series), "part_of", series_ids.take(world.item_series[in_series])),
        (item_ids, "has_genre", genres.words.take(main)),
        (item_ids.take(has_extra), "has_genre", genres.words.take(extra[has_extra])),
        (item_ids.take(crossover), "has_genre", genres.words.take(other_genre)),
        (series_ids.take(used_series), "created_by", creator_ids.take(world.series_creator[used_series])),
        (creator_ids.take(used_creators), "nationality", _concat("country:", creator_country).take(used_creators)),
        (genres.words, "subgenre_of", parent),
    ]
    relations = [relation for _, relation, _ in parts]
    return _frame(
        {
            "head": pa.concat_arrays([head for head, _, _ in parts]),
            "relation": pa.array(relations).take(np.repeat(np.arange(len(parts)), [len(head) for head, _, _ in parts])),
            "tail": pa.concat_arrays([tail for _, _, tail in parts]),
        }
    )


def social_table(config: SyntheticConfig, world: World) -> pd.DataFrame:
    """``user_id, friend_id``: undirected friendships, each listed once; friends mostly share a taste."""
    rng = stream(config, "social")
    n = config.num_users
    sociable = rng.lognormal(0.0, 0.8, n)
    people = GroupSampler.build(world.user_topic, sociable, config.num_topics)
    edges = int(round(n * config.social_degree / 2))
    head = rng.choice(n, edges, p=sociable / sociable.sum())
    same = rng.random(edges) < config.social_homophily
    friend = people.draw(np.where(same, world.user_topic[head], -1), rng)
    low, high = np.minimum(head, friend), np.maximum(head, friend)
    # Sort-based dedup: np.unique's hashing is several times slower on millions of keys.
    pair = np.sort((low * n + high)[low != high])
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    pair = pair[first]
    low, high = pair // n, pair % n
    # Which side is listed first is not meaningful; randomise it so neither column is biased.
    flip = rng.random(len(pair)) < 0.5
    user_ids = format_ids("u", n, 6)
    return _frame(
        {"user_id": user_ids.take(np.where(flip, high, low)), "friend_id": user_ids.take(np.where(flip, low, high))}
    )
