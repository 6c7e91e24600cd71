"""The hidden structure of the synthetic data and the event log drawn from it.

:func:`build_world` draws everything the files are generated from but never
show directly: each item's topic, popularity, release time and creator/series,
each user's taste (a main and a secondary topic), activity and active window.
:func:`event_blocks` turns that into the interaction log, one block of users at
a time, each block from its own seeded stream: the log is the same however it
is cut into chunks, and memory is bounded by the block, not by the log.

Every random draw comes from ``numpy.random.default_rng([seed, stream, ...])``
with a fixed stream number per concern, so the side tables do not depend on the
number of interactions and each part is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from graphrec.datasets.synthetic import SyntheticConfig

__all__ = [
    "DAY",
    "EVENT_NAMES",
    "GroupSampler",
    "INTERACTION_SCHEMA",
    "STREAMS",
    "World",
    "build_world",
    "event_blocks",
    "format_ids",
    "stream",
]

DAY = 86_400
EVENT_NAMES = ("view", "click", "purchase")
INTERACTION_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.int64()), ("event", pa.string())]
)
STREAMS = {"items": 1, "users": 2, "item_text": 3, "kg": 4, "social": 5, "activity": 6, "events": 7}
# Expected events per block; fixed (not tied to chunk_rows) so that the log does not depend on it.
_BLOCK_EVENTS = 1 << 17
# Cumulative (view, click) thresholds of the event type; the rest is "purchase".
_EVENT_THRESHOLDS = {"taste": (0.62, 0.88), "other": (0.75, 0.95), "repeat": (0.45, 0.80)}
# Share of an item's creator that comes from its own topic; the rest is any creator.
_CREATOR_TOPIC_SHARE = 0.85
# Redraws of a fresh event that precedes its item's release or repeats the user's pair: in its
# topic first, then by overall popularity, last uniformly; what is left after that is kept.
_RETRIES = 8
_RETRIES_IN_TOPIC = 5


def stream(config: SyntheticConfig, name: str, *extra: int) -> np.random.Generator:
    """The seeded generator of one concern (``STREAMS``), optionally per block."""
    return np.random.default_rng([config.seed, STREAMS[name], *extra])


def format_ids(prefix: str, count: int, min_width: int) -> pa.StringArray:
    """``prefix`` + zero-padded index, wide enough that string order is numeric order."""
    width = max(min_width, len(str(max(count - 1, 0))))
    digits = pc.utf8_lpad(pa.array(np.arange(count)).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


@dataclass(frozen=True)
class GroupSampler:
    """Draws members of a group with probability proportional to a weight, vectorised.

    Members are sorted by (group, weight) and a draw is a binary search in the
    cumulative weight of the requested group. Group ``-1``, and a group whose
    weight is zero, draws from all members.
    """

    order: np.ndarray
    cum: np.ndarray
    mass_lo: np.ndarray
    mass_hi: np.ndarray

    @classmethod
    def build(cls, group: np.ndarray, weight: np.ndarray, num_groups: int) -> GroupSampler:
        # Ascending weight inside a group puts a positive weight last, so a draw at the
        # group's upper float edge never lands on a zero-weight member.
        order = np.lexsort((weight, group))
        cum = np.cumsum(weight[order], dtype=np.float64)
        edges = np.concatenate([[0.0], cum])[np.searchsorted(group[order], np.arange(num_groups + 1))]
        mass_lo, mass_hi = edges[:-1], edges[1:]
        empty = mass_hi <= mass_lo
        mass_lo = np.where(empty, 0.0, mass_lo)
        mass_hi = np.where(empty, cum[-1], mass_hi)
        return cls(order, cum, np.append(mass_lo, 0.0), np.append(mass_hi, cum[-1]))

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One member per entry of ``groups`` (``-1``: any group)."""
        lo, hi = self.mass_lo[groups], self.mass_hi[groups]
        target = lo + rng.random(len(groups)) * (hi - lo)
        # Searching sorted targets is several times faster (cache-friendly) than random ones.
        by_target = np.argsort(target)
        position = np.empty(len(target), dtype=np.int64)
        position[by_target] = np.searchsorted(self.cum, target[by_target], side="right")
        return self.order[np.minimum(position, len(self.order) - 1)]


