"""The control-plane console: :class:`PlaneBackend` (sign-in with an access key, data through
``ControlPlane.call``) and the pages only a control plane has: devices and jobs, cameras, packages, removing
an instance, metrics charts and the deploy wizard.

Every call goes through :meth:`PlaneBackend.call`: ``keys.check_operation`` for the signed-in key (a read-only
key is refused what the API would refuse it), the model's input validation (as the HTTP API), then
``ControlPlane.call`` in a worker thread. API errors become :class:`ConsoleError` messages naming the field.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from panoflow.console.charts import History, instance_series, svg_chart
from panoflow.console.probe import check_stream_url, describe_camera
from panoflow.console.sessions import COOKIE, Session
from panoflow.console.web import ROOT, Console, ConsoleError, InstanceView, NodeView, Page, redirect
from panoflow.console.wizard import CameraChoice, build_overrides, form_fields, read_graph
from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.keys import READ_ONLY, check_operation
from panoflow.controlplane.model import load_model
from panoflow.controlplane.previews import Frame, PreviewRelay, relay_for
from panoflow.controlplane.service import ControlPlane
from panoflow.controlplane.validate import validate_input
from panoflow.core.redact import redact_text

__all__ = ["PlaneBackend", "mount_plane_console"]

log = structlog.get_logger("panoflow.console")

_DUMMY_SECRET = "0" * 40  # compared against when a key id is unknown, so timing does not tell which ids exist
_MAX_ITEMS = 1000  # the most items a list page collects (pages of the API are followed up to this)
_CAMERA_PACKAGES = frozenset({"abstract_rtsp_media_source"})
_BOUNDARY = "panoflowframe"  # the MJPEG stream's part boundary
_STATUS = {"AccessDeniedException": 403, "ResourceNotFoundException": 404, "ConflictException": 409}


def _api_message(exc: ApiError) -> tuple[str, str | None]:
    fields = exc.fields.get("Fields") or []
    field = fields[0].get("Name") if fields and isinstance(fields[0], dict) else None
    if exc.code == "AccessDeniedException" and "read-only" in exc.message:
        return "This access key is read-only: it may look but not change anything.", None
    return redact_text(exc.message), field


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if value is None else str(value)


class PlaneBackend:
    """The console's view of a :class:`ControlPlane`."""

    kind = "plane"
    nav: tuple[tuple[str, str], ...] = (
        ("devices", "Devices"), ("cameras", "Cameras"), ("packages", "Packages"),
        ("instances", "Application instances"), ("deploy", "Deploy"))

    def __init__(self, plane: ControlPlane):
        self.plane = plane
        self.model = load_model()
        self.history = History()
        self.relay = PreviewRelay()  # replaced by the server's own (mount_plane_console), shared with devices

    # ------------------------------------------------------------------ calls
    async def call(self, session: Session | None, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """``ControlPlane.call`` as the signed-in key may (ConsoleError with the API's message otherwise)."""
        def run() -> dict[str, Any]:
            if session is not None:
                check_operation(self.plane.store, session.principal, operation)
            shape = self.model.operations[operation].input_shape
            if shape is not None:
                validate_input(self.model, shape, params)
            return self.plane.call(operation, params)

        try:
            return await asyncio.to_thread(run)
        except ApiError as exc:
            message, field = _api_message(exc)
            log.info("console_call_failed", operation=operation, error=exc.code,
                     principal=session.principal if session else None)
            raise ConsoleError(message, field=field, status=_STATUS.get(exc.code, 400)) from None

    async def list_all(self, session: Session | None, operation: str, member: str,
                       params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list operation (up to :data:`_MAX_ITEMS`)."""
        items: list[dict[str, Any]] = []
        token = None
        while len(items) < _MAX_ITEMS:
            page = await self.call(session, operation, {**(params or {}), "MaxResults": 25,
                                                        **({"NextToken": token} if token else {})})
            items += page.get(member) or []
            token = page.get("NextToken")
            if not token:
                break
        return items

    # ------------------------------------------------------------------ Backend
    async def sign_in(self, form: dict[str, str]) -> tuple[str, bool] | None:
        akid, secret = form.get("access_key_id", "").strip(), form.get("secret_access_key", "")
        if not akid or not secret or len(akid) > 128 or len(secret) > 256:
            return None

        def check() -> tuple[str, bool] | None:
            with self.plane.store.transaction() as tx:
                row = tx.get("access_keys", akid)
            active = row is not None and row.columns["status"] == "Active"
            stored = str(row.columns["secret"]) if active and row is not None else _DUMMY_SECRET
            if not hmac.compare_digest(stored.encode(), secret.encode()) or not active or row is None:
                return None
            return akid, str(row.doc.get("Policy") or "") == READ_ONLY

        return await asyncio.to_thread(check)

    async def camera_packages(self) -> set[str]:
        nodes = await self.list_all(None, "ListNodes", "Nodes", {"Category": "MEDIA_SOURCE"})
        return {str(n.get("PackageName")) for n in nodes} | _CAMERA_PACKAGES

    @staticmethod
    def _view(item: dict[str, Any], nodes: tuple[NodeView, ...] = ()) -> InstanceView:
        return InstanceView(
            id=str(item["ApplicationInstanceId"]), name=str(item.get("Name") or ""),
            status=str(item.get("Status") or ""), health=str(item.get("HealthStatus") or ""),
            description=str(item.get("StatusDescription") or ""),
            device_id=str(item.get("DefaultRuntimeContextDevice") or ""),
            device_name=str(item.get("DefaultRuntimeContextDeviceName") or ""),
            created=_when(item.get("CreatedTime")), nodes=nodes)

    async def instances(self) -> list[InstanceView]:
        items = await self.list_all(None, "ListApplicationInstances", "ApplicationInstances")
        return [self._view(i) for i in sorted(items, key=lambda i: str(i.get("CreatedTime")), reverse=True)]

    async def instance(self, instance_id: str) -> InstanceView:
        item = await self.call(None, "DescribeApplicationInstance", {"ApplicationInstanceId": instance_id})
        nodes = await self.list_all(None, "ListApplicationInstanceNodeInstances", "NodeInstances",
                                    {"ApplicationInstanceId": instance_id})
        cameras = await self.camera_packages()
        return self._view(item, tuple(
            NodeView(str(n["NodeInstanceId"]), str(n.get("NodeName") or n["NodeInstanceId"]),
                     f"{n.get('PackageName') or ''} {n.get('PackageVersion') or ''}".strip(),
                     str(n.get("CurrentStatus") or ""), str(n.get("PackageName")) in cameras)
            for n in nodes))

    async def signal(self, session: Session, instance_id: str, node: str, signal: str) -> None:
        await self.call(session, "SignalApplicationInstanceNodeInstances",
                        {"ApplicationInstanceId": instance_id,
                         "NodeSignals": [{"NodeInstanceId": node, "Signal": signal}]})

    async def logs(self, instance_id: str, node: str | None, limit: int) -> list[str]:
        inst = await self.call(None, "DescribeApplicationInstance", {"ApplicationInstanceId": instance_id})
        device = str(inst.get("DefaultRuntimeContextDevice") or "")
        try:
            lines = await asyncio.to_thread(self.plane.device_logs, device, 10_000)
        except ApiError:
            return []
        out = []
        for line in lines:
            if line.get("Instance") != instance_id or (node is not None and line.get("Node") != node):
                continue
            where = f" [{line['Node']}]" if node is None and line.get("Node") else ""
            out.append(f"{line.get('Time') or ''}{where} {redact_text(str(line.get('Line') or ''))}")
        return out[-limit:]

    async def preview(self, request: web.Request, instance: InstanceView) -> dict[str, Any]:
        """The relayed preview: looking at it makes it wanted (the device hears so at its next sync)."""
        self.relay.want(instance.id)
        base = f"{ROOT}instances/{quote(instance.id, safe='')}/preview"
        return {"stream_url": base + ".mjpg", "state_url": base + "/state", **self.preview_state(instance)}

    def preview_state(self, instance: InstanceView) -> dict[str, Any]:
        """What the preview page says about the relay: ``preview_state`` is ``live``, ``waiting`` (the device
        has not heard yet), ``no-frames`` (it heard and sends none), ``paused`` (a camera node is paused) or
        ``stalled`` (frames stopped coming); ``preview_text`` the sentence shown."""
        relay, now, beat = self.relay, self.relay.clock(), self.plane.heartbeat_s
        frame = relay.latest(instance.id)
        since = relay.wanted_since(instance.id)
        paused = [n.name for n in instance.nodes if n.is_camera and n.status == "PAUSED"]
        syncs = f"it syncs every {beat:g} s"
        if frame is None:
            waited = now - since if since is not None else 0.0
            if waited < max(3 * beat, 5.0) + 2 / relay.fps:
                return {"preview_state": "waiting", "preview_text": (
                    "Waiting for the device: it hears that this preview is wanted at its next sync "
                    f"({syncs}), then sends its output here.")}
            why = (f"the camera {', '.join(paused)} is paused" if paused else
                   "the instance may not be running, its graph may have no display (HDMI) node, or the "
                   "device is offline")
            return {"preview_state": "paused" if paused else "no-frames", "preview_text": (
                f"No frames from the device after {waited:.0f} s: {why}.")}
        age = now - frame.received
        if age < max(3.0, 3 / relay.fps):
            return {"preview_state": "live", "preview_text": f"Live: frame {frame.seq}, {age:.1f} s ago."}
        if paused:
            return {"preview_state": "paused", "preview_text": (
                f"Paused: the camera {', '.join(paused)} is paused; the picture is its last frame "
                f"({age:.0f} s ago).")}
        return {"preview_state": "stalled", "preview_text": (
            f"No new frames for {age:.0f} s (the picture is the last one): the video may have stopped, or "
            f"the device is offline ({syncs}).")}

    # ------------------------------------------------------------------ metrics
    async def metric_charts(self, inst: InstanceView) -> list[Any]:
        if inst.device_id:
            try:
                latest = await asyncio.to_thread(self.plane.device_metrics, inst.device_id)
            except ApiError:
                latest = {}
            if latest.get("Text") and latest.get("ReceivedTime"):
                received = dt.datetime.fromisoformat(str(latest["ReceivedTime"]))
                self.history.add(inst.device_id, received, str(latest["Text"]))
        names = {inst.id, inst.name, inst.id[-40:]}
        safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in inst.name).strip("-_")[:50]
        if safe:
            names |= {safe, f"{safe[:40]}-{inst.id[-8:]}"}
        series = instance_series(self.history.samples(inst.device_id), names)
        return [(s, svg_chart(s)) for s in series]


# ---------------------------------------------------------------------- pages
class PlanePages:
    """The control-plane-only pages."""

    def __init__(self, console: Console, backend: PlaneBackend):
        self.console = console
        self.b = backend

    def mount(self, app: web.Application) -> None:
        add = self.console.add
        add(app, "GET", "devices", self.devices)
        add(app, "POST", "devices/{id}/reboot", self.reboot, write=True)
        add(app, "POST", "devices/{id}/ota", self.ota, write=True)
        add(app, "GET", "cameras", self.cameras)
        add(app, "POST", "cameras", self.add_camera, write=True)
        add(app, "POST", "cameras/test", self.test_camera, write=True)
        add(app, "GET", "packages", self.packages)
        add(app, "POST", "instances/{id}/remove", self.remove, write=True)
        add(app, "GET", "instances/{id}/metrics", self.metrics)
        add(app, "GET", "instances/{id}/preview.mjpg", self.preview_stream)
        add(app, "GET", "instances/{id}/preview/state", self.preview_state)
        add(app, "GET", "instances/{id}/metrics/charts", self.metric_charts)
        add(app, "GET", "deploy", self.deploy_start, write=True)
        add(app, "POST", "deploy/parameters", self.deploy_parameters, write=True)
        add(app, "POST", "deploy", self.deploy, write=True)

    # devices
    async def devices(self, request: web.Request, session: Session) -> web.StreamResponse:
        items = await self.b.list_all(session, "ListDevices", "Devices")
        rows = []
        for item in items:
            d = await self.b.call(session, "DescribeDevice", {"DeviceId": item["DeviceId"]})
            job = d.get("LatestDeviceJob") or {}
            rows.append({"id": d["DeviceId"], "name": d.get("Name") or d["DeviceId"],
                         "status": " / ".join(str(x) for x in (d.get("ProvisioningStatus"),
                                                              d.get("DeviceConnectionStatus")) if x),
                         # the time of its last sync: the network status it reports with every one
                         "heartbeat": _when((d.get("CurrentNetworkingStatus") or {}).get("LastUpdatedTime"))
                         or "never",
                         "version": d.get("CurrentSoftware") or "",
                         "job": " ".join(str(x) for x in (job.get("JobType"), job.get("Status")) if x)})
        return self.console.render(request, session, Page("devices.html", "Devices", {"devices": rows}))

    async def _job(self, request: web.Request, session: Session, params: dict[str, Any],
                   done: str) -> web.Response:
        await self.b.call(session, "CreateJobForDevices", {"DeviceIds": [request.match_info["id"]], **params})
        session.flash("ok", done)
        return redirect(ROOT + "devices")

    async def reboot(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._job(request, session, {"JobType": "REBOOT"},
                               f"Reboot requested for {request.match_info['id']}.")

    async def ota(self, request: web.Request, session: Session) -> web.StreamResponse:
        version = str((await request.post()).get("version") or "").strip()
        if not version:
            raise ConsoleError("Software version: enter the version to install (e.g. 0.2.0)", field="version")
        return await self._job(request, session, {"JobType": "OTA", "DeviceJobConfig": {
            "OTAJobConfig": {"ImageVersion": version}}}, f"Software update to {version} requested.")

    # cameras
    async def _camera_rows(self, session: Session) -> list[dict[str, Any]]:
        nodes = await self.b.list_all(session, "ListNodes", "Nodes", {"Category": "MEDIA_SOURCE"})
        return [{"name": n.get("Name"), "package": n.get("PackageName"), "version": n.get("PackageVersion"),
                 "description": n.get("Description") or ""} for n in nodes]

    async def cameras(self, request: web.Request, session: Session, *, form: dict[str, str] | None = None,
                      errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
        page = Page("cameras.html", "Cameras", {"cameras": await self._camera_rows(session),
                                                "form": form or {}, "errors": errors or {}}, status=status)
        return self.console.render(request, session, page,
                                   messages=[("error", e) for e in (errors or {}).values()])

    @staticmethod
    async def _camera_form(request: web.Request) -> dict[str, str]:
        data = await request.post()
        return {k: str(data.get(k) or "").strip() for k in ("name", "url", "username", "password")}

    async def add_camera(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self._camera_form(request)
        shown = {k: v for k, v in form.items() if k != "password"}  # the password is never sent back
        errors = {}
        name = form["name"]
        if not (0 < len(name) <= 50 and name.isascii() and all(c.isalnum() or c in "_-" for c in name)):
            errors["name"] = "Camera name: 1 to 50 letters, digits, - or _"
        problem = check_stream_url(form["url"])
        if problem:
            errors["url"] = problem
        if errors:
            return await self.cameras(request, session, form=shown, errors=errors, status=400)
        params = {"StreamUrl": form["url"]}
        if form["username"]:
            params["Username"] = form["username"]
        if form["password"]:
            params["Password"] = form["password"]
        try:
            await self.b.call(session, "CreateNodeFromTemplateJob", {
                "TemplateType": "RTSP_CAMERA_STREAM", "OutputPackageName": form["name"],
                "OutputPackageVersion": "1.0", "NodeName": form["name"], "TemplateParameters": params})
        except ConsoleError as exc:
            return await self.cameras(request, session, form=shown, errors={"name": str(exc)},
                                      status=exc.status)
        session.flash("ok", f"Camera {form['name']} added.")
        return redirect(ROOT + "cameras")

    async def test_camera(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self._camera_form(request)
        result = await describe_camera(form["url"], form["username"], form["password"])
        if not request.headers.get("HX-Request"):
            shown = {k: v for k, v in form.items() if k != "password"}
            return await self.cameras(request, session, form=shown,
                                      errors=None if result.ok else {"test": result.message})
        return self.console.fragment(request, session, "camera_test.html", result=result)

    # packages
    async def packages(self, request: web.Request, session: Session) -> web.StreamResponse:
        packages = await self.b.list_all(session, "ListPackages", "Packages")
        nodes = await self.b.list_all(session, "ListNodes", "Nodes")
        versions: dict[str, set[str]] = {}
        for n in nodes:
            versions.setdefault(str(n.get("PackageName")), set()).add(
                f"{n.get('PackageVersion')} (patch {str(n.get('PatchVersion') or '')[:8]})")
        rows = [{"name": p.get("PackageName"), "id": p.get("PackageId"),
                 "created": _when(p.get("CreatedTime")),
                 "versions": sorted(versions.get(str(p.get("PackageName")), ()))} for p in packages]
        return self.console.render(request, session, Page("packages.html", "Packages", {"packages": rows}))

    # instances
    async def remove(self, request: web.Request, session: Session) -> web.StreamResponse:
        instance_id = request.match_info["id"]
        await self.b.call(session, "RemoveApplicationInstance", {"ApplicationInstanceId": instance_id})
        session.flash("ok", f"Removal of {instance_id} requested.")
        return redirect(ROOT + f"instances/{quote(instance_id, safe='')}")

    async def metrics(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.b.instance(request.match_info["id"])
        charts = await self.b.metric_charts(inst)
        page = Page("metrics.html", f"Metrics of {inst.name or inst.id}", {"inst": inst, "charts": charts})
        return self.console.render(request, session, page)

    async def metric_charts(self, request: web.Request, session: Session) -> web.StreamResponse:
        inst = await self.b.instance(request.match_info["id"])
        return self.console.fragment(request, session, "metric_charts.html", inst=inst,
                                     charts=await self.b.metric_charts(inst))

    # the relayed live preview (controlplane.previews)
    async def preview_state(self, request: web.Request, session: Session) -> web.StreamResponse:
        """htmx fragment polled by the preview page (each poll keeps the preview wanted)."""
        inst = await self.b.instance(request.match_info["id"])
        self.b.relay.want(inst.id)
        return self.console.fragment(request, session, "preview_state.html", inst=inst,
                                     **self.b.preview_state(inst))

    async def preview_stream(self, request: web.Request, session: Session) -> web.StreamResponse:
        """The latest frames the device posts, as ``multipart/x-mixed-replace`` (MJPEG), while the page is
        open and its session lasts."""
        inst = await self.b.instance(request.match_info["id"])
        resp = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        await resp.prepare(request)
        # Chromium shows a part once the part after it has arrived: when no new frame follows within half a
        # second (a paused camera), the last one is sent once more, so the page shows it instead of nothing
        last = 0
        unshown: Frame | None = None  # the newest frame sent once only
        try:
            while self.console.sessions.get(request.cookies.get(COOKIE)).session is session:
                if request.transport is None or request.transport.is_closing():
                    break  # the page went away
                frame = await self.b.relay.next_frame(inst.id, last, timeout=0.5)
                if frame is None:
                    frame, unshown = unshown, None
                    if frame is None:
                        continue
                else:
                    last, unshown = frame.seq, frame
                head = (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}"
                        "\r\n\r\n")
                await resp.write(head.encode() + frame.jpeg + b"\r\n")
        except ConnectionError:  # the client went away
            pass
        return resp

    # the deploy wizard
    async def _devices(self, session: Session) -> list[dict[str, str]]:
        items = await self.b.list_all(session, "ListDevices", "Devices")
        return [{"id": str(d["DeviceId"]), "name": str(d.get("Name") or d["DeviceId"])} for d in items]

    async def _cameras(self, session: Session) -> list[CameraChoice]:
        nodes = await self.b.list_all(session, "ListNodes", "Nodes", {"Category": "MEDIA_SOURCE"})
        return [CameraChoice(str(n.get("OwnerAccount") or self.b.plane.account_id), str(n.get("PackageName")),
                             str(n.get("PackageVersion")), str(n.get("Name"))) for n in nodes]

    async def deploy_start(self, request: web.Request, session: Session, *,
                           form: dict[str, str] | None = None, errors: list[str] | None = None,
                           status: int = 200) -> web.Response:
        if form is None:
            form = {"replace": request.query.get("replace", "")}
            source = request.query.get("from") or form["replace"]
            if source:  # start from an instance's graph (to replace it, or as a template)
                details = await self.b.call(session, "DescribeApplicationInstanceDetails",
                                            {"ApplicationInstanceId": source})
                form["manifest"] = str((details.get("ManifestPayload") or {}).get("PayloadData") or "")
                form["device"] = str(details.get("DefaultRuntimeContextDevice") or "")
                form["name"] = str(details.get("Name") or "") if form["replace"] else ""
        instances = [i for i in await self.b.instances() if not i.status.startswith("REMOVAL")]
        page = Page("deploy_start.html", "Deploy an application",
                    {"devices": await self._devices(session), "form": form, "manifest_errors": errors or [],
                     "instances": instances}, status=status)
        return self.console.render(request, session, page)

    @staticmethod
    async def _deploy_form(request: web.Request) -> dict[str, str]:
        data = await request.post()
        form: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, str):
                form[key] = value
            elif key == "manifest_file" and hasattr(value, "file"):
                raw = value.file.read(1024 * 1024 + 1)
                if len(raw) > 1024 * 1024:
                    raise ConsoleError("Application manifest: graph.json larger than 1 MiB", field="manifest")
                try:
                    form["manifest_upload"] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ConsoleError("Application manifest: the file is not UTF-8 text (graph.json)",
                                       field="manifest") from None
        if form.get("manifest_upload", "").strip():
            form["manifest"] = form.pop("manifest_upload")
        return form

    async def deploy_parameters(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self._deploy_form(request)
        problems = []
        if not form.get("device"):
            problems.append("Device: choose the device to deploy to")
        if not form.get("name", "").strip():
            problems.append("Instance name: give the instance a name")
        graph, graph_errors = read_graph(form.get("manifest", ""))
        problems += graph_errors
        if problems or graph is None:
            return await self.deploy_start(request, session, form=form, errors=problems, status=400)
        return await self._parameters_page(request, session, form, graph, {}, {})

    async def _parameters_page(self, request: web.Request, session: Session, form: dict[str, str], graph: Any,
                               errors: dict[str, list[str]], values: dict[str, str],
                               status: int = 200) -> web.Response:
        fields = form_fields(graph)
        page = Page("deploy_parameters.html", "Deploy: parameters", {
            "form": form, "fields": fields, "errors": errors, "values": values,
            "cameras": await self._cameras(session), "devices": await self._devices(session)}, status=status)
        return self.console.render(request, session, page)

    async def deploy(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self._deploy_form(request)
        graph, graph_errors = read_graph(form.get("manifest", ""))
        if graph is None:
            return await self.deploy_start(request, session, form=form, errors=graph_errors, status=400)
        result = build_overrides(graph, form, await self._cameras(session))
        if result.errors:
            return await self._parameters_page(request, session, form, graph, result.errors, result.values,
                                               status=400)
        params: dict[str, Any] = {"DefaultRuntimeContextDevice": form.get("device", ""),
                                  "Name": form.get("name", "").strip()[:255],
                                  "ManifestPayload": {"PayloadData": form["manifest"]}}
        if result.overrides is not None:
            params["ManifestOverridesPayload"] = {"PayloadData": json.dumps(result.overrides)}
        if form.get("replace"):
            params["ApplicationInstanceIdToReplace"] = form["replace"]
        try:
            answer = await self.b.call(session, "CreateApplicationInstance", params)
        except ConsoleError as exc:
            if exc.status == 403:
                raise
            return await self._parameters_page(request, session, form, graph, {"": [str(exc)]}, result.values,
                                               status=exc.status)
        instance_id = str(answer["ApplicationInstanceId"])
        session.flash("ok", f"Deployment of {params['Name']} started.")
        return redirect(ROOT + f"instances/{quote(instance_id, safe='')}")


def mount_plane_console(app: web.Application, plane: ControlPlane, *,
                        session_ttl_s: float | None = None,
                        clock: Callable[[], float] = time.monotonic) -> Console:
    """Serve the console for ``plane`` at ``/console/`` on ``app`` (before any catch-all route)."""
    backend = PlaneBackend(plane)
    backend.relay = relay_for(app)  # the device API's relay on this server (controlplane.previews)
    console = Console(backend, session_ttl_s=session_ttl_s, clock=clock)
    console.mount(app)
    PlanePages(console, backend).mount(app)
    return console
