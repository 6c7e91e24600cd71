"""Row checks: ids present, numbers numeric (property-tested), ISO dates, strict vs lenient."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kg import InputError, Rejections
from kg.readers.base import Chunk
from kg.validate import id_column, number_column


def chunk_of(values, column="c", first_line=2) -> Chunk:
    return Chunk(pa.table({column: pa.array(values, pa.string())}), np.arange(first_line, first_line + len(values)))


def test_id_column_trims_and_refuses_blanks():
    lenient = Rejections(lenient=True)
    ids, keep = id_column(chunk_of([" u1", "u2 ", "", None, "  "]), "c", role="user id", path="f.csv", rejections=lenient)
    assert keep.tolist() == [True, True, False, False, False]
    assert ids.dictionary_decode().to_pylist()[:2] == ["u1", "u2"]
    assert lenient.report() == {"f.csv": {"missing user id": 3}}
    assert [e["line"] for e in lenient.examples()["f.csv"]["missing user id"]] == [4, 5, 6]
    with pytest.raises(InputError) as info:
        id_column(chunk_of(["a", ""]), "c", role="item id", path="f.csv", rejections=Rejections())
    assert (info.value.path, info.value.line, info.value.column) == ("f.csv", 3, "c")
    assert "missing item id: expected a non-empty item id" in str(info.value)


def test_number_column_messages_and_minimum():
    with pytest.raises(InputError) as info:
        number_column(chunk_of(["1", "2", "abc"]), "c", role="timestamp", path="log.csv", rejections=Rejections(), dates=True)
    assert info.value.line == 4 and "non-numeric timestamp" in str(info.value) and "'abc'" in str(info.value)
    lenient = Rejections(lenient=True)
    values, keep = number_column(
        chunk_of(["1.5", "-2", "x", "", "1e3"]), "c", role="weight", path="log.csv", rejections=lenient, minimum=0.0
    )
    assert keep.tolist() == [True, False, False, False, True]
    assert values[0] == 1.5 and values[4] == 1000.0 and np.isnan(values[1:4]).all()
    assert lenient.report() == {"log.csv": {"non-numeric weight": 1, "missing weight": 1, "weight below 0": 1}}


def test_iso_dates_become_unix_seconds():
    values, keep = number_column(
        chunk_of(["2024-05-01", "2024-05-01T10:00:00Z", "2024-05-01 12:00:00+02:00", "1714557600"]),
        "c", role="timestamp", path="x", rejections=Rejections(), dates=True,
    )
    expected = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).timestamp()
    assert keep.all()
    assert values.tolist() == [expected, expected + 36000, expected + 36000, 1714557600.0]
    with pytest.raises(InputError, match="non-numeric timestamp"):
        number_column(chunk_of(["2024-13-45"]), "c", role="timestamp", path="x", rejections=Rejections(), dates=True)


def test_arrow_typed_columns_convert_directly():
    table = pa.table({
        "t": pa.array([0, 1_000_000], pa.timestamp("ms")),
        "d": pa.array([1, 2], pa.date32()),
        "n": pa.array([3, None], pa.int64()),
    })
    chunk = Chunk(table, np.array([1, 2]))
    t, _ = number_column(chunk, "t", role="timestamp", path="p", rejections=Rejections(), dates=True)
    d, _ = number_column(chunk, "d", role="timestamp", path="p", rejections=Rejections(), dates=True)
    assert t.tolist() == [0.0, 1000.0] and d.tolist() == [86400.0, 172800.0]
    with pytest.raises(InputError) as info:
        number_column(chunk, "n", role="weight", path="p", rejections=Rejections())
    assert info.value.line == 2 and "missing weight" in str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20))
def test_every_finite_float_spelling_parses_back(values):
    texts = [repr(v) for v in values] + [f"{v:.6e}" for v in values]
    parsed, keep = number_column(chunk_of(texts), "c", role="weight", path="x", rejections=Rejections())
    assert keep.all()
    assert parsed[: len(values)].tolist() == values
    assert np.allclose(parsed[len(values):], values, rtol=1e-6, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda s: s.strip() != "" and not any(c.isdigit() for c in s)))
def test_text_without_digits_is_never_a_number(text):
    lenient = Rejections(lenient=True)
    _, keep = number_column(chunk_of([text]), "c", role="weight", path="x", rejections=lenient)
    assert not keep.any() and lenient.total == 1
