"""Fuzz every log reader: random files either load or fail with :class:`kg.errors.InputError`.

Each test writes one random file per example (CSV, TSV, Parquet, JSON Lines,
RecBole atomic files with their siblings, LightGCN lists) and feeds it through
what ``graphrec.build`` does with a log before the graph is assembled:
:func:`kg.readers.open_table`, :func:`kg.interactions.read_events` (row checks,
id encoding), the id encoders' final order, event deduplication, and for the
RecBole family the item table (id checks, attribute roles and entity edges),
the KG and the link file. Small batches (``batch_rows=3``) make every file span
several batches. Strict and lenient mode are both drawn. Anything but
``InputError`` escaping is a bug: a traceback a user would see.

``test_full_build_never_crashes`` and ``test_full_build_with_side_tables_never_crashes``
run :func:`kg.build.build_graph` end to end (filters, splits, side tables in CSV,
JSON Lines and Parquet, KG, social, summary) on fewer inputs (150 and 100), because
a full build costs ~50 ms.

Every reader test runs ``FUZZ_EXAMPLES`` (500) derandomized examples.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from kg.attributes import attribute_edges, detect_roles
from kg.build import build_graph
from kg.config import BuildConfig
from kg.edges import Events, dedup_events
from kg.errors import InputError, Rejections
from kg.ids import IdEncoder
from kg.interactions import read_events
from kg.knowledge import read_kg_edges
from kg.readers import open_table
from kg.sidetables import read_side_table

# A traceback printed by "Exception ignored in ..." is one a user sees too; a numpy
# overflow or invalid-value warning is a value silently turned into inf or NaN.
pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]

FUZZ_EXAMPLES = 500
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Cells that have broken, or could break, a reader or a check.
TOKENS = [
    "", " ", "u1", "u2", "u3", "i1", "i2", "i3", "007", "7", "0", "-1", "1.5", "3", "1e20", "-1e400", "1e308",
    "nan", "NaN", "inf", "-inf", "null", "None", "true", "2024-05-01", "2024-05-01T10:00:00Z",
    "2024-05-01 10:00:00+02:00", "2024-13-45", "9999-12-31T23:59:59", "0001-01-01", '"', '"a,b"', 'a"b', "é", "日本",
    "\u00a0", "\ufeff", "x" * 200, "|", "a|b", "a;b", ";", "\\", "\x00", "\x1c", "\x85", "12345678901234567890123",
    "view", "click", "purchase", "5", "-0", "+4", "0x10", "1_000",
]
LOG_NAMES = ["user_id", "item_id", "timestamp", "rating", "event", "user", "item", "time", "weight", "x", "id", ""]
token = st.one_of(st.sampled_from(TOKENS), st.text(alphabet=st.characters(codec="utf-8"), max_size=6))
# Half the cells are plausible ids/numbers and most rows have a log's width, so inputs
# get past the header and into the row checks, id encoding and dedup.
cell = st.one_of(st.sampled_from(["u1", "u2", "u3", "i1", "i2", "i3", "7", "100", "2024-05-01", "view"]), token)
rows_of = st.lists(
    st.one_of(st.lists(cell, min_size=3, max_size=3), st.lists(cell, min_size=2, max_size=2),
              st.lists(token, min_size=1, max_size=5)),
    max_size=8,
)
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def ingest(
    log: Path,
    *,
    lenient: bool,
    fmt: str = "auto",
    encoding: str = "utf-8",
    items_table: Path | None = None,
    kg: Path | None = None,
    link: Path | None = None,
    event_weights: dict | None = None,
) -> None:
    """The build's reading half on one log (and RecBole siblings); raises only ``InputError``."""
    rejections = Rejections(lenient=lenient)
    users, items = IdEncoder("user"), IdEncoder("item")
    read = dict(rejections=rejections, encoding=encoding, batch_rows=3)
    source = open_table(log, format=fmt, **read)
    events = read_events(
        source, users=users, items=items, rejections=rejections, explicit_roles={}, event_weights=event_weights or {}
    )
    table = None
    if items_table is not None:
        table = read_side_table(items_table, kind="item", encoder=items, **read)
    users.finish()
    items.finish()
    user_codes, item_codes = users.codes(events.user_batches), items.codes(events.item_batches)
    assert len(user_codes) == len(item_codes) == events.num_events
    assert (user_codes < len(users)).all() and (item_codes < len(items)).all()
    pairs = dedup_events(Events(user_codes, item_codes, *events.take_arrays()), num_items=len(items))
    assert len(pairs) <= len(user_codes)
    if table is not None:
        roles = detect_roles(
            table.chunk.table, table.types, explicit={r: None for r in ("text", "categorical", "multi", "numeric")},
            multi_separator=None, numeric_buckets=3, text_min_length=30, path=table.path,
        )
        node = items.codes(table.handle).astype(np.int64)
        attribute_edges(table.chunk, roles, node, numeric_buckets=3, path=table.path, rejections=rejections)
    if kg is not None:
        read_kg_edges(kg, items=items, link_path=link, item_map=np.arange(len(items)), **read)
    if not lenient:
        assert rejections.total == 0


