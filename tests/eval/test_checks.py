"""eval.checks.positive_int: the one integer check, value first and name second."""

from __future__ import annotations

import numpy as np
import pytest

from eval.checks import positive_int


def test_integers_at_or_above_the_minimum_come_back_as_int():
    assert positive_int(3, "k") == 3
    value = positive_int(np.int64(0), "seed", minimum=0)
    assert value == 0 and type(value) is int


@pytest.mark.parametrize(
    "value, minimum, error, message",
    [
        (0, 1, ValueError, "k must be an integer >= 1, got 0"),
        (-1, 0, ValueError, "k must be an integer >= 0, got -1"),
        (2.0, 1, TypeError, "k must be an integer >= 1, got float 2.0"),
        (True, 1, TypeError, "k must be an integer >= 1, got bool True"),
        ("5", 1, TypeError, "k must be an integer >= 1, got str '5'"),
    ],
)
def test_bad_values_name_the_argument_and_the_value(value, minimum, error, message):
    with pytest.raises(error) as caught:
        positive_int(value, "k", minimum=minimum)
    assert str(caught.value) == message