@dataclass(frozen=True)
class World:
    """The latent structure; arrays are indexed by internal item/user/creator/series index.

    ``item_series`` is ``-1`` for items outside any series. ``item_release`` is
    unix seconds; cold items are released after the log ends and have zero
    popularity. ``user_events`` sums to ``config.num_interactions``.
    """

    item_topic: np.ndarray
    item_popularity: np.ndarray
    item_release: np.ndarray
    item_kind: np.ndarray  # 0 back catalogue, 1 released during the log, 2 cold (after it)
    item_creator: np.ndarray
    item_series: np.ndarray
    creator_topic: np.ndarray
    series_topic: np.ndarray
    series_creator: np.ndarray
    user_topic: np.ndarray
    user_second_topic: np.ndarray
    user_main_share: np.ndarray
    user_events: np.ndarray
    user_start: np.ndarray
    user_end: np.ndarray


def _catalogue(config: SyntheticConfig) -> dict[str, np.ndarray]:
    rng = stream(config, "items")
    n, topics = config.num_items, config.num_topics
    topic_share = rng.dirichlet(np.full(topics, 4.0))
    item_topic = np.concatenate([np.arange(topics), rng.choice(topics, n - topics, p=topic_share)])
    item_topic = rng.permutation(item_topic)
    popularity = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** config.popularity_exponent
    popularity = popularity[rng.permutation(n)]
    start = config.start_time
    end = start + config.duration_days * DAY
    draw = rng.random(n)
    kind = np.zeros(n, dtype=np.int64)
    kind[draw < config.cold_item_share + config.new_item_share] = 1
    kind[draw < config.cold_item_share] = 2
    if (kind == 2).all():
        kind[np.argmax(popularity)] = 0
    release = np.select(
        [kind == 0, kind == 1],
        [start - rng.uniform(0, 3 * 365 * DAY, n), start + rng.uniform(0, end - start, n)],
        end + rng.uniform(DAY, 60 * DAY, n),
    ).astype(np.int64)
    popularity[kind == 2] = 0.0
    return {"item_topic": item_topic, "item_popularity": popularity, "item_release": release, "item_kind": kind}


def _creators_and_series(config: SyntheticConfig, item_topic: np.ndarray) -> dict[str, np.ndarray]:
    rng = stream(config, "kg")
    topics = config.num_topics
    item_share = np.bincount(item_topic, minlength=topics) / len(item_topic)

    def specialists(count: int) -> tuple[np.ndarray, GroupSampler]:
        # The first ones cover every topic; the rest follow the topics' catalogue shares.
        first = np.arange(min(count, topics))
        topic = np.concatenate([first, rng.choice(topics, count - len(first), p=item_share)])
        prolific = 1.0 / np.arange(1, count + 1) ** 0.8
        return topic, GroupSampler.build(topic, prolific[rng.permutation(count)], topics)

    creator_topic, creators = specialists(config.num_creators)
    own_topic = rng.random(len(item_topic)) < _CREATOR_TOPIC_SHARE
    item_creator = creators.draw(np.where(own_topic, item_topic, -1), rng)
    item_series = np.full(len(item_topic), -1, dtype=np.int64)
    series_topic = np.empty(0, dtype=np.int64)
    series_creator = np.empty(0, dtype=np.int64)
    if config.num_series:
        series_topic, series = specialists(config.num_series)
        series_creator = creators.draw(series_topic, rng)
        has_series = np.isin(item_topic, series_topic) & (rng.random(len(item_topic)) < config.series_share)
        item_series[has_series] = series.draw(item_topic[has_series], rng)
        # A series keeps its creator: that is what makes creator and series agree in the KG.
        item_creator[has_series] = series_creator[item_series[has_series]]
    return {
        "item_creator": item_creator,
        "item_series": item_series,
        "creator_topic": creator_topic,
        "series_topic": series_topic,
        "series_creator": series_creator,
    }


