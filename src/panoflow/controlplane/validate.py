"""Input validation against the model's shapes: required members, types, enums, lengths, ranges and patterns.

Messages follow AWS's wording (``Value 'x' at 'Name' failed to satisfy constraint: ...``) and every problem
names its member by dotted path (``ManifestPayload.PayloadData``), both in the message and in ``Fields``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.model import ServiceModel

__all__ = ["validate_input"]

#: members bound to the URI or query string arrive as strings and are converted before validation
_MAX_REPORTED = 10


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str] | None:
    """The model's pattern for Python: ``.`` also matches newlines (Panorama accepts multi-line manifests
    under ``^.+$``) and a final ``$`` means the end of the value, not "before a final newline"."""
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1] + r"\Z"
    try:
        return re.compile(text, re.DOTALL)
    except re.error:  # a Java-only construct: the pattern is not checked rather than failing every request
        return None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."


class _Walker:
    def __init__(self, model: ServiceModel):
        self.shapes = model.shapes
        self.problems: list[tuple[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def walk(self, shape_name: str, value: Any, path: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        check = getattr(self, f"_{kind}", None)
        if check is not None:
            check(shape, value, path)

    def _structure(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path or "body", "Member must be an object")
            return
        members: dict[str, Any] = shape["members"]
        for name in shape.get("required", ()):
            if value.get(name) is None:
                self.fail(_join(path, name), "Member must not be null")
        if shape.get("union"):
            present = [k for k in members if value.get(k) is not None]
            if len(present) != 1:
                self.fail(path or "body", "Member must set exactly one of: " + ", ".join(members))
        for name, member in members.items():
            if value.get(name) is not None:
                self.walk(member["shape"], value[name], _join(path, name))

    def _list(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, "Member must be a list")
            return
        self._length(shape, len(value), value, path)
        for i, item in enumerate(value):
            self.walk(shape["member"]["shape"], item, f"{path}.{i + 1}")

    def _map(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a map")
            return
        self._length(shape, len(value), value, path)
        for key, item in value.items():
            self.walk(shape["key"]["shape"], key, f"{path}.key")
            self.walk(shape["value"]["shape"], item, f"{path}.{key}")

    def _string(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, "Member must be a string")
            return
        self._length(shape, len(value), value, path)
        if "enum" in shape and value not in shape["enum"]:
            self.fail(path, f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: Member must "
                            f"satisfy enum value set: [{', '.join(shape['enum'])}]")
            return
        pattern = _pattern(shape["pattern"]) if "pattern" in shape else None
        if pattern is not None and pattern.search(value) is None:
            self.fail(path, f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: Member must "
                            f"satisfy regular expression pattern: {shape['pattern']}")

    def _integer(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "Member must be an integer")
            return
        if "min" in shape and value < shape["min"]:
            self.fail(path, f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have "
                            f"value greater than or equal to {shape['min']}")
        if "max" in shape and value > shape["max"]:
            self.fail(path, f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have "
                            f"value less than or equal to {shape['max']}")

    _long = _integer

    def _boolean(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self.fail(path, "Member must be a boolean")

    def _length(self, shape: dict[str, Any], length: int, value: Any, path: str) -> None:
        if "min" in shape and length < shape["min"]:
            self.fail(path, f"Value at '{path}' failed to satisfy constraint: Member must have length "
                            f"greater than or equal to {shape['min']}")
        if "max" in shape and length > shape["max"]:
            self.fail(path, f"Value at '{path}' failed to satisfy constraint: Member must have length less "
                            f"than or equal to {shape['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_input(model: ServiceModel, shape_name: str, value: dict[str, Any]) -> None:
    """Raise ``ValidationException`` listing every problem of ``value`` against input shape ``shape_name``."""
    walker = _Walker(model)
    walker.walk(shape_name, value, "")
    if not walker.problems:
        return
    problems = walker.problems[:_MAX_REPORTED]
    count = len(walker.problems)
    message = f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(
        m if m.startswith("Value") else f"'{p}': {m}" for p, m in problems)
    raise ApiError("ValidationException", message, Reason="FIELD_VALIDATION_FAILED",
                   Fields=[{"Name": p, "Message": m} for p, m in problems])