def check(call) -> None:
    """Run ``call``; an ``InputError`` must say something, nothing else may escape.

    ``--hypothesis-show-statistics`` shows how many inputs loaded and how many were refused.
    """
    try:
        call()
    except InputError as exc:
        assert str(exc).strip()
        event("refused with InputError")
    else:
        event("loaded")


def delimited_text(header: list[str] | None, rows: list[list[str]], sep: str, end: str) -> str:
    lines = ([sep.join(header)] if header is not None else []) + [sep.join(row) for row in rows]
    return end.join(lines) + (end if lines else "")


good_headers = st.sampled_from([["user_id", "item_id"], ["user_id", "item_id", "timestamp"], ["user", "item", "rating"],
                                ["user_id", "item_id", "event"]])
headers = st.one_of(
    good_headers, good_headers, good_headers, st.none(),
    st.sampled_from([["a", "b"], ["user_id", "user_id"], ["", "item"], ["user", "item", "rating", "time"]]),
    st.lists(st.sampled_from(LOG_NAMES), min_size=1, max_size=5),
)
raw_tail = st.sampled_from([b""] * 9 + [b"\xff\xfe\n", b"\xc3\n", b"\x00\x00"])
encodings = st.sampled_from(["utf-8"] * 12 + ["latin-1", "utf-16", "nope", "rot13"])


def write_bytes(path: Path, data: bytes, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


@FUZZ
@given(header=headers, rows=rows_of, end=line_end, tail=raw_tail, bom=st.booleans(), lenient=st.booleans(),
       encoding=encodings, weights=st.sampled_from([None, {"view": 1.0, "click": 2.0}]))
# Found by a longer random run: UTF-16 without a BOM raised UnicodeError from pyarrow's transcoder.
@example(header=None, rows=[["", "\x00"]], end="\r", tail=b"\xc3\n", bom=False, lenient=False, encoding="utf-16", weights=None)
def test_csv_reader(workdir, header, rows, end, tail, bom, lenient, encoding, weights):
    path = write_bytes(workdir / "log.csv", delimited_text(header, rows, ",", end).encode("utf-8") + tail, bom=bom)
    check(lambda: ingest(path, lenient=lenient, encoding=encoding, event_weights=weights))


@FUZZ
@given(header=headers, rows=rows_of, end=line_end, tail=raw_tail, lenient=st.booleans(), sep=st.sampled_from(["\t", " ", ";"]))
def test_tsv_reader(workdir, header, rows, end, tail, lenient, sep):
    # A .txt file goes through delimiter/header/LightGCN detection; a .tsv one straight to the tab reader.
    name = "log.tsv" if sep == "\t" else "log.txt"
    path = write_bytes(workdir / name, delimited_text(header, rows, sep, end).encode("utf-8") + tail)
    check(lambda: ingest(path, lenient=lenient))


def _parquet_column(kind: str, values: list):
    """An Arrow array of one fuzzed kind from drawn Python values."""
    n = len(values)
    if kind == "string":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if kind == "large_string":
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())
    if kind == "dictionary":
        return pa.array([None if v is None else str(v) for v in values], pa.string()).dictionary_encode()
    if kind == "int64":
        return pa.array([None if v is None else hash(v) % 7 - 2 for v in values], pa.int64())
    if kind == "float64":
        choices = [0.0, 1.0, 2.5, math.nan, math.inf, -math.inf, 1e20, -0.0, None]
        return pa.array([choices[hash(v) % len(choices)] if v is not None else None for v in values], pa.float64())
    if kind == "bool":
        return pa.array([None if v is None else bool(hash(v) % 2) for v in values], pa.bool_())
    if kind == "list":
        return pa.array([None if v is None else [hash(v) % 5, 1] for v in values], pa.list_(pa.int64()))
    if kind == "list_string":
        return pa.array([None if v is None else [str(v), "a"] for v in values], pa.list_(pa.string()))
    if kind == "struct":
        return pa.array([None if v is None else {"a": hash(v) % 3} for v in values], pa.struct([("a", pa.int64())]))
    if kind == "timestamp":
        return pa.array([None if v is None else hash(v) % 10**12 for v in values], pa.timestamp("ms"))
    if kind == "date":
        return pa.array([None if v is None else hash(v) % 30000 for v in values], pa.date32())
    if kind == "binary":
        return pa.array([None if v is None else (b"\xff" + str(v).encode()) for v in values], pa.binary())
    if kind == "null":
        return pa.nulls(n)
    raise AssertionError(kind)