def _users(config: SyntheticConfig) -> dict[str, np.ndarray]:
    rng = stream(config, "users")
    n, topics = config.num_users, config.num_topics
    user_topic = rng.choice(topics, n, p=rng.dirichlet(np.full(topics, 2.0)))
    # Any other topic (the same one when there is only one).
    second = (user_topic + 1 + rng.integers(0, max(topics - 1, 1), n)) % topics
    main_share = rng.uniform(0.55, 0.9, n)
    start = config.start_time + rng.uniform(0, 0.9, n) * config.duration_days * DAY
    end_time = config.start_time + config.duration_days * DAY
    end = start + (end_time - start) * rng.uniform(0.2, 1.0, n)
    activity = stream(config, "activity")
    weight = activity.lognormal(0.0, config.activity_sigma, n)
    events = 1 + activity.multinomial(config.num_interactions - n, weight / weight.sum())
    return {
        "user_topic": user_topic,
        "user_second_topic": second,
        "user_main_share": main_share,
        "user_events": events.astype(np.int64),
        "user_start": start.astype(np.int64),
        "user_end": end.astype(np.int64),
    }


def build_world(config: SyntheticConfig) -> World:
    """Draw the latent structure of ``config`` (cheap: arrays over users and items only)."""
    catalogue = _catalogue(config)
    return World(**catalogue, **_creators_and_series(config, catalogue["item_topic"]), **_users(config))


class _Samplers:
    """Item samplers shared by every block of the event log."""

    def __init__(self, world: World, num_topics: int, num_creators: int):
        self.by_topic = GroupSampler.build(world.item_topic, world.item_popularity, num_topics)
        # Uniform over released items; group -1 is then "any released item".
        released = (world.item_kind != 2).astype(np.float64)
        self.by_creator = GroupSampler.build(world.item_creator, released, num_creators)


def _settle(
    item: np.ndarray,
    topic: np.ndarray,
    local: np.ndarray,
    time: np.ndarray,
    world: World,
    samplers: _Samplers,
    rng: np.random.Generator,
) -> np.ndarray:
    """Redraw fresh events that precede their item's release or repeat the user's earlier pair.

    Repeats are then only what ``repeat_rate`` asks for (plus the rare leftover
    after the retries), not chance collisions on popular items.
    """
    key = local * len(world.item_topic) + item
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    bad = np.zeros(len(key), dtype=bool)
    bad[by_key[1:][sorted_key[1:] == sorted_key[:-1]]] = True
    bad |= time < world.item_release[item]
    kept = sorted_key[~bad[by_key]]
    retry = np.flatnonzero(bad)
    for attempt in range(_RETRIES):
        if not len(retry):
            break
        if attempt < _RETRIES_IN_TOPIC:
            item[retry] = samplers.by_topic.draw(topic[retry], rng)
        elif attempt < _RETRIES - 1:
            # A user who has had most of a topic's popular items looks elsewhere ...
            item[retry] = samplers.by_topic.draw(np.full(len(retry), -1), rng)
        else:
            # ... and finally anywhere in the catalogue.
            item[retry] = samplers.by_creator.draw(np.full(len(retry), -1), rng)
        new_key = local[retry] * len(world.item_topic) + item[retry]
        at = np.minimum(np.searchsorted(kept, new_key), max(len(kept) - 1, 0))
        clash = (kept[at] == new_key) if len(kept) else np.zeros(len(retry), dtype=bool)
        _, first = np.unique(new_key, return_index=True)
        repeated = np.ones(len(retry), dtype=bool)
        repeated[first] = False
        still = clash | repeated | (time[retry] < world.item_release[item[retry]])
        # Sorting a sorted array plus a short tail is linear for the stable (run-merging) sort.
        kept = np.sort(np.concatenate([kept, new_key[~still]]), kind="stable")
        retry = retry[still]
    return item


