"""Id encoding: the ordering rule, independence from row order, lookup."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kg.ids import IdEncoder, external_order


def encode_batches(batches):
    encoder = IdEncoder("item")
    handles = [encoder.add(pa.array(b, pa.string())) for b in batches]
    encoder.finish()
    return encoder, [encoder.codes(h) for h in handles]


def test_numeric_ids_sort_as_numbers_and_spellings_stay_distinct():
    encoder, (codes,) = encode_batches([["10", "9", "007", "7", "-1"]])
    assert encoder.ids.to_pylist() == ["-1", "007", "7", "9", "10"]
    assert codes.tolist() == [4, 3, 1, 2, 0]


def test_any_non_integer_id_makes_the_order_textual():
    encoder, _ = encode_batches([["10", "9", "b", "a"]])
    assert encoder.ids.to_pylist() == ["10", "9", "a", "b"]
    assert external_order(pa.array(["é", "z", "a"])).tolist() == [2, 1, 0]


def test_refused_rows_add_no_id_and_lookup_marks_unknown():
    encoder = IdEncoder("user")
    handle = encoder.add(pa.array(["a", "", "b"]), keep=np.array([True, False, True]))
    encoder.finish()
    assert encoder.ids.to_pylist() == ["a", "b"] and len(encoder) == 2
    assert encoder.codes(handle).tolist() == [0, 1]
    assert encoder.lookup(pa.array(["b", "zz", "a"])).tolist() == [1, -1, 0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 50).map(str), st.sampled_from(["x", "y", "z10"])), min_size=1, max_size=60),
    st.integers(1, 7),
    st.randoms(use_true_random=False),
)
def test_indices_do_not_depend_on_row_order_or_batching(ids, batch, random):
    shuffled = list(ids)
    random.shuffle(shuffled)
    first, (codes_a,) = encode_batches([ids])
    second, parts = encode_batches([shuffled[i:i + batch] for i in range(0, len(shuffled), batch)])
    assert first.ids.to_pylist() == second.ids.to_pylist()
    # Each id maps to the same index however the rows came.
    mapping = dict(zip(ids, codes_a.tolist()))
    assert [mapping[i] for i in shuffled] == np.concatenate(parts).tolist()
    vocab = first.ids.to_pylist()
    assert len(vocab) == len(set(ids))
    if all(v.isdigit() for v in vocab):
        assert vocab == sorted(vocab, key=lambda v: (int(v), v))
    else:
        assert vocab == sorted(vocab)
