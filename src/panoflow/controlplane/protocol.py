"""The rest-json wire protocol, driven by the model: requests into input dicts, output dicts and errors into
bytes.

Input members are read from where the model puts them (``location``: ``uri``, ``querystring``, ``header``;
else the JSON body). Outputs are rendered as botocore parses them: timestamps as epoch seconds, blobs as
base64. Errors carry ``x-amzn-ErrorType`` and a JSON body with ``message`` (what botocore reads) plus the
shape's modeled members.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from panoflow.controlplane.errors import ApiError, validation
from panoflow.controlplane.model import Operation, ServiceModel

__all__ = ["encode_error", "encode_output", "parse_input"]

#: request bodies larger than this are refused (the largest input, a manifest, is 51,200 characters)
MAX_BODY = 1024 * 1024


def _scalar(model: ServiceModel, shape_name: str, text: str, where: str) -> Any:
    """A uri/query/header string converted to the member's type (validation checks ranges afterwards)."""
    kind = model.shapes[shape_name]["type"]
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise validation(f"Value '{text[:64]}' at '{where}' failed to satisfy constraint: Member must be "
                             "an integer", where) from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise validation(f"Value '{text[:64]}' at '{where}' failed to satisfy constraint: Member must be "
                             "a boolean", where)
        return text.lower() == "true"
    return text


def parse_input(
    model: ServiceModel, op: Operation, labels: Mapping[str, str], query: Mapping[str, list[str]],
    headers: Mapping[str, str], body: bytes,
) -> dict[str, Any]:
    """The operation's input as a dict keyed by member name (not yet validated)."""
    if op.input_shape is None:
        return {}
    shape = model.shapes[op.input_shape]
    members: dict[str, Any] = shape["members"]
    has_body = any("location" not in m for m in members.values())
    params: dict[str, Any] = {}
    if has_body and body.strip():
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise validation("The request body is not valid JSON", reason="CANNOT_PARSE") from None
        if not isinstance(doc, dict):
            raise validation("The request body must be a JSON object", reason="CANNOT_PARSE")
        params.update({k: v for k, v in doc.items() if k in members and "location" not in members[k]})
    for name, member in members.items():
        location = member.get("location")
        wire = member.get("locationName", name)
        if location == "uri" and wire in labels:
            params[name] = _scalar(model, member["shape"], labels[wire], name)
        elif location == "querystring" and wire in query:
            values = query[wire]
            if model.shapes[member["shape"]]["type"] == "list":
                params[name] = list(values)
            elif len(values) > 1:  # which one counts? SigV4 sorts values, so their order is not signed
                raise validation(f"The query parameter {wire} appears {len(values)} times: send it once",
                                 name)
            else:
                params[name] = _scalar(model, member["shape"], values[0], name)
        elif location == "header" and wire in headers:
            params[name] = _scalar(model, member["shape"], headers[wire], name)
    return params


def _render(model: ServiceModel, shape_name: str, value: Any) -> Any:
    shape = model.shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        return {k: _render(model, m["shape"], value[k]) for k, m in shape["members"].items()
                if value.get(k) is not None and m.get("location") is None}
    if kind == "list":
        return [_render(model, shape["member"]["shape"], v) for v in value]
    if kind == "map":
        return {k: _render(model, shape["value"]["shape"], v) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            return value.timestamp()
        return float(value)
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    return value


def encode_output(model: ServiceModel, op: Operation, output: Mapping[str, Any]) -> bytes:
    """The JSON body of a successful response (members the output shape lacks are dropped)."""
    if op.output_shape is None:
        return b"{}"
    return json.dumps(_render(model, op.output_shape, dict(output)), separators=(",", ":")).encode()


def encode_error(model: ServiceModel, error: ApiError) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` for an error, as botocore's rest-json error parser reads it."""
    shape = model.shapes.get(error.code, {"members": {}})
    doc: dict[str, Any] = {"message": error.message}
    if "Message" in shape.get("members", {}):
        doc["Message"] = error.message
    for key, value in error.fields.items():
        if key in shape.get("members", {}):
            doc[key] = value
    headers = {"x-amzn-ErrorType": error.code, "Content-Type": "application/json"}
    return (
        model.error_status(error.code) if error.code in model.shapes else 404,
        headers,
        json.dumps(doc).encode(),
    )
