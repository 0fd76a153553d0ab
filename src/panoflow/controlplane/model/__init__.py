"""The Panorama service model (botocore's ``panorama`` 2019-07-24 JSON, vendored) and routing derived from it.

The control plane never hand-writes a route: every operation's method, URI template, input member locations
and output/error shapes come from ``service-2.json.gz`` in this folder. :data:`MODEL_ROOT` is a botocore data
path (``<root>/panorama/2019-07-24/...``), usable as ``AWS_DATA_PATH`` or a loader search path.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["MODEL_ROOT", "Operation", "ServiceModel", "load_model"]

#: botocore data path holding ``panorama/2019-07-24/service-2.json.gz``
MODEL_ROOT: Path = Path(__file__).resolve().parent
API_VERSION = "2019-07-24"

_LABEL = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")


@dataclass(frozen=True)
class Operation:
    """One operation of the model with its compiled route."""

    name: str
    method: str
    uri: str
    input_shape: str | None
    output_shape: str | None
    errors: tuple[str, ...]
    pattern: re.Pattern[str] = field(repr=False, compare=False)
    #: number of literal characters in the URI template (more specific routes win)
    specificity: int = 0

    def match(self, raw_path: str) -> dict[str, str] | None:
        """URI labels (percent-decoded) when ``raw_path`` (still percent-encoded) fits this operation, else
        None."""
        m = self.pattern.fullmatch(raw_path)
        if m is None:
            return None
        return {k: unquote(v) for k, v in m.groupdict().items()}


def _compile(uri: str) -> tuple[re.Pattern[str], int]:
    path = uri.split("?", 1)[0]
    parts: list[str] = []
    pos = 0
    literal = 0
    for m in _LABEL.finditer(path):
        parts.append(re.escape(path[pos:m.start()]))
        literal += m.start() - pos
        parts.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
        pos = m.end()
    parts.append(re.escape(path[pos:]))
    literal += len(path) - pos
    return re.compile("".join(parts)), literal


class ServiceModel:
    """The parsed model: shapes, operations, and a router from (method, raw path) to an operation."""

    def __init__(self, doc: dict[str, Any]):
        self.metadata: dict[str, Any] = doc["metadata"]
        self.shapes: dict[str, dict[str, Any]] = doc["shapes"]
        ops = []
        for name, raw in doc["operations"].items():
            pattern, literal = _compile(raw["http"]["requestUri"])
            ops.append(Operation(
                name=name, method=raw["http"]["method"].upper(), uri=raw["http"]["requestUri"],
                input_shape=(raw.get("input") or {}).get("shape"),
                output_shape=(raw.get("output") or {}).get("shape"),
                errors=tuple(e["shape"] for e in raw.get("errors", ())),
                pattern=pattern, specificity=literal,
            ))
        self.operations: dict[str, Operation] = {op.name: op for op in ops}
        self._routes = sorted(ops, key=lambda op: -op.specificity)

    def route(self, method: str, raw_path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """``(operation, labels, path_known)``: path_known is True when some operation has this path (any
        method)."""
        path_known = False
        for op in self._routes:
            labels = op.match(raw_path)
            if labels is None:
                continue
            path_known = True
            if op.method == method.upper():
                return op, labels, True
        return None, {}, path_known

    def error_status(self, code: str) -> int:
        """The HTTP status the model gives error shape ``code`` (500 for an unknown one)."""
        shape = self.shapes.get(code, {})
        return int(shape.get("error", {}).get("httpStatusCode", 500))


@lru_cache(maxsize=1)
def load_model() -> ServiceModel:
    """The vendored Panorama model (parsed once per process)."""
    path = MODEL_ROOT / "panorama" / API_VERSION / "service-2.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return ServiceModel(json.load(f))