PARQUET_KINDS = ["string", "large_string", "dictionary", "int64", "float64", "bool", "list", "list_string", "struct",
                 "timestamp", "date", "binary", "null"]


id_kind = st.sampled_from(["string", "string", "int64", "dictionary"] + PARQUET_KINDS)


@FUZZ
@given(
    user_kind=id_kind,
    item_kind=id_kind,
    columns=st.lists(st.tuples(st.sampled_from(LOG_NAMES[:-1]), st.sampled_from(PARQUET_KINDS)), max_size=3,
                     unique_by=lambda c: c[0]),
    values=st.lists(st.one_of(st.none(), cell), max_size=8),
    lenient=st.booleans(),
    truncate=st.sampled_from([0] * 9 + [40]),
)
def test_parquet_reader(workdir, user_kind, item_kind, columns, values, lenient, truncate):
    kinds = dict([("user_id", user_kind), ("item_id", item_kind), *columns])
    table = pa.table({name: _parquet_column(kind, values) for name, kind in kinds.items()})
    path = workdir / "log.parquet"
    pq.write_table(table, path, row_group_size=4)
    if truncate:
        path.write_bytes(path.read_bytes()[:-truncate])
    check(lambda: ingest(path, lenient=lenient))


json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True), token,
)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner, max_size=2), max_leaves=6)
id_value = st.one_of(st.sampled_from(["u1", "u2", "i1", "i2", 7, 8]), json_value)
log_object = st.fixed_dictionaries(
    {"user_id": id_value, "item_id": id_value}, optional={"timestamp": json_value, "rating": json_value, "event": json_value}
).map(json.dumps)
json_line = st.one_of(
    log_object, log_object, log_object,
    st.dictionaries(st.sampled_from(LOG_NAMES), json_value, max_size=5).map(json.dumps),
    st.sampled_from(["", "   ", "[1, 2]", '"text"', "3", "{", '{"user_id": 1, "item_id": 1}}', '{"user_id": ' + "1" * 5000 + ', "item_id": 2}',
                     '{"user_id": NaN, "item_id": Infinity}', "[" * 3000 + "]" * 3000, '{"user_id": "u1", "item_id": "i1"}']),
    token,
)


@FUZZ
@given(lines=st.lists(json_line, max_size=8), end=line_end, tail=raw_tail, lenient=st.booleans())
def test_jsonl_reader(workdir, lines, end, tail, lenient):
    path = write_bytes(workdir / "log.jsonl", end.join(lines).encode("utf-8") + tail)
    check(lambda: ingest(path, lenient=lenient))


RECBOLE_FIELDS = ["user_id:token", "item_id:token", "rating:float", "timestamp:float", "tags:token_seq", "user_id:bogus",
                  "item_id", "vec:float_seq"]
ITEM_FIELDS = ["item_id:token", "title:token_seq", "year:float", "class:token_seq", "genre:token"]
KG_FIELDS = ["head_id:token", "relation_id:token", "tail_id:token"]
LINK_FIELDS = ["item_id:token", "entity_id:token"]


def _atomic(fields: list[str], rows: list[list[str]]) -> str:
    return "\t".join(fields) + "\n" + "".join("\t".join(row) + "\n" for row in rows)


@FUZZ
@given(
    fields=st.one_of(*[st.just(["user_id:token", "item_id:token", "rating:float"])] * 3,
                     st.lists(st.sampled_from(RECBOLE_FIELDS), min_size=1, max_size=4)),
    rows=rows_of,
    item_rows=st.one_of(st.none(), rows_of),
    kg_rows=st.one_of(st.none(), rows_of),
    link_rows=st.one_of(st.none(), rows_of),
    lenient=st.booleans(),
)
# Found by a longer random run: the integer id "+4" broke Arrow's int64 cast in the id order.
@example(fields=["user_id:token", "item_id:token", "rating:float", "timestamp:float"], rows=[["", "", "", " "]],
         item_rows=[["+4", "", "", "", ""]], kg_rows=None, link_rows=None, lenient=True)
# And a KG read when every log row was refused (no item at all) indexed an empty item map.
@example(fields=["user_id:token", "item_id:token", "rating:float", "timestamp:float"], rows=[["", "", "0\t"]],
         item_rows=None, kg_rows=[["u1", "u1", "u1"]], link_rows=None, lenient=True)
