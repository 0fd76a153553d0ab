"""The daemon's HTTP API (aiohttp): every route, with its OpenAPI description in
:mod:`panoflow.daemon.openapi`.

``/healthz`` is open; everything else needs ``Authorization: Bearer <token>``. Errors are JSON
``{"error": "..."}`` with a 4xx status; a 500 means a bug in panoflow (logged with its traceback).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import jsonschema
import structlog
from aiohttp import web

from panoflow import __version__
from panoflow.core.metrics import MetricFamily
from panoflow.daemon import model as m
from panoflow.daemon.app_archive import ArchiveError, extract_archive
from panoflow.daemon.control_client import ControlError
from panoflow.daemon.logfiles import follow, tail_lines
from panoflow.daemon.manager import Conflict, Manager, NotFound, QuotaExceeded
from panoflow.daemon.metrics import merge_instance_metrics
from panoflow.daemon.openapi import (
    DEPLOY_REQUEST,
    NODE_PATTERN,
    SHA256_PATTERN,
    SIGNAL_REQUEST,
    openapi_document,
)
from panoflow.daemon.preview import relay_mjpeg, relay_snapshot
from panoflow.daemon.store import StatePaths

__all__ = ["Api", "query_params"]

log = structlog.get_logger("panoflow.daemon.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz"})
#: the web console's paths (``daemon.server`` mounts it): it signs in with the same token into a cookie
#: session
CONSOLE_PREFIX = "/console/"
DEFAULT_MAX_UPLOAD = 4 * 1024**3
_NODE_RE = re.compile(NODE_PATTERN)
_SHA_RE = re.compile(SHA256_PATTERN)


class BadRequest(Exception):
    pass


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def _check(validator: jsonschema.protocols.Validator, body: Any) -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "body"
        raise BadRequest(f"{where}: {error.message}"[:500])


def query_params(request: web.Request) -> tuple[int, bool, str | None]:
    """``tail``, ``follow`` and ``node`` of a logs request (400 on anything else)."""
    q = request.query
    try:
        tail = int(q.get("tail", "100"))
    except ValueError:
        raise BadRequest("tail: expected an integer") from None
    if not 0 <= tail <= 100_000:
        raise BadRequest("tail: expected 0 to 100000")
    text = q.get("follow", "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise BadRequest("follow: expected true or false")
    node = q.get("node")
    if node is not None and not _NODE_RE.match(node):
        raise BadRequest("node: not a node name")
    return tail, text in ("true", "1"), node


class Api:
    def __init__(self, manager: Manager, paths: StatePaths, token: str, device_id: str, *,
                 max_upload: int = DEFAULT_MAX_UPLOAD):
        self.manager = manager
        self.paths = paths
        self._token = token.encode()
        self.device_id = device_id
        self.max_upload = max_upload
        self.started = time.monotonic()
        self.session: aiohttp.ClientSession | None = None  # for relaying previews
        self._deploy = _validator(DEPLOY_REQUEST)
        self._signal = _validator(SIGNAL_REQUEST)
        self._openapi = openapi_document()
        #: (method, path) -> the query parameters the operation takes; any other is a 400
        self._queries = {
            (method.upper(), path): {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            for path, ops in self._openapi["paths"].items() for method, op in ops.items()
        }

    # ------------------------------------------------------------------ application
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth])
        app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/openapi.json", self.openapi),
            web.get("/device", self.device),
            web.get("/device/logs", self.device_logs),
            web.get("/metrics", self.metrics),
            web.get("/display.mjpg", self.display_stream),
            web.get("/display.jpg", self.display_snapshot),
            web.post("/archives", self.upload_archive),
            web.get("/archives/{sha256}", self.describe_archive),
            web.get("/instances", self.list_instances),
            web.post("/instances", self.deploy),
            web.get("/instances/{ref}", self.describe_instance),
            web.delete("/instances/{ref}", self.remove_instance),
            web.get("/instances/{ref}/nodes", self.list_nodes),
            web.post("/instances/{ref}/nodes/{node}/signal", self.signal_node),
            web.get("/instances/{ref}/logs", self.instance_logs),
            web.get("/instances/{ref}/preview.mjpg", self.instance_preview),
            web.get("/instances/{ref}/preview.jpg", self.instance_snapshot),
        ])
        app.on_startup.append(self._open_session)
        app.on_cleanup.append(self._close_session)
        return app

    async def _open_session(self, _app: web.Application) -> None:
        self.session = aiohttp.ClientSession()

    async def _close_session(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
            resp = _error(exc.status, exc.reason, headers)
        except BadRequest as exc:
            resp = _error(400, str(exc))
        except NotFound as exc:
            resp = _error(404, str(exc))
        except (Conflict, QuotaExceeded) as exc:
            resp = _error(409, str(exc))
        except Exception as exc:  # a bug: say so, keep serving
            log.exception("request_failed", method=request.method, path=request.path, error=repr(exc))
            resp = _error(500, f"internal error: {type(exc).__name__}")
        log.debug("request", method=request.method, path=request.path, status=resp.status,
                  ms=round((time.perf_counter() - started) * 1e3, 1))
        return resp

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS and not (request.path + "/").startswith(CONSOLE_PREFIX):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
                return _error(401, "missing or wrong bearer token (see the daemon's state directory: token)",
                              {"WWW-Authenticate": 'Bearer realm="panoflow"'})
        resource = request.match_info.route.resource
        allowed = self._queries.get((request.method, resource.canonical)) if resource is not None else None
        if allowed is not None:
            unknown = sorted(set(request.query) - allowed)
            if unknown:
                raise BadRequest(
                    f"unknown query parameter {unknown[0]!r}"
                    + (f" (this operation takes {', '.join(sorted(allowed))})" if allowed else "")
                )
        return await handler(request)

    # ------------------------------------------------------------------ device
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def device(self, _request: web.Request) -> web.Response:
        owner = self.manager.display_owner()
        active = self.manager.active()
        healthy = all(self.manager.view(r)["health_status"] == m.RUNNING for r in active
                      if r.status == m.DEPLOYMENT_SUCCEEDED)
        return web.json_response({
            "device_id": self.device_id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "instances": len(active),
            "max_instances": self.manager.config.max_instances,
            "health_status": m.RUNNING if healthy else m.ERROR,
            "display_owner": owner.instance_id if owner is not None else None,
            "state_dir": str(self.paths.root),
        })

    async def device_logs(self, request: web.Request) -> web.StreamResponse:
        tail, follow_, _node = query_params(request)
        return await self._logs(request, self.paths.device_log, tail, follow_, lambda: True)

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=(await self.metrics_text()).encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def metrics_text(self) -> str:
        """The device's Prometheus text: every running instance's metrics and the daemon's own."""
        texts: list[tuple[dict[str, str], str]] = []

        async def one(rec: m.InstanceRecord) -> None:
            sup = self.manager.supervisors.get(rec.instance_id)
            if sup is None or sup.control is None or sup.state != "running":
                return
            try:
                texts.append(({"application": rec.name}, await sup.control.metrics()))
            except ControlError:
                pass

        records = sorted(self.manager.records.values(), key=lambda r: r.created)
        async with anyio.create_task_group() as tg:
            for rec in records:
                tg.start_soon(one, rec)
        texts.sort(key=lambda t: t[0]["application"])
        return merge_instance_metrics(texts, self._device_metrics(records))

    def _device_metrics(self, records: list[m.InstanceRecord]) -> list[MetricFamily]:
        up = MetricFamily("panoflow_device_up", "gauge", "1 while the panoflow daemon runs").add(1)
        uptime = MetricFamily("panoflow_device_uptime_seconds", "gauge", "Seconds since the daemon started")
        uptime.add(round(time.monotonic() - self.started, 3))
        by_status = MetricFamily("panoflow_device_instances", "gauge",
                                 "Application instances by deployment status")
        for status in m.STATUSES:
            by_status.add(sum(1 for r in records if r.status == status), status=status)
        healthy = MetricFamily("panoflow_instance_up", "gauge",
                               "1 when an instance's HealthStatus is RUNNING")
        restarts = MetricFamily("panoflow_instance_restarts_total", "counter",
                                "Times the daemon restarted an instance's process after it died")
        info = MetricFamily("panoflow_instance_info", "gauge", "An instance's status and health (always 1)")
        for rec in records:
            view = self.manager.view(rec)
            labels = {"instance_id": rec.instance_id, "application": rec.name}
            healthy.add(1 if view["health_status"] == m.RUNNING else 0, **labels)
            restarts.add(view["process"]["restarts"], **labels)
            info.add(1, **labels, status=rec.status, health=view["health_status"])
        families = [up, uptime, by_status, healthy, restarts, info]
        # the apps' CloudWatch metrics, from their gateways (docs/aws.md)
        merged: dict[str, MetricFamily] = {}
        for rec in records:
            gateway = self.manager.gateways.get(rec.instance_id)
            for family in gateway.families() if gateway is not None else []:
                into = merged.setdefault(family.name, MetricFamily(family.name, family.kind, family.help))
                for labels, value in family.samples:
                    into.add(value, application=rec.name, instance_id=rec.instance_id, **labels)
        return families + list(merged.values())

    # ------------------------------------------------------------------ archives
    async def upload_archive(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_upload:
            return _error(413, f"archive larger than {self.max_upload} bytes")
        self.paths.archives.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=self.paths.archives)
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > self.max_upload:
                        return _error(413, f"archive larger than {self.max_upload} bytes")
                    digest.update(chunk)
                    f.write(chunk)
            if size == 0:
                raise BadRequest("empty body: expected a tar.gz of graphs/, packages/ and assets/")
            sha = digest.hexdigest()
            dest = self.paths.archive(sha)
            if dest.is_dir():
                return web.json_response({"sha256": sha, "size": size, "stored": False}, status=201)
            try:
                entries = await anyio.to_thread.run_sync(extract_archive, tmp, dest)
            except ArchiveError as exc:
                raise BadRequest(str(exc)) from None
            log.info("archive_stored", sha256=sha, size=size, entries=entries)
            return web.json_response({"sha256": sha, "size": size, "entries": entries, "stored": True},
                                     status=201)
        finally:
            tmp.unlink(missing_ok=True)

    async def describe_archive(self, request: web.Request) -> web.Response:
        sha = request.match_info["sha256"]
        if not _SHA_RE.match(sha) or not self.paths.archive(sha).is_dir():
            raise NotFound(f"no archive {sha}")
        return web.json_response({"sha256": sha})

    # ------------------------------------------------------------------ instances
    async def list_instances(self, _request: web.Request) -> web.Response:
        records = sorted(self.manager.records.values(), key=lambda r: (r.name, r.created))
        return web.json_response({"instances": [self.manager.view(r) for r in records]})

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (ValueError, RecursionError):
            raise BadRequest("body: expected a JSON document") from None

    async def deploy(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        _check(self._deploy, body)
        rec = self.manager.create(
            name=body["name"], archive=body["archive"], graph=body.get("graph"),
            overrides=body.get("overrides"), cameras={k: list(v) for k, v in body.get("cameras", {}).items()},
            params=dict(body.get("params", {})),
            description=body.get("description", ""), isolation=body.get("isolation"), aws=body.get("aws"),
            model_backends=body.get("model_backends"),
        )
        return web.json_response(self.manager.view(rec), status=202)

    async def describe_instance(self, request: web.Request) -> web.Response:
        return web.json_response(self.manager.view(self.manager.get(request.match_info["ref"])))

    async def remove_instance(self, request: web.Request) -> web.Response:
        removed = await self.manager.remove(request.match_info["ref"])
        return web.json_response({"removed": [{**r.public(), "health_status": m.NOT_AVAILABLE,
                                               "process": {"state": "stopped", "restarts": r.restarts}}
                                              for r in removed]})

    async def list_nodes(self, request: web.Request) -> web.Response:
        rec = self.manager.get(request.match_info["ref"])
        return web.json_response({"instance_id": rec.instance_id, "nodes": self.manager.nodes(rec)})

    async def signal_node(self, request: web.Request) -> web.Response:
        rec = self.manager.get(request.match_info["ref"])
        body = await self._json(request)
        _check(self._signal, body)
        code, answer = await self.manager.signal(rec.instance_id, request.match_info["node"], body["signal"])
        if code == 200:
            return web.json_response(answer)
        return _error(code if code in (400, 404) else 409, str(answer.get("error", "the instance refused")))

    async def instance_logs(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["ref"]
        rec = self.manager.get(ref)
        tail, follow_, node = query_params(request)
        logs = self.paths.app_logs(rec.name)
        path = logs / node / "console_output" if node else logs / "instance.log"
        return await self._logs(request, path, tail, follow_, lambda: self.manager.find(ref) is not None)

    async def _logs(self, request: web.Request, path: Path, tail: int, follow_: bool,
                    keep: Callable[[], bool]) -> web.StreamResponse:
        lines = await anyio.to_thread.run_sync(tail_lines, path, tail)
        text = "".join(line + "\n" for line in lines)
        if not follow_:
            return web.Response(text=text, content_type="text/plain", charset="utf-8")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "Cache-Control": "no-store"})
        await resp.prepare(request)
        await resp.write(text.encode())

        async def watch(scope: anyio.CancelScope) -> None:
            while keep():
                await anyio.sleep(0.5)
            scope.cancel()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, tg.cancel_scope)
                async for line in follow(path):
                    await resp.write((line + "\n").encode())
        except ConnectionError:
            pass
        return resp

    # ------------------------------------------------------------------ previews
    def _preview_of(self, ref: str) -> str | None:
        rec = self.manager.find(ref)
        sup = self.manager.supervisors.get(rec.instance_id) if rec is not None else None
        return sup.preview_url if sup is not None else None

    def _display_url(self) -> str | None:
        owner = self.manager.display_owner()
        return self._preview_of(owner.instance_id) if owner is not None else None

    async def instance_preview(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["ref"]
        self.manager.get(ref)
        assert self.session is not None
        return await relay_mjpeg(request, self.session, lambda: self._preview_of(ref),
                                 lambda: self.manager.find(ref) is not None)

    async def instance_snapshot(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        self.manager.get(ref)
        assert self.session is not None
        return await relay_snapshot(self.session, self._preview_of(ref))

    async def display_stream(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        return await relay_mjpeg(request, self.session, self._display_url, lambda: True)

    async def display_snapshot(self, _request: web.Request) -> web.Response:
        assert self.session is not None
        return await relay_snapshot(self.session, self._display_url())
