"""What an incoming AWS SDK request is for, and AWS-shaped answers in the protocol the SDK speaks.

The service comes from the SigV4 credential scope (``Credential=AKID/DATE/REGION/SERVICE/aws4_request``, in
the ``Authorization`` header or a presigned URL's ``X-Amz-Credential``), else from the ``Host`` name
(``monitoring.us-east-1.amazonaws.com``, ``BUCKET.s3.amazonaws.com``). Errors are rendered so that every
botocore parser (query, json, rest-json, rest-xml, rpc-v2-cbor) raises a ``ClientError`` with our code and
message.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from panoflow.aws import cbor

__all__ = ["ErrorAnswer", "Protocol", "error_answer", "protocol_of", "s3_bucket_from_host", "service_of"]

_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"^[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request$")
_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")

Protocol = str  # "query" | "json" | "cbor" | "rest-xml" | "rest-json"


def service_of(headers: Mapping[str, str], query: Mapping[str, str], host: str) -> str | None:
    """The signing name (endpoint prefix) of the service a request is for, or None when nothing says."""
    match = _SCOPE.search(headers.get("Authorization", ""))
    if match:
        return match.group(2).lower()
    match = _QUERY_SCOPE.match(query.get("X-Amz-Credential", ""))
    if match:
        return match.group(2).lower()
    labels = _aws_labels(host)
    if not labels:
        return None
    return "s3" if _s3_index(labels) is not None else labels[0]


def _aws_labels(host: str) -> list[str]:
    """The labels of an AWS hostname before ``.amazonaws.com`` (port dropped), else []."""
    hostname = host.lower() if host.startswith("[") else host.rsplit(":", 1)[0].lower()
    for suffix in _AWS_SUFFIXES:
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return hostname[: -len(suffix)].split(".")
    return []


def _s3_index(labels: list[str]) -> int | None:
    """Index of the last ``s3``/``s3-REGION`` label (``s3-accesspoint`` and the like excluded)."""
    for i in range(len(labels) - 1, -1, -1):
        label = labels[i]
        if label == "s3" or re.fullmatch(r"s3-[a-z]{2}(?:-[a-z]+)+-\d|s3-external-1", label):
            return i
    return None


def s3_bucket_from_host(host: str) -> str | None:
    """``BUCKET`` of a virtual-hosted S3 address (``BUCKET.s3.amazonaws.com``,
    ``BUCKET.s3.REGION.amazonaws.com``, ``BUCKET.s3-REGION.amazonaws.com``), else None (path-style)."""
    labels = _aws_labels(host)
    index = _s3_index(labels) if labels else None
    return ".".join(labels[:index]) if index else None


def protocol_of(headers: Mapping[str, str], service: str | None, content_type: str) -> Protocol:
    """Which wire protocol the request speaks, from its headers (and S3's being rest-xml)."""
    if headers.get("smithy-protocol", "").lower() == "rpc-v2-cbor" or "application/cbor" in content_type:
        return "cbor"
    if "X-Amz-Target" in headers:
        return "json"
    if "x-www-form-urlencoded" in content_type:
        return "query"
    if service == "s3":
        return "rest-xml"
    if "json" in content_type:
        return "rest-json"
    return "rest-xml"


@dataclass(frozen=True)
class ErrorAnswer:
    """An error response: HTTP status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def error_answer(protocol: Protocol, status: int, code: str, message: str, *,
                 sender: bool = True, xml_namespace: str | None = None) -> ErrorAnswer:
    """An AWS error that botocore's parser for ``protocol`` turns into ``ClientError(code, message)``."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id, "x-amzn-ErrorType": code,
               "x-amzn-query-error": f"{code};{'Sender' if sender else 'Receiver'}"}
    if protocol == "cbor":
        headers |= {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
        return ErrorAnswer(status, headers, cbor.encode({"__type": code, "message": message}))
    if protocol in ("json", "rest-json"):
        headers["Content-Type"] = "application/x-amz-json-1.0" if protocol == "json" else "application/json"
        return ErrorAnswer(status, headers, json.dumps({"__type": code, "message": message}).encode())
    headers["Content-Type"] = "text/xml"
    code_x, message_x = escape(code), escape(message)
    if protocol == "query":
        ns = f' xmlns="{escape(xml_namespace)}"' if xml_namespace else ""
        kind = "Sender" if sender else "Receiver"
        body = (f"<ErrorResponse{ns}><Error><Type>{kind}</Type><Code>{code_x}</Code>"
                f"<Message>{message_x}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code_x}</Code><Message>{message_x}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>")
    return ErrorAnswer(status, headers, body.encode())
