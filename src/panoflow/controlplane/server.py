"""The HTTP server: one aiohttp catch-all route; the model decides which operation a request is.

Order per request: read the body, verify the SigV4 signature (403 AccessDeniedException), route by method and
raw path (404 UnknownOperationException), read the input members from where the model puts them, validate them
against the input shape (400 ValidationException), run the handler in a worker thread, render the output
shape.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from aiohttp import web

from panoflow.controlplane import asset_api, device_api
from panoflow.controlplane.auth import SignedRequest, connection_id, verify_plane_request
from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.keys import check_operation
from panoflow.controlplane.model import ServiceModel, load_model
from panoflow.controlplane.protocol import MAX_BODY, encode_error, encode_output, parse_input
from panoflow.controlplane.service import ControlPlane
from panoflow.controlplane.validate import validate_input

__all__ = ["make_app", "serve_in_thread"]

log = structlog.get_logger("panoflow.controlplane")
_PLANE: web.AppKey[ControlPlane] = web.AppKey("control_plane", ControlPlane)


def _error_response(model: ServiceModel, error: ApiError, request_id: str) -> web.Response:
    status, headers, body = encode_error(model, error)
    return web.Response(status=status, body=body, headers={**headers, "x-amzn-RequestId": request_id})


async def _dispatch(plane: ControlPlane, model: ServiceModel, request: web.Request, request_id: str,
                    fields: dict[str, Any]) -> web.Response:
    body = await request.read()
    signed = SignedRequest(request.method, request.raw_path, request.headers, body, connection_id(request))
    fields["access_key_id"] = await asyncio.to_thread(verify_plane_request, plane, signed)
    raw_path = request.raw_path.split("?", 1)[0]
    op, labels, _known = model.route(request.method, raw_path)
    if op is None:
        raise ApiError("UnknownOperationException", f"No operation matches {request.method} {raw_path[:200]}")
    fields["operation"] = op.name
    await asyncio.to_thread(check_operation, plane.store, fields["access_key_id"], op.name)
    query = {k: request.rel_url.query.getall(k) for k in request.rel_url.query}
    params = parse_input(model, op, labels, query, request.headers, body)
    if op.input_shape is not None:
        validate_input(model, op.input_shape, params)
    output = await asyncio.to_thread(plane.call, op.name, params)
    return web.Response(status=200, body=encode_output(model, op, output),
                        headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id})


def make_app(plane: ControlPlane, *,
             routes: Callable[[web.Application], object] | None = None) -> web.Application:
    """The aiohttp application serving the Panorama API for ``plane``. ``routes`` adds more routes before the
    API's catch-all (``control-plane serve`` mounts the web console with it: docs/console.md)."""
    model = load_model()
    app = web.Application(client_max_size=MAX_BODY)
    app[_PLANE] = plane

    async def handle(request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        fields: dict[str, Any] = {"method": request.method, "request_id": request_id}
        try:
            response = await _dispatch(plane, model, request, request_id, fields)
        except ApiError as exc:
            fields["error"] = exc.code
            response = _error_response(model, exc, request_id)
        except web.HTTPRequestEntityTooLarge:
            fields["error"] = "ValidationException"
            response = _error_response(model, ApiError("ValidationException", "Request body too large"),
                                       request_id)
        except Exception:  # a bug: answer as the model says, never leak a traceback to the client
            log.exception("api_internal_error", **fields)
            response = _error_response(model, ApiError("InternalServerException", "Internal server error"),
                                       request_id)
        log.info("api_call", status=response.status,
                 duration_ms=round((time.perf_counter() - started) * 1e3, 2), **fields)
        return response

    # panoflow's own routes (docs/device-protocol.md) first: the catch-all below is the Panorama API
    asset_api.add_routes(app, plane)
    device_api.add_routes(app, plane)
    if routes is not None:
        routes(app)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@contextmanager
def serve_in_thread(plane: ControlPlane, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``plane`` from a background thread (tests, embedding); yields the endpoint URL (``https://`` with
    an ``ssl_context``, see :func:`panoflow.controlplane.tls.server_context`)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(plane), access_log=None)
    ready = threading.Event()
    url: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        loop.run_until_complete(site.start())
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        url.append(f"{'https' if ssl_context else 'http'}://{host}:{sock.getsockname()[1]}")
        ready.set()
        loop.run_forever()
        # drop open connections at once (a TLS close would wait for each client's close_notify, and a socket
        # still waiting when the loop closes is leaked): stopping is like a server going away
        for handler in runner.server.connections if runner.server is not None else ():
            if handler.transport is not None:
                handler.transport.abort()
        loop.run_until_complete(runner.cleanup())
        # what the loop had not run yet when it stopped (a loaded machine runs callbacks late): connections
        # still being accepted are cancelled, and the transports closed meanwhile get their connection_lost
        # callbacks (call_soon), else a "closing" socket is left for the garbage collector (ResourceWarning)
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, name="panoflow-control-plane", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the control plane did not start")
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