def _block_events(
    config: SyntheticConfig, world: World, samplers: _Samplers, users: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = world.user_events[users]
    repeats = rng.binomial(counts - 1, config.repeat_rate)
    fresh = counts - repeats
    fresh_start = np.cumsum(fresh) - fresh
    local = np.repeat(np.arange(len(users)), fresh)
    user = users[local]

    # Fresh events: a taste topic (main or secondary) or, outside the focus, any topic.
    draw = rng.random(len(user))
    focus = config.topic_focus
    main = draw < focus * world.user_main_share[user]
    topic = np.where(main, world.user_topic[user], world.user_second_topic[user])
    topic[draw >= focus] = -1
    item = samplers.by_topic.draw(topic, rng)
    # Some events follow a creator the user already met: the signal a KG carries beyond topic.
    follow = np.flatnonzero(rng.random(len(user)) < config.creator_follow_rate)
    anchor = fresh_start[local[follow]] + (rng.random(len(follow)) * fresh[local[follow]]).astype(np.int64)
    item[follow] = samplers.by_creator.draw(world.item_creator[item[anchor]], rng)
    time = world.user_start[user] + rng.random(len(user)) * (world.user_end - world.user_start)[user]
    item = _settle(item, topic, local, time, world, samplers, rng)
    # What is still too early becomes a burst right after release.
    early = np.flatnonzero(time < world.item_release[item])
    time[early] = world.item_release[item[early]] + rng.exponential(3 * DAY, len(early))
    end = config.start_time + config.duration_days * DAY
    time = np.minimum(time, end)
    taste = world.item_topic[item] == world.user_topic[user]
    low = np.where(taste, _EVENT_THRESHOLDS["taste"][0], _EVENT_THRESHOLDS["other"][0])
    high = np.where(taste, _EVENT_THRESHOLDS["taste"][1], _EVENT_THRESHOLDS["other"][1])

    # Repeats: an earlier fresh event of the same user again, a little later.
    repeat_local = np.repeat(np.arange(len(users)), repeats)
    origin = fresh_start[repeat_local] + (rng.random(len(repeat_local)) * fresh[repeat_local]).astype(np.int64)
    local = np.concatenate([local, repeat_local])
    item = np.concatenate([item, item[origin]])
    time = np.concatenate([time, np.minimum(time[origin] + rng.exponential(4 * DAY, len(origin)), end)])
    low = np.concatenate([low, np.full(len(origin), _EVENT_THRESHOLDS["repeat"][0])])
    high = np.concatenate([high, np.full(len(origin), _EVENT_THRESHOLDS["repeat"][1])])
    draw = rng.random(len(local))
    event = (draw >= low).astype(np.int8) + (draw >= high)
    # Every time is within [start_time, end], so (user, time) packs into one sortable int64.
    time = time.astype(np.int64)
    order = np.argsort((local << 32) | (time - config.start_time), kind="stable")
    return users[local[order]], item[order], time[order], event[order]


def event_blocks(config: SyntheticConfig, world: World) -> Iterator[pa.Table]:
    """The interaction log as consecutive tables of whole users, in user then time order.

    Yields:
        Tables with :data:`INTERACTION_SCHEMA`; their row counts sum to
        ``config.num_interactions``.
    """
    samplers = _Samplers(world, config.num_topics, config.num_creators)
    user_ids = format_ids("u", config.num_users, 6)
    item_ids = format_ids("i", config.num_items, 5)
    event_names = pa.array(EVENT_NAMES)
    cum = np.cumsum(world.user_events)
    cuts = np.searchsorted(cum, np.arange(_BLOCK_EVENTS, cum[-1], _BLOCK_EVENTS), side="left") + 1
    bounds = np.unique(np.concatenate([[0], cuts, [config.num_users]]))
    for block, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        rng = stream(config, "events", block)
        user, item, time, event = _block_events(config, world, samplers, np.arange(lo, hi), rng)
        yield pa.table(
            [user_ids.take(user), item_ids.take(item), pa.array(time), event_names.take(event)],
            schema=INTERACTION_SCHEMA,
        )
