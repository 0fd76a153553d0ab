"""The device's loop with its control plane (docs/device-protocol.md section 2).

Four tasks in one task group:

* **sync**: every ``HeartbeatSeconds`` send the device's *full* state (software, network interfaces, every
  application instance the control plane gave it, running or removed, job statuses, acknowledged signals) and
  keep the answer (the desired state). Out of reach: back off (capped, jittered), keep running, try again.
* **reconcile**: after each answer, deploy what is new (assembled into an application folder, deployed through
  the daemon's :class:`~panoflow.daemon.manager.Manager` under the instance's ``Name``; an instance that
  ``Replaces`` one on the device takes the old one's daemon name, so the daemon swaps them without a gap),
  remove what is ``REMOVED`` (or unknown to the control plane), apply signals once each and acknowledge them,
  start jobs.
* **telemetry**: tail the instances' log files and the device log into a bounded buffer, upload it in bounded
  batches (read positions saved in ``STATE_DIR/cloud-log-offsets.json`` after each upload), send metrics.
* **previews**: post the frames of the live previews the answer says are wanted (:mod:`.preview`).

A 401/403 stops all three (said once, clearly); the daemon and its instances carry on. Which control-plane
instance is which daemon instance is kept in ``STATE_DIR/cloud-instances.json``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from panoflow import __version__
from panoflow.camera_registry import CameraNotFound, CameraRegistry
from panoflow.cloud_client import DeviceContext
from panoflow.cloud_client.assemble import AssemblyError, assemble, parse_overrides
from panoflow.cloud_client.client import (
    Backoff,
    CloudClient,
    Offline,
    ProtocolError,
    Refused,
    UntrustedServer,
)
from panoflow.cloud_client.credentials import (
    Credentials,
    load_credentials,
    read_bundle_file,
    save_credentials,
)
from panoflow.cloud_client.jobs import Jobs
from panoflow.cloud_client.preview import PreviewPusher
from panoflow.cloud_client.telemetry import OFFSETS_FILE, LogBuffer, LogTailer, Source, dropped_metric
from panoflow.daemon import model as m
from panoflow.daemon.manager import Conflict, NotFound, QuotaExceeded
from panoflow.daemon.store import atomic_write_json, read_json
from panoflow.exceptions import CloudError, PanoflowError

__all__ = ["DAEMON_NODE", "MAP_FILE", "CloudDevice", "Entry", "ensure_credentials", "map_status",
           "network_interfaces", "run_device"]

log = structlog.get_logger("panoflow.cloud")

MAP_FILE = "cloud-instances.json"
#: the Node the device log's lines are uploaded under (their Instance is "")
DAEMON_NODE = "daemon"
NODE_STATUSES = ("RUNNING", "ERROR", "NOT_AVAILABLE", "PAUSED")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")  # the daemon's application names
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
APPLIED_MEMORY = 1000


@dataclass
class Entry:
    """One control-plane application instance on this device."""

    cloud_id: str
    name: str  # the daemon's application name
    daemon_id: str | None = None
    cameras: list[str] = field(default_factory=list)  # registered camera names (cloud-<node>-<id>)
    failed: str | None = None  # why it could not be deployed before reaching the daemon
    removed: bool = False
    removal_reported: bool = False
    replaced_by: str | None = None  # a successor deployed under this entry's daemon name
    last: dict[str, Any] = field(default_factory=dict)  # the last status reported while the daemon knew it

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Entry:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in names})


def map_status(status: str, health: str, nodes: Mapping[str, str], description: str) -> dict[str, Any]:
    """An instance's report: the daemon's own names are the Panorama API's; anything unknown is
    NOT_AVAILABLE."""
    return {"Status": status if status in m.STATUSES else m.DEPLOYMENT_FAILED,
            "HealthStatus": health if health in m.HEALTH else m.NOT_AVAILABLE,
            "StatusDescription": description[:255],
            "NodeStatuses": {node: s if s in NODE_STATUSES else "NOT_AVAILABLE" for node, s in nodes.items()}}


def network_interfaces() -> list[dict[str, str]]:
    """The machine's network interfaces with an IPv4 address (loopback last), as the sync reports them."""
    out = []
    for _index, name in socket.if_nameindex():
        ip = ""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                # SIOCGIFADDR
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                ip = socket.inet_ntoa(packed[20:24])
        except OSError:
            continue
        try:
            hw = Path(f"/sys/class/net/{name}/address").read_text().strip()
        except OSError:
            hw = ""
        out.append({"Name": name, "IpAddress": ip, "HwAddress": hw})
    out.sort(key=lambda i: ipaddress.ip_address(i["IpAddress"]).is_loopback)
    return out


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def renewal_due(creds: Credentials, now: dt.datetime | None = None) -> bool:
    """Whether less than half of the device token's life is left (never for tokens that do not expire)."""
    if not creds.token_expires or not creds.token_issued:
        return False
    try:
        issued = dt.datetime.fromisoformat(creds.token_issued.replace("Z", "+00:00"))
        expires = dt.datetime.fromisoformat(creds.token_expires.replace("Z", "+00:00"))
    except ValueError:
        return True  # unreadable: renew (a working token gets a new, readable expiry)
    return (now or _utcnow()) >= issued + (expires - issued) / 2


