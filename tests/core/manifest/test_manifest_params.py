"""The built-in parameter types (panoflow.core.params)."""

from __future__ import annotations

import math

import pytest

from panoflow.core.bases import ParameterType
from panoflow.core.params import BUILTIN_PARAMETER_TYPES, FLOAT32_MAX, INT32_MAX, INT32_MIN, describe_value

INT32 = BUILTIN_PARAMETER_TYPES["int32"]
FLOAT32 = BUILTIN_PARAMETER_TYPES["float32"]
BOOLEAN = BUILTIN_PARAMETER_TYPES["boolean"]
STRING = BUILTIN_PARAMETER_TYPES["string"]


def test_the_four_panorama_types_are_parameter_types() -> None:
    assert sorted(BUILTIN_PARAMETER_TYPES) == ["boolean", "float32", "int32", "string"]
    for name, ptype in BUILTIN_PARAMETER_TYPES.items():
        assert isinstance(ptype, ParameterType)
        assert ptype.name == name
    assert (INT32.python_type, FLOAT32.python_type, BOOLEAN.python_type,
            STRING.python_type) == (int, float, bool, str)


@pytest.mark.parametrize("value", [0, 1, -1, INT32_MIN, INT32_MAX])
def test_int32_accepts_integers_in_range(value: int) -> None:
    assert INT32.check(value) == ""


@pytest.mark.parametrize("value", [INT32_MAX + 1, INT32_MIN - 1, 10**400, True, False, 1.0, "1", None, [1],
                                   {}])
def test_int32_rejects(value: object) -> None:
    assert INT32.check(value)


@pytest.mark.parametrize("value", [0, 0.5, -1e38, FLOAT32_MAX, -FLOAT32_MAX, 20, 2**100])
def test_float32_accepts_finite_numbers_in_range(value: float) -> None:
    assert FLOAT32.check(value) == ""


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e39, -1e39, 10**39, True, "0.5", None])
def test_float32_rejects(value: object) -> None:
    assert FLOAT32.check(value)


def test_boolean_and_string_take_only_their_type() -> None:
    assert BOOLEAN.check(True) == "" and BOOLEAN.check(False) == ""
    assert BOOLEAN.check(1) and BOOLEAN.check("true") and BOOLEAN.check(None)
    assert STRING.check("") == "" and STRING.check("x") == ""
    assert STRING.check(1) and STRING.check(None) and STRING.check(["x"])


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False),
     ("No", False)],
)
def test_boolean_convert(text: str, value: bool) -> None:
    assert BOOLEAN.convert(text) is value


@pytest.mark.parametrize(
    ("ptype", "text", "value"),
    [(INT32, "42", 42), (INT32, " -7 ", -7), (INT32, "+3", 3), (FLOAT32, "0.5", 0.5), (FLOAT32, "2", 2.0),
     (FLOAT32, "-1e3", -1000.0), (STRING, " keep spaces ", " keep spaces ")],
)
def test_convert(ptype: ParameterType, text: str, value: object) -> None:
    assert ptype.convert(text) == value
    assert type(ptype.convert(text)) is ptype.python_type


@pytest.mark.parametrize(
    ("ptype", "text"),
    [(INT32, "1.5"), (INT32, "abc"), (INT32, ""), (INT32, str(2**31)), (INT32, "١٢"), (FLOAT32, "nan"),
     (FLOAT32, "inf"), (FLOAT32, "1e39"), (FLOAT32, "x"), (BOOLEAN, "maybe"), (BOOLEAN, "")],
)
def test_convert_rejects_with_value_error(ptype: ParameterType, text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        ptype.convert(text)


def test_describe_value_is_short_for_any_value() -> None:
    assert describe_value("x" * 1000).endswith("...'")
    assert len(describe_value("x" * 1000)) < 70
    assert describe_value(10**1000) == "a 3322-bit integer"
    assert describe_value([[[]]]) == "an array" and describe_value({"a": 1}) == "an object"
    assert describe_value(None) == "null" and describe_value(True) == "true"
