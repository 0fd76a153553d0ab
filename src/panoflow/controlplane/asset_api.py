"""Asset routes under /_panoflow/assets/ (docs/device-protocol.md section 3).

``GET`` (device bearer token or operator SigV4) streams an object out; ``HEAD`` (SigV4) answers its size;
``PUT`` (SigV4) streams the body into the store. A PUT whose signature covers ``x-amz-content-sha256`` is
authenticated before any of the body is read and may be as large as the limit (``MAX_ASSET_SIZE``, 4 GiB by
default); the body is hashed as it is stored and refused (400, nothing kept) when it does not match. A PUT
without that header is read into memory to check its signature, so it must fit in the API's usual 1 MiB. No
asset is ever held whole in memory.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog
from aiohttp import web

from panoflow.controlplane.assets import (
    CHUNK,
    DEFAULT_MAX_ASSET_SIZE,
    AssetDigestMismatch,
    AssetError,
    AssetKeyError,
    AssetNotFound,
    AssetStore,
    AssetTooLarge,
    check_key,
)
from panoflow.controlplane.auth import SignedRequest, connection_id, verify_plane_request
from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.keys import check_operation
from panoflow.controlplane.protocol import MAX_BODY

if TYPE_CHECKING:
    from panoflow.controlplane.service import ControlPlane

__all__ = ["MAX_ASSET_SIZE", "PREFIX", "add_routes"]

log = structlog.get_logger("panoflow.controlplane.assets")

#: the URL path under which assets are served
PREFIX = "/_panoflow/assets/"
#: the largest PUT body accepted unless the control plane says otherwise (``ControlPlane.max_asset_size``)
MAX_ASSET_SIZE = DEFAULT_MAX_ASSET_SIZE
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_STATUS = {"ValidationException": 400, "UnauthorizedException": 401, "AccessDeniedException": 403,
           "NotFoundException": 404, "InternalServerException": 500}


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"Code": code, "Message": message}, status=_STATUS.get(code, 400),
                             headers={"x-amzn-ErrorType": code})


def _key(request: web.Request) -> str:
    try:
        return check_key(request.match_info["key"])
    except AssetKeyError as exc:
        raise ApiError("ValidationException", str(exc)) from None


def _store(plane: ControlPlane) -> AssetStore:
    return plane.assets


async def _operator(plane: ControlPlane, request: web.Request, body: bytes = b"", *,
                    streamed: bool = False) -> str:
    """The access key that signed the request (``streamed``: the body's digest is checked as it is stored)."""
    signed = SignedRequest(request.method, request.raw_path, request.headers, body, connection_id(request))
    akid = await asyncio.to_thread(verify_plane_request, plane, signed, body_checked_later=streamed)
    await asyncio.to_thread(check_operation, plane.store, akid, request.method)
    return akid


async def _device_or_operator(plane: ControlPlane, request: web.Request, key: str) -> str:
    """``device:<id>`` or the access key id; a device may read only the assets of its own desired state
    (403)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return await _operator(plane, request)
    device: Any = None
    try:
        device = await asyncio.to_thread(plane.authenticate_device, header[7:].strip())
    except ApiError as exc:
        if exc.code == "AccessDeniedException":  # a deleted device (device-protocol section 1)
            raise
    if not device:
        raise ApiError("UnauthorizedException", "unknown or missing device token: claim the device again "
                                                "with its provisioning bundle")
    if not await asyncio.to_thread(plane.device_may_read, str(device), key):
        raise ApiError("AccessDeniedException", f"asset {key!r} belongs to no application deployed to this "
                                                "device")
    return f"device:{device}"


async def _get(plane: ControlPlane, request: web.Request, fields: dict[str, Any]) -> web.StreamResponse:
    key = _key(request)
    fields["principal"] = await _device_or_operator(plane, request, key)
    store = _store(plane)
    try:
        stream = await asyncio.to_thread(store.open, key)
    except AssetNotFound:
        raise ApiError("NotFoundException", f"no asset {key!r}: upload it first (panoflow project "
                                            "package-application)") from None
    try:
        info = await asyncio.to_thread(store.stat, key)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
        if info is not None:
            response.content_length = info.size
            if info.sha256:
                response.headers["x-panoflow-sha256"] = info.sha256
        await response.prepare(request)
        sent = 0
        try:
            while chunk := await asyncio.to_thread(stream.read, CHUNK):
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except (OSError, AssetError) as exc:  # headers are sent: all we can do is cut the body short
            log.warning("asset_read_failed", key=key, sent=sent, error=str(exc))
        fields["size"] = sent
        return response
    finally:
        await asyncio.to_thread(stream.close)


async def _head(plane: ControlPlane, request: web.Request, fields: dict[str, Any]) -> web.StreamResponse:
    key = _key(request)
    fields["principal"] = await _operator(plane, request)
    info = await asyncio.to_thread(_store(plane).stat, key)
    if info is None:
        return web.Response(status=404, headers={"x-amzn-ErrorType": "NotFoundException"})
    headers = {"Content-Length": str(info.size), "Content-Type": "application/octet-stream"}
    if info.sha256:
        headers["x-panoflow-sha256"] = info.sha256
    fields["size"] = info.size
    return web.Response(status=200, headers=headers)


class _Body(io.RawIOBase):
    """The request body, read from a worker thread: each read runs on the server's event loop."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self.request, self.loop = request, loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        future = asyncio.run_coroutine_threadsafe(self.request.content.read(min(len(view), CHUNK)), self.loop)
        data = future.result()
        view[:len(data)] = data
        return len(data)


def _signed_names(request: web.Request) -> list[str]:
    match = re.search(r"SignedHeaders=([a-z0-9;\-]+)", request.headers.get("Authorization", ""))
    return match.group(1).split(";") if match else []


async def _put(plane: ControlPlane, request: web.Request, fields: dict[str, Any]) -> web.StreamResponse:
    key = _key(request)
    limit = int(getattr(plane, "max_asset_size", MAX_ASSET_SIZE))
    claimed = request.headers.get("x-amz-content-sha256")
    store = _store(plane)
    stream: BinaryIO
    if claimed is not None and "x-amz-content-sha256" in _signed_names(request):
        # the signature covers the claimed digest: authenticate first, then stream and compare
        fields["principal"] = await _operator(plane, request, streamed=True)
        if not _HEX64.match(claimed):
            raise ApiError("ValidationException", "x-amz-content-sha256 must be the hex SHA-256 of the body "
                                                  "(UNSIGNED-PAYLOAD and streaming signatures are not "
                                                  "accepted)")
        if request.content_length is not None and request.content_length > limit:
            raise ApiError("ValidationException", f"the body ({request.content_length} bytes) is larger than "
                                                  f"the {limit}-byte limit for one asset")
        body = _Body(request, asyncio.get_running_loop())
        stream = io.BufferedReader(body, CHUNK)
    else:
        if request.content_length is None or request.content_length > MAX_BODY:
            raise ApiError("ValidationException", "sign large uploads with an x-amz-content-sha256 header "
                                                  "(the hex SHA-256 of the body); unsigned-digest bodies "
                                                  f"are limited to {MAX_BODY} bytes")
        data = await request.read()
        fields["principal"] = await _operator(plane, request, data)
        stream = io.BytesIO(data)
        claimed = None
    try:
        info = await asyncio.to_thread(store.put, key, stream, sha256=claimed, max_size=limit)
    except (AssetDigestMismatch, AssetTooLarge, AssetKeyError) as exc:
        raise ApiError("ValidationException", str(exc)) from None
    fields["size"] = info.size
    return web.json_response({"Key": key, "Sha256": info.sha256, "Size": info.size})


def add_routes(app: web.Application, plane: ControlPlane) -> None:
    """Register this module's routes on ``app`` (called before the Panorama API's catch-all route)."""

    def route(method: str, impl: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            fields: dict[str, Any] = {"method": method, "key": request.match_info.get("key", "")[:300]}
            try:
                response = await impl(plane, request, fields)
            except ApiError as exc:
                fields["error"] = exc.code
                response = _error(exc.code if exc.code in _STATUS else "ValidationException", exc.message)
            except AssetError as exc:
                fields["error"] = "InternalServerException"
                log.warning("asset_store_error", error=str(exc), **fields)
                response = _error("InternalServerException", f"the asset store failed: {exc}")
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("asset_internal_error", **fields)
                response = _error("InternalServerException", "Internal server error")
            log.info("asset_call", status=response.status,
                     duration_ms=round((time.perf_counter() - started) * 1e3, 2), **fields)
            return response
        return handle

    path = PREFIX + "{key:.+}"
    app.router.add_get(path, route("GET", _get), allow_head=False)
    app.router.add_route("HEAD", path, route("HEAD", _head))
    app.router.add_put(path, route("PUT", _put))