def _insecure(ctx: DeviceContext) -> bool:
    """Whether the daemon was started with ``--insecure-http`` (a context without the field: no)."""
    return bool(getattr(ctx, "insecure_http", False))


async def ensure_credentials(ctx: DeviceContext) -> Credentials:
    """``cloud.json``, or the claim of ``--provision BUNDLE`` (retried while the control plane is out of
    reach).

    Raises :class:`CloudError` when there is neither, or the control plane refuses the bundle (its
    message)."""
    stored = load_credentials(ctx.paths.root)
    bundle = read_bundle_file(ctx.provision) if ctx.provision is not None else None
    if stored is not None and (bundle is None or bundle["DeviceId"] == stored.device_id):
        if stored.control_plane != ctx.control_plane:
            stored = Credentials(**{**asdict(stored), "control_plane": ctx.control_plane})
            save_credentials(ctx.paths.root, stored)
        return stored
    if bundle is None:
        raise CloudError("this device has not joined a control plane yet: start it once with --provision "
                         "BUNDLE.zip (the Certificates zip that ProvisionDevice returned)")
    backoff = Backoff()
    ca_pem = str(bundle.get("CaCertificate") or "")
    async with CloudClient(ctx.control_plane, ca_pem=ca_pem, insecure_http=_insecure(ctx)) as client:
        while True:
            try:
                answer = await client.claim(device_id=bundle["DeviceId"], claim_token=bundle["ClaimToken"],
                                            version=__version__, hostname=socket.gethostname())
                break
            except Refused as exc:
                raise CloudError("the control plane refused the provisioning bundle of "
                                 f"{bundle['DeviceId']}: {exc}") from None
            # the claim token is never sent to a server the bundle's CA did not sign
            except UntrustedServer as exc:
                raise CloudError(str(exc)) from None
            except (Offline, ProtocolError) as exc:
                delay = backoff.next()
                log.warning("cloud_claim_retry", error=str(exc), retry_in_s=round(delay, 1))
                await anyio.sleep(delay)
    creds = Credentials(control_plane=ctx.control_plane,
                        device_id=str(answer.get("DeviceId") or bundle["DeviceId"]),
                        device_name=str(answer.get("DeviceName") or bundle.get("DeviceName") or ""),
                        account_id=str(answer.get("AccountId") or bundle.get("AccountId") or ""),
                        region=str(answer.get("Region") or bundle.get("Region") or ""), token=answer["Token"],
                        ca_pem=ca_pem, token_issued=_utcnow().isoformat(),
                        token_expires=str(answer.get("ExpiresAt") or ""))
    save_credentials(ctx.paths.root, creds)
    log.info("cloud_claimed", device_id=creds.device_id, control_plane=ctx.control_plane)
    return creds


async def run_device(ctx: DeviceContext) -> None:
    """Join the control plane and run the loops until cancelled (or refused: then return, the device runs
    on)."""
    creds = await ensure_credentials(ctx)
    async with CloudClient(creds.control_plane, creds.token, ca_pem=creds.ca_pem,
                           insecure_http=_insecure(ctx)) as client:
        await CloudDevice(ctx, creds, client).run()


