"""Device routes under /_panoflow/device/v1/ and /_panoflow/devices/ (docs/device-protocol.md sections 1, 2,
4).

Devices call ``POST /_panoflow/device/v1/{claim,sync,logs,metrics}`` (claim with the bundle's one-time token,
the others with ``Authorization: Bearer <token>``); operators read ``GET
/_panoflow/devices/{DeviceId}/{logs,metrics}`` signed with SigV4 like any Panorama call. Bodies are JSON with
a size limit; errors are ``{"Code": ..., "Message": ...}`` with the HTTP status of the code. Store work runs
in a worker thread; one ``device_api_call`` log line per request, never with a token or a body. Live-preview
frames (``POST /_panoflow/device/v1/preview/{instance}``, one JPEG per call) go to the in-memory
:class:`~panoflow.controlplane.previews.PreviewRelay` (section 6).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from panoflow.controlplane.auth import SignedRequest, connection_id, verify_plane_request
from panoflow.controlplane.errors import ApiError, validation
from panoflow.controlplane.previews import JPEG_MAGIC, relay_for
from panoflow.controlplane.service.fleet import LOG_CAP, MAX_LOG_BYTES

if TYPE_CHECKING:
    from panoflow.controlplane.service import ControlPlane

__all__ = ["DEVICE_PREFIX", "MAX_JSON_BODY", "OPERATOR_PREFIX", "add_routes"]

log = structlog.get_logger("panoflow.controlplane.device_api")

DEVICE_PREFIX = "/_panoflow/device/v1"
OPERATOR_PREFIX = "/_panoflow/devices"
#: the largest claim, sync or metrics body
MAX_JSON_BODY = 1024 * 1024
_STATUS = {"ValidationException": 400, "UnauthorizedException": 401, "AccessDeniedException": 403,
           "ResourceNotFoundException": 404, "ConflictException": 409, "PayloadTooLargeException": 413,
           "ThrottlingException": 429, "InternalServerException": 500}
_DEFAULT_LIMIT = 100

Handler = Callable[[web.Request, dict[str, Any]], Awaitable[Any]]


def _json_response(status: int, doc: Any, request_id: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc).encode("utf-8"),
                        headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id})


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes without reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError("PayloadTooLargeException", f"the body is {request.content_length} bytes; at most "
                       f"{limit} are accepted per call: send smaller batches")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ApiError("PayloadTooLargeException", f"the body is more than {limit} bytes; at most "
                           f"{limit} are accepted per call: send smaller batches")
        chunks.append(chunk)


async def _json_body(request: web.Request, limit: int = MAX_JSON_BODY) -> Any:
    data = await _read_body(request, limit)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation(f"the body is not JSON ({exc}); send a JSON object with Content-Type "
                         "application/json", "body") from None


async def _device(plane: ControlPlane, request: web.Request, fields: dict[str, Any]) -> str:
    """The device the bearer token belongs to (401 without a valid token, 403 for a deleted device)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise ApiError("UnauthorizedException", "send Authorization: Bearer <Token>, the Token the claim "
                       "returned (kept in STATE_DIR/cloud.json)")
    device_id = await asyncio.to_thread(plane.authenticate_device, token)
    if device_id is None:
        raise ApiError("UnauthorizedException", "unknown device token: claim the device with its "
                       "provisioning bundle, or check STATE_DIR/cloud.json")
    fields["device_id"] = device_id
    limits = getattr(plane, "limits", None)
    if limits is not None:
        limits.call(device_id)
    return device_id


async def _operator(plane: ControlPlane, request: web.Request, fields: dict[str, Any]) -> None:
    body = await _read_body(request, MAX_JSON_BODY)
    signed = SignedRequest(request.method, request.raw_path, request.headers, body, connection_id(request))
    fields["access_key_id"] = await asyncio.to_thread(verify_plane_request, plane, signed)


def _limit(request: web.Request) -> int:
    values = request.query.getall("limit", [])
    if not values:
        return _DEFAULT_LIMIT
    if len(values) > 1:
        raise validation("limit appears more than once: send it once", "limit")
    text = values[0]
    if not text.isdigit() or not 1 <= int(text) <= LOG_CAP:
        raise validation(f"limit must be an integer from 1 to {LOG_CAP}; got {text[:32]!r}", "limit")
    return int(text)


