"""eval.checks: the argument checks, value first and name second."""

from __future__ import annotations

import numpy as np
import pytest

from eval.checks import choice, int_or_auto, number, positive_float, positive_int


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


@pytest.mark.parametrize(
    "value, bounds, error, message",
    [
        (-1.0, {"low": 0.0, "low_open": True}, ValueError, "lr must be a finite number > 0, got -1.0"),
        (0.0, {"low": 0.0, "low_open": True}, ValueError, "lr must be a finite number > 0, got 0.0"),
        (1.5, {"low": 0.0, "high": 1.0, "high_open": True}, ValueError, 
         "lr must be a finite number in [0, 1), got 1.5"),
        (float("nan"), {}, ValueError, "lr must be a finite number, got nan"),
        (float("inf"), {"low": 0.0}, ValueError, "lr must be a finite number >= 0, got inf"),
        ("0.1", {"low": 0.0}, TypeError, "lr must be a finite number >= 0, got str '0.1'"),
        (True, {}, TypeError, "lr must be a finite number, got bool True"),
    ],
)
def test_numbers_out_of_bounds_name_the_argument_and_the_value(value, bounds, error, message):
    with pytest.raises(error) as caught:
        number(value, "lr", **bounds)
    assert str(caught.value) == message


def test_numbers_in_bounds_come_back_as_float():
    assert number(np.float32(0.5), "x", low=0.0, high=1.0) == 0.5 and type(number(1, "x")) is float
    assert positive_float(0, "l2", allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"l2 must be a finite number > 0 \(why\), got 0.0"):
        positive_float(0, "l2", reason=" (why)")


def test_integer_maximum_and_choices():
    assert positive_int(8, "order", maximum=8) == 8
    with pytest.raises(ValueError, match=r"order must be an integer in \[1, 8\], got 9"):
        positive_int(9, "order", maximum=8)
    assert choice("knn", "profile", ("mean", "knn")) == "knn"
    with pytest.raises(ValueError, match=r"profile must be one of \['mean', 'knn'\], got 'max'"):
        choice("max", "profile", ("mean", "knn"))


def test_int_or_auto():
    assert int_or_auto("auto", "epochs") == "auto" and int_or_auto(np.int64(3), "epochs") == 3
    with pytest.raises(TypeError, match="epochs must be an integer >= 1 or 'auto', got float 1.5"):
        int_or_auto(1.5, "epochs")
    with pytest.raises(ValueError, match="steps must be an integer >= 0 or 'auto', got -1"):
        int_or_auto(-1, "steps", minimum=0)
