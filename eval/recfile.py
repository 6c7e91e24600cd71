"""Reading a recommendations file (``user,item,rank[,score]``, external ids) into a :class:`TopK`.

Such a file is what ``python -m graphrec.recommend`` writes or what another system
produced; ``python -m graphrec.evaluate --recommendations FILE`` scores it. The
file is evaluated as given, so everything questionable in it is either an error
that names the row or user, or a count in :class:`RecommendationsReport`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval.checks import positive_int
from eval.ranking import TopK

__all__ = ["RecommendationsReport", "read_recommendations"]

_REQUIRED = ("user", "item", "rank")
_SHOW = 5


@dataclass(frozen=True)
class RecommendationsReport:
    """What reading the file did besides building the lists.

    Attributes:
        rows: data rows in the file.
        users: distinct (known) users in the file.
        unknown_user_rows: rows dropped because the user id is not in the graph
            (only with ``ignore_unknown``; otherwise they are an error).
        unknown_item_rows: rows with a known user dropped because the item id is
            not in the graph (likewise only with ``ignore_unknown``).
        rows_beyond_k: rows ranked after the first ``k`` of their user (not evaluated).
    """

    rows: int
    users: int
    unknown_user_rows: int = 0
    unknown_item_rows: int = 0
    rows_beyond_k: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _read_table(path: Path) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    if not path.is_file():
        raise FileNotFoundError(f"recommendations file {path} does not exist")
    try:
        if suffixes[-1:] == [".parquet"] or suffixes[-1:] == [".pq"]:
            table = pq.read_table(path)
            frame = table.to_pandas()
        elif suffixes[-1:] == [".csv"] or suffixes[-2:] in ([".csv", ".gz"], [".csv", ".zst"]):
            # Ids stay text exactly as written: no NA guessing ("NA" is an id), no int parsing.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        else:
            found = "".join(suffixes) or "(no suffix)"
            raise ValueError(f"{path}: unsupported recommendations format {found}; use .csv or .parquet")
    except (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing columns {missing}; found {list(frame.columns)}, expected user,item,rank[,score]"
        )
    return frame


def _row_label(path: Path, rows: np.ndarray, is_csv: bool) -> str:
    # CSV users count lines: the header is line 1, data row 0 is line 2.
    shown = [int(r) + 2 if is_csv else int(r) for r in rows[:_SHOW]]
    more = f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else ""
    return f"{path}: {'lines' if is_csv else 'rows'} {shown}{more}"


def _ids(frame: pd.DataFrame, column: str, path: Path, is_csv: bool) -> np.ndarray:
    values = frame[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        raise ValueError(f"{_row_label(path, np.flatnonzero(missing), is_csv)} have an empty {column!r}")
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _numbers(frame: pd.DataFrame, column: str, path: Path, is_csv: bool) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if column == "rank":
        bad |= values != np.round(values)
    if bad.any():
        expected = "a whole number" if column == "rank" else "a finite number"
        raise ValueError(f"{_row_label(path, np.flatnonzero(bad), is_csv)}: {column!r} is not {expected}")
    return values


def read_recommendations(
    path: str | os.PathLike,
    *,
    user_ids: Sequence,
    item_ids: Sequence,
    k: int,
    ignore_unknown: bool = False,
) -> tuple[TopK, RecommendationsReport]:
    """Read ``user,item,rank[,score]`` rows (CSV or Parquet) into per-user ranked lists.

    Ranks order each user's items (ascending; any whole numbers, gaps closed);
    the first ``k`` are kept. Ids are compared as text with surrounding spaces
    removed.

    Args:
        path: ``.csv`` (also ``.csv.gz``) with a header row, or ``.parquet``.
        user_ids: the graph's external user ids, by internal index.
        item_ids: the graph's external item ids, by internal index.
        k: how many items per user to keep.
        ignore_unknown: drop rows whose user or item id the graph lacks (and
            count them) instead of failing.

    Returns:
        ``(TopK, RecommendationsReport)``; lists shorter than ``k`` are padded with -1.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported format, missing columns, empty file, empty ids,
            ranks that are not whole numbers, non-finite scores, unknown ids
            (without ``ignore_unknown``; the message lists a few and the count),
            or a user with a repeated rank or item (the message names the user).
    """
    k = positive_int(k, "k")
    path = Path(path)
    frame = _read_table(path)
    is_csv = ".csv" in [s.lower() for s in path.suffixes]
    if not len(frame):
        raise ValueError(f"{path}: holds no recommendation rows")
    users_text = _ids(frame, "user", path, is_csv)
    items_text = _ids(frame, "item", path, is_csv)
    ranks = _numbers(frame, "rank", path, is_csv)
    scores = _numbers(frame, "score", path, is_csv) if "score" in frame.columns else None

    users = pd.Index(np.asarray(user_ids, dtype=str)).get_indexer(users_text.astype(str))
    items = pd.Index(np.asarray(item_ids, dtype=str)).get_indexer(items_text.astype(str))
    unknown = {"user": users < 0, "item": items < 0}
    if not ignore_unknown:
        for name, mask in unknown.items():
            if mask.any():
                examples = pd.unique((users_text if name == "user" else items_text)[mask])
                raise ValueError(
                    f"{path}: {int(mask.sum())} rows name {len(examples)} {name} ids unknown to the graph, e.g. "
                    f"{list(examples[:_SHOW])}; pass --ignore-unknown (ignore_unknown=True) to drop them"
                )
    keep = ~(unknown["user"] | unknown["item"])
    n_rows = len(frame)
    users, items, ranks = users[keep], items[keep], ranks[keep]
    users_text, items_text = users_text[keep], items_text[keep]
    scores = scores[keep] if scores is not None else None

    order = np.lexsort((ranks, users))
    users, items, ranks = users[order], items[order], ranks[order]
    for what, column in (("rank", ranks), ("item", items)):
        key = pd.DataFrame({"user": users, what: column})
        repeated = key.duplicated().to_numpy()
        if repeated.any():
            first = int(np.flatnonzero(repeated)[0])
            value = int(ranks[first]) if what == "rank" else str(items_text[order[first]])
            raise ValueError(
                f"{path}: user {users_text[order[first]]!r} has {what} {value!r} more than once "
                f"({int(repeated.sum())} repeated (user, {what}) pairs in the file)"
            )

    distinct, starts = np.unique(users, return_index=True)
    position = np.arange(len(users)) - np.repeat(starts, np.diff(np.append(starts, len(users))))
    within = position < k
    table = np.full((len(distinct), k), -1, dtype=np.int64)
    row = np.searchsorted(distinct, users)
    table[row[within], position[within]] = items[within]
    score_table = None
    if scores is not None:
        score_table = np.full((len(distinct), k), -np.inf, dtype=np.float32)
        score_table[row[within], position[within]] = scores[order][within]
    report = RecommendationsReport(
        rows=n_rows,
        users=len(distinct),
        unknown_user_rows=int(unknown["user"].sum()),
        unknown_item_rows=int((unknown["item"] & ~unknown["user"]).sum()),
        rows_beyond_k=int((~within).sum()),
    )
    return TopK(users=distinct.astype(np.int64), items=table, scores=score_table), report
