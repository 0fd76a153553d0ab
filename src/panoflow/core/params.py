"""The four parameter node types Panorama defines: ``string``, ``int32``, ``float32`` and ``boolean``.

Each is a :class:`~panoflow.core.bases.ParameterType`: ``check(value)`` returns ``""`` when a JSON value fits
the type, else a one-line message; ``convert(text)`` turns a command-line string (``--param threshold=0.5``)
into a value, raising :class:`ValueError` with a readable message when it cannot. Plugins add more types
through the ``panoflow_parameter_types`` hook; these built-ins are what manifests may use today.
"""

from __future__ import annotations

import math
from typing import Any

from panoflow.core.bases import ParameterType

__all__ = [
    "BOOLEAN",
    "BUILTIN_PARAMETER_TYPES",
    "FLOAT32",
    "FLOAT32_MAX",
    "INT32",
    "INT32_MAX",
    "INT32_MIN",
    "STRING",
    "describe_value",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
#: the largest finite IEEE 754 single-precision value
FLOAT32_MAX = 3.4028234663852886e38

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})


def describe_value(value: Any) -> str:
    """A short, bounded description of any JSON value for messages (never a huge or nested repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"a {value.bit_length()}-bit integer"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _check_string(value: Any) -> str:
    return "" if isinstance(value, str) else f"expected a string, got {describe_value(value)}"


def _check_int32(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an int32 integer, got {describe_value(value)}"
    if not INT32_MIN <= value <= INT32_MAX:
        return f"{describe_value(value)} is outside the int32 range {INT32_MIN}..{INT32_MAX}"
    return ""


def _check_float32(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a float32 number, got {describe_value(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{describe_value(value)} is not a finite number"
    if abs(value) > FLOAT32_MAX:  # exact for ints of any size
        return f"{describe_value(value)} is outside the float32 range (magnitude at most {FLOAT32_MAX:.7g})"
    return ""


def _check_boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else f"expected true or false, got {describe_value(value)}"


def _convert_string(text: str) -> str:
    return text


def _convert_int32(text: str) -> int:
    stripped = text.strip()
    if not stripped.lstrip("+-").isdigit() or not stripped.isascii():
        raise ValueError(f"{describe_value(text)} is not an integer")
    value = int(stripped, 10)
    problem = _check_int32(value)
    if problem:
        raise ValueError(problem)
    return value


def _convert_float32(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{describe_value(text)} is not a number") from None
    problem = _check_float32(value)
    if problem:
        raise ValueError(problem)
    return value


def _convert_boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{describe_value(text)} is not a boolean (use true/false, 1/0 or yes/no)")


STRING = ParameterType(name="string", python_type=str, check=_check_string, convert=_convert_string)
INT32 = ParameterType(name="int32", python_type=int, check=_check_int32, convert=_convert_int32)
FLOAT32 = ParameterType(name="float32", python_type=float, check=_check_float32, convert=_convert_float32)
BOOLEAN = ParameterType(name="boolean", python_type=bool, check=_check_boolean, convert=_convert_boolean)

#: the built-in parameter types, keyed by the ``interface`` a parameter node names
BUILTIN_PARAMETER_TYPES: dict[str, ParameterType] = {t.name: t for t in (BOOLEAN, FLOAT32, INT32, STRING)}
