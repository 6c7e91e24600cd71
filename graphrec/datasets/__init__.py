"""Embedded demo data: a seeded synthetic data set in the file formats users bring.

Files written by :func:`write` (the graph builder reads exactly these):

``interactions.parquet`` / ``interactions.csv``
    ``user_id`` (str, ``u000123``), ``item_id`` (str, ``i00045``), ``timestamp``
    (int64 unix seconds), ``event`` (``view`` / ``click`` / ``purchase``). A
    (user, item) pair may repeat with other events and timestamps. Rows are in
    user, then time order.
``items.csv``
    ``item_id, title, description, category, tags, price, year``; ``tags`` is
    multi-valued, ``|``-separated.
``users.csv``
    ``user_id, age, country``.
``kg.tsv``
    tab-separated with header ``head relation tail``: item ``created_by``
    ``creator:0012``, item ``part_of`` ``series:0003``, item ``has_genre``
    ``genre:bebop``, series ``created_by`` creator, creator ``nationality``
    ``country:FR``, genre ``subgenre_of`` genre.
``social.csv``
    ``user_id, friend_id``: one row per friendship.
"""

from graphrec.datasets import synthetic
from graphrec.datasets.synthetic import *  # noqa: F403  (the public names, listed once in synthetic.__all__)

__all__ = list(synthetic.__all__)
