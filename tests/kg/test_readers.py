"""Readers for every format: columns, values, line numbers, detection and bad files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kg import InputError, Rejections, detect_format, open_table
from kg.readers import open_delimited


def strict() -> Rejections:
    return Rejections(lenient=False)


def test_csv_with_header_keeps_id_spelling_and_lines(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n007,i1,10\n7,i2,11\n")
    source = open_table(path, rejections=strict())
    chunk = source.read_all()
    assert source.columns == ["user_id", "item_id", "timestamp"]
    assert source.notes["header"] is True and source.notes["format"] == "csv"
    assert chunk.table.column("user_id").to_pylist() == ["007", "7"]
    assert chunk.lines.tolist() == [2, 3]


def test_headerless_tsv_with_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"1\t10\t5\r\n2\t11\t6\r\n\r\n3\t12\t7\r\n")
    source = open_table(path, rejections=strict())
    chunk = source.read_all()
    assert source.notes["delimiter"] == "\t" and source.notes["header"] is False
    assert chunk.table.column("column_3").to_pylist() == ["5", "6", "7"]
    # The blank line 3 is skipped and counted; line numbers stay physical.
    assert chunk.lines.tolist() == [1, 2, 4]
    assert source.notes["blank lines skipped"] == 1


def test_wrong_field_count_names_the_line_strict_and_counts_lenient(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item\na,b\nc\nd,e\nf,g,h\ni,j\n")
    with pytest.raises(InputError) as info:
        open_table(path, rejections=strict()).read_all()
    assert info.value.line == 3 and info.value.path == str(path)
    assert "wrong number of fields" in str(info.value) and "expected 2 fields" in str(info.value)
    lenient = Rejections(lenient=True)
    chunk = open_table(path, rejections=lenient).read_all()
    assert chunk.table.column("user").to_pylist() == ["a", "d", "i"]
    # Rows after the refused ones keep their physical line numbers.
    assert chunk.lines.tolist() == [2, 4, 6]
    assert lenient.report() == {str(path): {"wrong number of fields": 2}}
    assert [e["line"] for e in lenient.examples()[str(path)]["wrong number of fields"]] == [3, 5]


def test_recbole_typed_header(tmp_path):
    path = tmp_path / "x.item"
    path.write_text('item_id:token\tmovie_title:token_seq\tclass:token_seq\n1\tThe "Best" Film\tDrama Comedy\n')
    source = open_table(path, rejections=strict())
    assert source.columns == ["item_id", "movie_title", "class"]
    assert source.types == {"item_id": "token", "movie_title": "token_seq", "class": "token_seq"}
    # Tab files are read without quoting: quote marks are part of the value.
    assert source.read_all().table.column("movie_title").to_pylist() == ['The "Best" Film']


def test_parquet_keeps_types_and_numbers_rows(tmp_path):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": ["a", "b", "c"], "item": [1, 2, 3]}), path, row_group_size=2)
    source = open_table(path, rejections=strict(), batch_rows=2)
    chunks = list(source.batches())
    assert [c.lines.tolist() for c in chunks] == [[1, 2], [3]]
    assert pa.types.is_integer(chunks[0].table.schema.field("item").type)
    with pytest.raises(InputError, match="no column 'rating'; the file has columns \\['user', 'item'\\]"):
        list(source.batches(["user", "rating"]))


def test_jsonl_values_lists_and_bad_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    rows = [{"user": "a", "item": 1, "tags": ["x", "y"]}, {"user": "b", "item": 2.5, "ok": True}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n{broken\n[1, 2]\n")
    with pytest.raises(InputError) as info:
        open_table(path, rejections=strict()).read_all()
    assert info.value.line == 4 and "invalid JSON" in str(info.value)
    lenient = Rejections(lenient=True)
    source = open_table(path, rejections=lenient)
    table = source.read_all().table
    assert source.types == {"tags": "list"}
    assert table.column("item").to_pylist() == ["1", "2.5"]
    assert table.column("tags").to_pylist() == ["x|y", None]
    assert table.column("ok").to_pylist() == [None, "true"]
    assert lenient.report() == {str(path): {"invalid JSON": 1, "not a JSON object": 1}}


def test_lightgcn_lines(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("0 5 6 7 8\n1 5\n2\n3 9 10 11 12 13\n")
    assert detect_format(path) == "lightgcn"
    source = open_table(path, rejections=strict())
    chunk = source.read_all()
    assert chunk.table.column("user").to_pylist() == ["0"] * 4 + ["1"] + ["3"] * 5
    assert chunk.table.column("item").to_pylist()[:5] == ["5", "6", "7", "8", "5"]
    assert chunk.lines.tolist() == [1] * 4 + [2] + [4] * 5
    assert source.notes["lines with a user and no items"] == 1


def test_detect_format_by_suffix_and_content(tmp_path):
    (tmp_path / "a.txt").write_text("1\t2\t3\n")
    (tmp_path / "b.dat").write_bytes(b"PAR1....")
    (tmp_path / "c.log").write_text('{"user": 1}\n')
    assert detect_format(tmp_path / "a.txt") == "delimited"
    assert detect_format(tmp_path / "b.dat") == "parquet"
    assert detect_format(tmp_path / "c.log") == "jsonl"
    assert detect_format(tmp_path / "x.inter") == "recbole"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (b"user,user\n1,2\n", "names column 'user' twice"),
    ],
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        open_table(path, rejections=strict())
    assert info.value.path == str(path)


def test_wrong_encoding_names_the_line(tmp_path):
    path = tmp_path / "items.csv"
    lines = ["item_id,title"] + [f"i{i},Title {i}" for i in range(50)] + ["i50,Caf\xe9"]
    path.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    with pytest.raises(InputError) as info:
        open_table(path, rejections=strict()).read_all()
    assert info.value.line == 52 and "not valid utf-8" in str(info.value) and "--encoding" in str(info.value)
    # The right encoding reads it.
    chunk = open_table(path, rejections=strict(), encoding="latin-1").read_all()
    assert chunk.table.column("title").to_pylist()[-1] == "Café"
    # Lenient mode refuses only that row.
    lenient = Rejections(lenient=True)
    chunk = open_table(path, rejections=lenient).read_all()
    assert chunk.num_rows == 50 and lenient.report() == {str(path): {"invalid utf-8": 1}}


def test_columns_option_names_headerless_files(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("1\t2\t3\n")
    source = open_delimited(path, rejections=strict(), columns=["user", "item", "weight"])
    assert source.columns == ["user", "item", "weight"]
    with pytest.raises(InputError, match="expected 2 columns \\(user, item\\) as given, the file has 3"):
        open_delimited(path, rejections=strict(), columns=["user", "item"])


def test_batches_cover_a_larger_file_exactly(tmp_path):
    path = tmp_path / "big.csv"
    n = 30_000
    frame = pd.DataFrame({"user": np.arange(n) % 97, "item": np.arange(n)})
    frame.to_csv(path, index=False)
    source = open_delimited(path, rejections=strict(), batch_rows=1000)
    chunks = list(source.batches())
    assert len(chunks) > 3
    lines = np.concatenate([c.lines for c in chunks])
    assert np.array_equal(lines, np.arange(2, n + 2))
    items = np.concatenate([np.asarray(c.table.column("item").to_pylist(), dtype=np.int64) for c in chunks])
    assert np.array_equal(items, np.arange(n))