def add_routes(app: web.Application, plane: ControlPlane) -> None:
    """Register this module's routes on ``app`` (called before the Panorama API's catch-all route)."""
    relay = relay_for(app)  # the live previews, shared with the console (controlplane.previews)

    def route(name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            request_id = str(uuid.uuid4())
            started = time.perf_counter()
            fields: dict[str, Any] = {"call": name, "method": request.method, "request_id": request_id}
            try:
                response = _json_response(200, await handler(request, fields), request_id)
            except ApiError as exc:
                fields["error"] = exc.code
                doc = {"Code": exc.code, "Message": exc.message}
                if "Fields" in exc.fields:
                    doc["Fields"] = exc.fields["Fields"]
                response = _json_response(_STATUS.get(exc.code, 400), doc, request_id)
                if "RetryAfter" in exc.fields:
                    response.headers["Retry-After"] = str(exc.fields["RetryAfter"])
            except Exception:  # a bug: answer 500 without a traceback, log it
                log.exception("device_api_internal_error", **fields)
                response = _json_response(500, {"Code": "InternalServerException",
                                                 "Message": "Internal server error"}, request_id)
            log.info("device_api_call", status=response.status,
                     duration_ms=round((time.perf_counter() - started) * 1e3, 2), **fields)
            return response
        return handle

    async def claim(request: web.Request, fields: dict[str, Any]) -> Any:
        body = await _json_body(request)
        if isinstance(body, dict) and isinstance(body.get("DeviceId"), str):
            fields["device_id"] = body["DeviceId"][:64]
        return await asyncio.to_thread(plane.claim_device, body)

    async def sync(request: web.Request, fields: dict[str, Any]) -> Any:
        device_id = await _device(plane, request, fields)
        body = await _json_body(request)
        answer = await asyncio.to_thread(plane.device_sync, device_id, body)
        return relay.sync_answer(device_id, answer)  # + the previews wanted of its instances (section 6)

    async def logs(request: web.Request, fields: dict[str, Any]) -> Any:
        device_id = await _device(plane, request, fields)
        body = await _json_body(request, MAX_LOG_BYTES)
        limits = getattr(plane, "limits", None)
        if limits is not None and isinstance(body, dict) and isinstance(body.get("Lines"), list):
            limits.log_bytes(device_id, sum(len(str(line.get("Line") or "")) for line in body["Lines"]
                                            if isinstance(line, dict)))
        stored = await asyncio.to_thread(plane.append_device_logs, device_id, body)
        fields["lines"] = stored
        return {"Stored": stored}

    async def token(request: web.Request, fields: dict[str, Any]) -> Any:
        device_id = await _device(plane, request, fields)
        await _read_body(request, MAX_JSON_BODY)
        current = request.headers.get("Authorization", "").partition(" ")[2].strip()
        return await asyncio.to_thread(plane.renew_device_token, device_id, current)

    async def metrics(request: web.Request, fields: dict[str, Any]) -> Any:
        device_id = await _device(plane, request, fields)
        body = await _json_body(request)
        text = body.get("Text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise validation("Text must be a string (the Prometheus text exposition)", "Text")
        await asyncio.to_thread(plane.put_device_metrics, device_id, text)
        return {}

    async def preview(request: web.Request, fields: dict[str, Any]) -> Any:
        device_id = await _device(plane, request, fields)
        instance_id = request.match_info["instance"]
        fields["instance"] = instance_id[:80]
        jpeg = await _read_body(request, relay.max_frame_bytes)
        if not jpeg.startswith(JPEG_MAGIC):
            raise validation("the body is not a JPEG (it must start with FF D8 FF): send one JPEG picture "
                             "per call with Content-Type image/jpeg", "body")
        if relay.owner(instance_id) != device_id:
            raise ApiError("AccessDeniedException", f"application instance {instance_id[:80]} is not running "
                           "on this device (as of its last sync): send previews of its own instances only")
        return relay.put(instance_id, jpeg)

    async def read_logs(request: web.Request, fields: dict[str, Any]) -> Any:
        await _operator(plane, request, fields)
        device_id = request.match_info["device_id"]
        fields["device_id"] = device_id[:64]
        lines = await asyncio.to_thread(plane.device_logs, device_id, _limit(request))
        return {"DeviceId": device_id, "Lines": lines}

    async def read_metrics(request: web.Request, fields: dict[str, Any]) -> Any:
        await _operator(plane, request, fields)
        device_id = request.match_info["device_id"]
        fields["device_id"] = device_id[:64]
        return {"DeviceId": device_id, **await asyncio.to_thread(plane.device_metrics, device_id)}

    for name, handler in (("claim", claim), ("sync", sync), ("logs", logs), ("metrics", metrics),
                          ("token", token)):
        app.router.add_post(f"{DEVICE_PREFIX}/{name}", route(f"device_{name}", handler))
    app.router.add_post(DEVICE_PREFIX + "/preview/{instance}", route("device_preview", preview))
    app.router.add_get(OPERATOR_PREFIX + "/{device_id}/logs", route("read_logs", read_logs))
    app.router.add_get(OPERATOR_PREFIX + "/{device_id}/metrics", route("read_metrics", read_metrics))