def test_recbole_reader(workdir, fields, rows, item_rows, kg_rows, link_rows, lenient):
    folder = workdir / "recbole"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    log = folder / "data.inter"
    log.write_text(_atomic(fields, rows), encoding="utf-8")
    paths = {}
    for suffix, header, extra in ((".item", ITEM_FIELDS, item_rows), (".kg", KG_FIELDS, kg_rows), (".link", LINK_FIELDS, link_rows)):
        if extra is not None:
            paths[suffix] = folder / f"data{suffix}"
            paths[suffix].write_text(_atomic(header, extra), encoding="utf-8")
    check(lambda: ingest(log, lenient=lenient, fmt="recbole", items_table=paths.get(".item"), kg=paths.get(".kg"),
                         link=paths.get(".link") if ".kg" in paths else None))


lightgcn_token = st.one_of(st.integers(0, 12).map(str), st.sampled_from(["x", "-1", "1.0", "٣", "00", "1e3", "", "\u2003"]))
lightgcn_line = st.lists(lightgcn_token, max_size=6).map(" ".join)


@FUZZ
@given(lines=st.lists(lightgcn_line, max_size=8), end=line_end, tail=raw_tail, lenient=st.booleans(),
       fmt=st.sampled_from(["lightgcn", "lightgcn", "auto"]))
def test_lightgcn_reader(workdir, lines, end, tail, lenient, fmt):
    path = write_bytes(workdir / "train.txt", end.join(lines).encode("utf-8") + tail)
    check(lambda: ingest(path, lenient=lenient, fmt=fmt))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    rows=st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "", "nan"]), st.sampled_from(["i1", "i2", "i3", "i4", " "]),
                            st.sampled_from(["1", "2", "3", "x", "1e20", ""])), max_size=14),
    test_rows=st.one_of(st.none(), st.lists(st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(["i1", "i5"]), st.just("9")), max_size=3)),
    lenient=st.booleans(),
    k_core=st.sampled_from([0, 0, 2, 5]),
    min_user_count=st.sampled_from([0, 0, 3]),
    split=st.sampled_from(["random", "temporal"]),
    valid_fraction=st.sampled_from([0.0, 0.2]),
)
def test_full_build_never_crashes(workdir, rows, test_rows, lenient, k_core, min_user_count, split, valid_fraction):
    log = workdir / "full.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(",".join(r) + "\n" for r in rows))
    options = dict(interactions=str(log), lenient=lenient, k_core=k_core, min_user_count=min_user_count,
                   valid_fraction=valid_fraction, split=split)
    if test_rows is not None:
        test = workdir / "full_test.csv"
        test.write_text("user_id,item_id,timestamp\n" + "".join(",".join(r) + "\n" for r in test_rows))
        options.update(test=str(test), split="given")
    try:
        graph = build_graph(BuildConfig(**options))
    except InputError as exc:
        assert str(exc).strip()
        return
    counts = graph.counts()
    assert counts["interactions"] > 0 and counts["train"] > 0
    graph.check()


side_cell = st.sampled_from(["i1", "i2", "i3", "i9", "u1", "u2", "", "nan", "3", "4.5", "x", "a|b", "a b c d e f", "1e20", "+4"])
side_rows = st.lists(st.lists(side_cell, min_size=3, max_size=3), max_size=6)


def _side_table(path: Path, header: list[str], rows: list[list[str]], fmt: str) -> Path:
    """A side table in CSV, JSON Lines (numbers stay numbers) or Parquet (all strings)."""
    path = path.with_suffix("." + fmt)
    if fmt == "csv":
        path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    elif fmt == "jsonl":
        def cell(text: str):
            try:
                return json.loads(text)
            except ValueError:
                return text
        path.write_text("".join(json.dumps(dict(zip(header, map(cell, r)))) + "\n" for r in rows) or "\n")
    else:
        pq.write_table(pa.table({h: pa.array([r[i] for r in rows], pa.string()) for i, h in enumerate(header)}), path)
    return path


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    item_header=st.sampled_from([["item_id", "title", "price"], ["title", "genre", "price"], ["id", "tags", "year"]]),
    item_rows=side_rows, user_rows=side_rows, kg_rows=side_rows, social_rows=side_rows,
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]), lenient=st.booleans(),
)
def test_full_build_with_side_tables_never_crashes(workdir, item_header, item_rows, user_rows, kg_rows, social_rows, fmt, lenient):
    log = workdir / "side_log.csv"
    log.write_text("user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u in range(1, 4) for i in range(1, 4)))
    options = dict(
        interactions=str(log), lenient=lenient,
        items=str(_side_table(workdir / "side_items", item_header, item_rows, fmt)),
        users=str(_side_table(workdir / "side_users", ["user_id", "age", "country"], user_rows, fmt)),
        kg=str(_side_table(workdir / "side_kg", ["head", "relation", "tail"], kg_rows, fmt)),
        social=str(_side_table(workdir / "side_social", ["user_id", "friend_id", "w"], social_rows, fmt)),
    )
    try:
        graph = build_graph(BuildConfig(**options))
    except InputError as exc:
        assert str(exc).strip()
        return
    graph.check()