class CloudDevice:
    """The loops of one device (see the module docstring)."""

    def __init__(self, ctx: DeviceContext, creds: Credentials, client: CloudClient):
        self.ctx = ctx
        self.manager = ctx.manager
        self.creds = creds
        self.client = client
        self.path = ctx.paths.root / MAP_FILE
        self.entries: dict[str, Entry] = {}
        self.acked: list[str] = []  # applied signal ids to acknowledge in the next sync
        self.applied: list[str] = []  # signal ids applied (re-deliveries are acknowledged, not re-applied)
        self._load()
        self.jobs = Jobs(ctx.paths.root, ctx.restart, self.sync_once, download=self._download)
        self.heartbeat = 5.0
        self.offline = False
        self.refused: str | None = None
        self.untrusted: str | None = None  # why the server's certificate was refused (None: it was not)
        self.transport = "https" if creds.control_plane.lower().startswith("https://") else "insecure-http"
        self.buffer = LogBuffer()
        self.tailer = LogTailer(ctx.paths.root / OFFSETS_FILE)
        self._sync_lock = anyio.Lock()
        self._desired: dict[str, Any] | None = None
        self._desired_ready = anyio.Event()
        self._wake = anyio.Event()
        self._busy: set[str] = set()  # instances being assembled
        self._tg: anyio.abc.TaskGroup | None = None
        self.previews = PreviewPusher(client, self._preview_source)  # the relayed live previews

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        try:
            doc = read_json(self.path)
            self.entries = {k: Entry.from_json(v) for k, v in doc.get("instances", {}).items()}
            self.acked = list(doc.get("acked", []))
            self.applied = list(doc.get("applied", []))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.error("cloud_state_unreadable", path=str(self.path), error=str(exc))

    def _save(self) -> None:
        atomic_write_json(self.path, {"instances": {k: asdict(e) for k, e in self.entries.items()},
                                      "acked": self.acked, "applied": self.applied[-APPLIED_MEMORY:]})

    # ------------------------------------------------------------------ the loops
    async def run(self) -> None:
        log.info("cloud_connecting", device_id=self.creds.device_id, control_plane=self.creds.control_plane,
                 transport=self.transport)
        if _insecure(self.ctx) and self.transport == "insecure-http":
            log.warning("cloud_insecure_http", control_plane=self.creds.control_plane,
                        what="--insecure-http: the device token, camera passwords and code cross the network "
                             "in clear and are not authenticated; for development only")
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._sync_loop, tg.cancel_scope)
            tg.start_soon(self._reconcile_loop)
            tg.start_soon(self._telemetry_loop)
            tg.start_soon(self.previews.run)
        if self.refused:
            log.error("cloud_refused", device_id=self.creds.device_id, error=self.refused,
                      what_now="the device keeps running its applications but no longer syncs; provision it "
                               "again (ProvisionDevice) and restart with --provision BUNDLE.zip")

    async def _sync_loop(self, scope: anyio.CancelScope) -> None:
        backoff = Backoff(cap=30.0)
        while True:
            try:
                ok = await self.sync_once()
            except Refused as exc:
                self.refused = str(exc)
                scope.cancel()
                return
            delay = self.heartbeat if ok else backoff.next()
            if ok:
                backoff.reset()
            with anyio.move_on_after(delay):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def _download(self, key: str, dest: Path, sha256: str, size: int | None) -> Path:
        """An asset of the control plane (an OTA wheel), verified against ``sha256``."""
        return await self.client.download(key, dest, sha256=sha256, size=size)

    def _preview_source(self, cloud_id: str) -> str | None:
        """The loopback preview URL of the daemon instance that runs control-plane instance ``cloud_id``."""
        entry = self.entries.get(cloud_id)
        if entry is None or entry.removed or entry.daemon_id is None:
            return None
        sup = self.manager.supervisors.get(entry.daemon_id)
        return sup.preview_url if sup is not None else None

    def wake(self) -> None:
        """Sync soon (something changed that the control plane should hear about)."""
        self._wake.set()

    async def renew_token(self) -> None:
        """Renew the device token once half of its life is gone: the new one is saved to ``cloud.json`` before
        it is used (the old one stays valid until then). Offline: tried again at the next sync."""
        if not renewal_due(self.creds):
            return
        try:
            answer = await self.client.renew_token()
        except (Offline, ProtocolError) as exc:
            log.warning("cloud_token_renewal_deferred", error=str(exc))
            return
        self.creds = Credentials(**{**asdict(self.creds), "token": answer["Token"],
                                    "token_issued": _utcnow().isoformat(),
                                    "token_expires": str(answer.get("ExpiresAt") or "")})
        save_credentials(self.ctx.paths.root, self.creds)
        self.client.token = self.creds.token
        log.info("cloud_token_renewed", expires=self.creds.token_expires)

    async def sync_once(self) -> bool:
        """One sync: report, keep the answer. ``False`` when the control plane is out of reach."""
        await self.renew_token()
        async with self._sync_lock:
            state = self.state()
            try:
                answer = await self.client.sync(state)
            except UntrustedServer as exc:
                if self.untrusted != str(exc):
                    log.error("cloud_untrusted_server", error=str(exc))
                self.untrusted = str(exc)
                self.offline = True
                return False
            except Offline as exc:
                if not self.offline:
                    log.warning("cloud_offline", error=str(exc))
                self.offline = True
                return False
            except ProtocolError as exc:
                log.error("cloud_sync_rejected", error=str(exc))
                return False
            if self.offline:
                log.info("cloud_online", control_plane=self.creds.control_plane, transport=self.transport)
            self.offline = False
            self.untrusted = None
            self.jobs.reported(state["Jobs"])
            sent = set(state["AckedSignals"])
            self.acked = [s for s in self.acked if s not in sent]
            for item in state["Instances"]:
                entry = self.entries.get(item["ApplicationInstanceId"])
                if entry is not None and item["Status"] == m.REMOVAL_SUCCEEDED:
                    entry.removal_reported = True
            self._save()
            try:
                self.heartbeat = min(300.0, max(0.2, float(answer.get("HeartbeatSeconds") or 5)))
            except (TypeError, ValueError):
                self.heartbeat = 5.0
            self._desired = answer
            self._desired_ready.set()
            self.previews.update(answer)
            return True

    async def _reconcile_loop(self) -> None:
        while True:
            await self._desired_ready.wait()
            self._desired_ready = anyio.Event()
            answer = self._desired
            if answer is None:
                continue
            try:
                await self.reconcile(answer)
            except Refused as exc:
                self._stop_refused(exc)
                return
            except PanoflowError as exc:
                log.error("cloud_reconcile_failed", error=str(exc))
            except Exception:  # a bug: say so, keep the device going
                log.exception("cloud_reconcile_crashed")

    def _stop_refused(self, exc: Refused) -> None:
        """The control plane refused this device (deleted, bad token): stop every cloud loop, keep the
        apps."""
        self.refused = str(exc)
        assert self._tg is not None
        self._tg.cancel_scope.cancel()

    async def _telemetry_loop(self) -> None:
        try:
            await self._telemetry()
        finally:  # stopping: keep how far the files were sent (what was not is read again after the restart)
            self._save_offsets()

    def _save_offsets(self) -> None:
        try:
            self.tailer.save(self.buffer)
        except OSError as exc:
            log.warning("cloud_log_offsets_not_saved", path=str(self.tailer.state_file), error=str(exc))

    async def _telemetry(self) -> None:
        next_metrics = 0.0
        while True:
            sources = self._log_sources()
            await anyio.to_thread.run_sync(self.tailer.poll, sources, self.buffer)
            if not self.offline:
                try:
                    if await self._upload_logs():
                        self._save_offsets()  # at most once per upload round, and only when a position moved
                    if anyio.current_time() >= next_metrics:
                        text = await self.ctx.metrics_text() + dropped_metric(self.buffer.dropped)
                        await self.client.metrics(text)
                        next_metrics = anyio.current_time() + max(self.heartbeat, 5.0)
                except Offline:
                    pass  # the sync loop notices and says so
                except Refused as exc:
                    self._stop_refused(exc)
                    return
                except ProtocolError as exc:
                    log.warning("cloud_telemetry_rejected", error=str(exc))
            await anyio.sleep(1.0)

    async def _upload_logs(self, max_batches: int = 20) -> int:
        """Send up to ``max_batches`` batches; how many left the buffer (an :class:`Offline` stops early: the
        batches sent before it count, as the caller's next round saves them)."""
        sent = 0
        for _ in range(max_batches):
            upto, lines = self.buffer.batch()
            if not lines:
                return sent
            try:
                await self.client.logs(lines)
            # this batch will never be accepted: drop it rather than block the rest
            except ProtocolError as exc:
                log.warning("cloud_logs_batch_dropped", lines=len(lines), error=str(exc))
            self.buffer.commit(upto)
            sent += 1
        return sent

    def _log_sources(self) -> list[Source]:
        owner: dict[str, Entry] = {}  # daemon name -> the entry whose instance runs under it
        for entry in self.entries.values():
            rec = self.manager.records.get(entry.daemon_id or "")
            if rec is None or entry.removed:
                continue
            best = owner.get(entry.name)
            if best is None or rec.status == m.DEPLOYMENT_SUCCEEDED:
                owner[entry.name] = entry
        sources = [Source(self.ctx.paths.device_log, "", DAEMON_NODE)]  # the device's own log
        for name, entry in owner.items():
            logs = self.ctx.paths.app_logs(name)
            sources.append(Source(logs / "instance.log", entry.cloud_id, ""))
            try:
                nodes = sorted(p.name for p in logs.iterdir() if p.is_dir())
            except OSError:
                nodes = []
            sources += [Source(logs / node / "console_output", entry.cloud_id, node) for node in nodes]
        return sources

    # ------------------------------------------------------------------ the report
    def state(self) -> dict[str, Any]:
        """The full state the next sync carries."""
        instances = []
        for entry in self.entries.values():
            report = self._report(entry)
            instances.append({"ApplicationInstanceId": entry.cloud_id, **report})
        return {"Software": {"Version": __version__}, "NetworkInterfaces": network_interfaces(),
                "Instances": instances, "Jobs": self.jobs.statuses(), "AckedSignals": list(self.acked),
                "Transport": self.transport}

    def _report(self, entry: Entry) -> dict[str, Any]:
        if entry.removed:
            return map_status(m.REMOVAL_SUCCEEDED, m.NOT_AVAILABLE, {}, "removed")
        if entry.failed:
            return map_status(m.DEPLOYMENT_FAILED, m.NOT_AVAILABLE, {}, entry.failed)
        rec = self.manager.records.get(entry.daemon_id or "")
        if rec is None:
            if entry.daemon_id is None:
                busy = entry.cloud_id in self._busy
                return map_status(m.DEPLOYMENT_IN_PROGRESS if busy else m.DEPLOYMENT_PENDING, m.NOT_AVAILABLE,
                                  {},
                                  "downloading the application's packages" if busy else "waiting to deploy")
            if entry.replaced_by is not None:
                return map_status(m.REMOVAL_SUCCEEDED, m.NOT_AVAILABLE, {},
                                  f"replaced by {entry.replaced_by}")
            if entry.last.get("Status") == m.DEPLOYMENT_FAILED:
                return entry.last
            return map_status(m.DEPLOYMENT_PENDING, m.NOT_AVAILABLE, {}, "waiting to deploy")
        view = self.manager.view(rec)
        nodes = {n["node_id"]: n["current_status"] for n in view["nodes"]}
        entry.last = map_status(rec.status, view["health_status"], nodes, rec.status_description)
        return entry.last

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self, answer: dict[str, Any]) -> None:
        """Make the device what ``answer`` asks for (see the module docstring)."""
        desired = {str(i["ApplicationInstanceId"]): i for i in answer.get("Instances") or []
                   if isinstance(i, dict) and i.get("ApplicationInstanceId")}
        wanted = [i for i in desired.values() if i.get("DesiredState", "RUNNING") == "RUNNING"]
        successors = {
            str(i["Replaces"]): str(i["ApplicationInstanceId"]) for i in wanted if i.get("Replaces")
        }
        for inst in wanted:
            entry = self.entries.get(inst["ApplicationInstanceId"])
            if entry is None or self._needs_deploy(entry):
                await self._deploy(inst)
        for cloud_id, inst in desired.items():
            if inst.get("DesiredState") == "REMOVED":
                await self._remove_desired(cloud_id, successors.get(cloud_id))
        for cloud_id, entry in list(self.entries.items()):
            if cloud_id in desired:
                continue
            if entry.removed and (entry.removal_reported or entry.replaced_by):
                del self.entries[cloud_id]
            elif not entry.removed:
                log.warning("cloud_instance_unknown", instance=cloud_id, name=entry.name,
                            what="the control plane no longer lists it: removing it from the device")
                await self._remove(entry)
                del self.entries[cloud_id]
        await self._signals(answer.get("Signals") or [])
        for job in answer.get("Jobs") or []:
            if isinstance(job, dict) and self.jobs.take(job):
                assert self._tg is not None
                self._tg.start_soon(self.jobs.run, str(job["JobId"]))
        self._save()

    def _needs_deploy(self, entry: Entry) -> bool:
        if entry.removed or entry.failed or entry.cloud_id in self._busy:
            return False
        if entry.daemon_id is None:
            return True
        if entry.daemon_id in self.manager.records:
            return False
        return entry.last.get("Status") != m.DEPLOYMENT_FAILED and entry.replaced_by is None

    def _daemon_name(self, inst: dict[str, Any]) -> str:
        cloud_id = str(inst["ApplicationInstanceId"])
        old = self.entries.get(str(inst.get("Replaces") or ""))
        if old is not None and not old.removed and old.daemon_id in self.manager.records:
            return old.name
        base = _SAFE.sub("-", str(inst.get("Name") or "")).strip("-_")[:50]
        if not _NAME.match(base):
            base = cloud_id
        taken = {e.name for k, e in self.entries.items() if k != cloud_id and not e.removed}
        mine = {e.daemon_id for e in self.entries.values()}
        taken |= {r.name for r in self.manager.active() if r.instance_id not in mine}  # local deployments
        if base in taken:
            base = f"{base[:40]}-{cloud_id[-8:]}"
        return base if _NAME.match(base) else cloud_id[-40:]

    def _register_cameras(self, cloud_id: str, cameras: Any) -> tuple[dict[str, list[str]], list[str]]:
        registry = CameraRegistry(self.ctx.cameras_file)
        bound: dict[str, list[str]] = {}
        names: list[str] = []
        for node, cam in (cameras or {}).items() if isinstance(cameras, dict) else ():
            if not isinstance(cam, dict) or not cam.get("StreamUrl"):
                raise AssemblyError(f"camera node {node!r}: the control plane sent no StreamUrl")
            name = f"cloud-{_SAFE.sub('_', str(node))[:40]}-{cloud_id[-8:]}"
            registry.add(name, str(cam["StreamUrl"]), cam.get("Username") or None,
                         cam.get("Password") or None,
                         replace=True)
            names.append(name)
            bound[str(node)] = [f"camera:{name}"]
        return bound, names

    async def _deploy(self, inst: dict[str, Any]) -> None:
        cloud_id = str(inst["ApplicationInstanceId"])
        entry = self.entries.get(cloud_id) or Entry(cloud_id, self._daemon_name(inst))
        self.entries[cloud_id] = entry
        self._busy.add(cloud_id)
        try:
            assembled = await assemble(self.client, self.ctx.paths.archives, inst)
            overrides = parse_overrides(inst)
            cameras, entry.cameras = self._register_cameras(cloud_id, inst.get("Cameras"))
            rec = self.manager.create(name=entry.name, archive=assembled.archive, graph=assembled.graph,
                                      overrides=overrides, cameras=cameras, params={},
                                      description=f"control plane instance {cloud_id}",
                                      # the instance's runtime role, assumed by the daemon's AWS gateway
                                      aws={"role_arn": inst["RuntimeRoleArn"]} if inst.get("RuntimeRoleArn")
                                      else None)
        except (AssemblyError, QuotaExceeded) as exc:
            entry.failed = str(exc)
            log.error("cloud_deployment_failed", instance=cloud_id, name=entry.name, reason=entry.failed)
            return
        except PanoflowError as exc:
            if isinstance(exc, (Refused,)):
                raise
            if not isinstance(exc, (Offline, Conflict, NotFound, ProtocolError)):
                entry.failed = str(exc)  # e.g. an invalid camera URL in the registry
                log.error("cloud_deployment_failed", instance=cloud_id, name=entry.name, reason=entry.failed)
                return
            log.warning("cloud_deployment_retry", instance=cloud_id, error=str(exc))
            return
        finally:
            self._busy.discard(cloud_id)
            self._save()
        entry.daemon_id = rec.instance_id
        old = next((e for e in self.entries.values() if e is not entry and e.name == entry.name
                    and not e.removed and e.daemon_id in self.manager.records), None)
        if old is not None:
            old.replaced_by = cloud_id
        log.info("cloud_deploying", instance=cloud_id, name=entry.name, daemon_instance=rec.instance_id,
                 replaces=old.cloud_id if old else None)
        self._save()
        self.wake()

    async def _remove_desired(self, cloud_id: str, successor_id: str | None) -> None:
        entry = self.entries.get(cloud_id)
        if entry is None:  # never deployed here: nothing to do but say it is gone
            self.entries[cloud_id] = Entry(cloud_id, "", removed=True)
            return
        if entry.removed:
            return
        rec = self.manager.records.get(entry.daemon_id or "")
        successor = self.entries.get(successor_id or "")
        if (
            rec is not None
            and successor is not None
            and not successor.failed
            and successor.name == entry.name
        ):
            new = self.manager.records.get(successor.daemon_id or "")
            if new is None and successor.daemon_id is None:
                return  # the successor is being prepared: the daemon's swap will remove this one
            if new is not None and new.status in (m.DEPLOYMENT_PENDING, m.DEPLOYMENT_IN_PROGRESS):
                return
        await self._remove(entry)

    async def _remove(self, entry: Entry) -> None:
        if entry.daemon_id and entry.daemon_id in self.manager.records:
            try:
                await self.manager.remove(entry.daemon_id)
            except NotFound:
                pass
        registry = CameraRegistry(self.ctx.cameras_file)
        for name in entry.cameras:
            try:
                registry.remove(name)
            except (CameraNotFound, PanoflowError):
                pass
        entry.removed = True
        log.info("cloud_instance_removed", instance=entry.cloud_id, name=entry.name)
        self._save()
        self.wake()

    async def _signals(self, signals: list[Any]) -> None:
        for sig in signals:
            if not isinstance(sig, dict) or not sig.get("SignalId"):
                continue
            sid = str(sig["SignalId"])
            if sid in self.applied:
                if sid not in self.acked:
                    self.acked.append(sid)
                continue
            entry = self.entries.get(str(sig.get("ApplicationInstanceId")))
            rec = self.manager.records.get(entry.daemon_id or "") if entry is not None else None
            if rec is None or entry is None or entry.removed or rec.status == m.DEPLOYMENT_FAILED:
                if entry is not None and entry.daemon_id is None and not entry.failed and not entry.removed:
                    continue  # not deployed yet: apply it once it is
                log.warning("cloud_signal_ignored", signal_id=sid, instance=sig.get("ApplicationInstanceId"),
                            why="the instance does not run on this device")
                self._applied(sid)
                continue
            if rec.status != m.DEPLOYMENT_SUCCEEDED:
                continue  # deploying: later
            try:
                code, body = await self.manager.signal(rec.instance_id, str(sig.get("NodeInstanceId")),
                                                       str(sig.get("Signal")))
            except (Conflict, NotFound):
                continue  # not running right now (restarting): the next answer brings the signal again
            if code != 200:
                log.warning("cloud_signal_refused", signal_id=sid, node=sig.get("NodeInstanceId"),
                            error=body.get("error"))
            self._applied(sid)
            self.wake()

    def _applied(self, sid: str) -> None:
        self.applied.append(sid)
        del self.applied[:-APPLIED_MEMORY]
        self.acked.append(sid)
