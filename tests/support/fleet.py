"""A fleet on loopback: ``panoflow control-plane`` in a thread over HTTPS (restartable on the same port,
database and CA), with the operator's boto3 client, and real ``panoflow serve`` devices that join it
(:func:`join`)."""

from __future__ import annotations

import hashlib
import io
import json
import ssl
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from panoflow.controlplane import ControlPlane, create_access_key, open_store, serve_in_thread
from panoflow.controlplane.tls import server_context
from tests.support.control_plane import make_client, raw_request, signed_headers
from tests.support.daemons import SECRETS, Daemon

__all__ = ["HEARTBEAT", "ControlPlaneServer", "create_instance", "instance_running", "join", "publish_app",
           "wait"]

#: the control plane's heartbeat period (seconds): devices report this often
HEARTBEAT = 1.0


class ControlPlaneServer:
    """``panoflow control-plane`` in a thread over a SQLite file, over HTTPS with the CA it keeps in its
    database (as ``control-plane serve`` does); stop() and start() keep port, database and CA."""

    def __init__(self, root: Path):
        self.store = open_store(f"sqlite:///{root / 'cp.db'}")
        self.ssl, ca_pem = server_context(self.store, [])
        self.ca_file = root / "ca.pem"
        self.ca_file.write_text(ca_pem)
        self.client_ssl = ssl.create_default_context(cafile=str(self.ca_file))
        self.plane = ControlPlane(self.store, assets=root / "assets", heartbeat_s=HEARTBEAT, ca_pem=ca_pem)
        self.key = create_access_key(self.store)
        self.port = 0
        self.url = ""
        self._serving: AbstractContextManager[str] | None = None
        self.pano: Any = None

    def start(self) -> ControlPlaneServer:
        self._serving = serve_in_thread(self.plane, port=self.port, ssl_context=self.ssl)
        self.url = self._serving.__enter__()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pano = make_client(self.url, self.key.access_key_id, self.key.secret_access_key,
                                str(self.ca_file))
        return self

    def stop(self) -> None:
        if self.pano is not None:
            self.pano.close()
        if self._serving is not None:
            self._serving.__exit__(None, None, None)
            self._serving = None

    # ------------------------------------------------------------------ operator helpers
    def provision(self, path: Path, name: str = "edge-1") -> str:
        answer = self.pano.provision_device(Name=name)
        path.write_bytes(answer["Certificates"])
        return str(answer["DeviceId"])

    def register_package(self, package_dir: Path, assets_dir: Path) -> None:
        """Upload a package's assets and package.json to the asset store, then RegisterPackageVersion."""
        data = (package_dir / "package.json").read_bytes()
        name = json.loads(data)["nodePackage"]["name"]
        patch = hashlib.sha256(data).hexdigest()
        created = self.pano.create_package(PackageName=name)
        storage = created["StorageLocation"]
        for file in sorted(assets_dir.iterdir()):
            with open(file, "rb") as f:
                self.plane.assets.put(f"{storage['BinaryPrefixLocation']}/{file.name}", f)
        self.plane.assets.put(f"{storage['ManifestPrefixLocation']}/{patch}.json", io.BytesIO(data))
        self.pano.register_package_version(PackageId=created["PackageId"], PackageVersion="1.0",
                                           PatchVersion=patch, MarkLatest=True)

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self.pano.describe_device(DeviceId=device_id))

    def instance(self, instance_id: str) -> dict[str, Any]:
        return dict(self.pano.describe_application_instance(ApplicationInstanceId=instance_id))

    def nodes(self, instance_id: str) -> dict[str, str]:
        out = self.pano.list_application_instance_node_instances(ApplicationInstanceId=instance_id)
        return {n["NodeInstanceId"]: n["CurrentStatus"] for n in out["NodeInstances"]}

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.pano.describe_device_job(JobId=job_id))

    def operator_get(self, path: str) -> Any:
        headers = signed_headers(self.url, self.key, "GET", path)
        status, _headers, body = raw_request(self.url, "GET", path, headers, context=self.client_ssl)
        assert status == 200, (path, status, body)
        return body


def wait(predicate: Callable[[], Any], timeout: float = 40, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - the control plane may be restarting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def publish_app(cp: ControlPlaneServer, app: dict[str, Any]) -> None:
    """Register the app's code package and its template-job camera on ``cp``."""
    cp.register_package(app["package"], app["root"] / "assets")
    cp.pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="CAM", OutputPackageVersion="1.0",
        NodeName="camera_node", TemplateParameters={"StreamUrl": app["stream"]})


def join(make_daemon: Callable[..., Daemon], cp: ControlPlaneServer, tmp_path: Path, name: str = "dev",
         *extra: str) -> tuple[Daemon, str]:
    """Provision a device on ``cp`` and start a ``panoflow serve`` that joins it; wait until it shows
    ONLINE."""
    bundle = tmp_path / f"{name}.zip"
    device_id = cp.provision(bundle, name=f"edge-{name}")
    daemon = make_daemon(name, "--control-plane", cp.url, "--provision", str(bundle), *extra)
    wait(lambda: cp.device(device_id)["DeviceConnectionStatus"] == "ONLINE", 30, "the device to be ONLINE")
    wait(lambda: (daemon.state_dir / "cloud.json").exists(), 10, "cloud.json")
    token = json.loads((daemon.state_dir / "cloud.json").read_text())["Token"]
    SECRETS.append(token)
    return daemon, device_id


def create_instance(cp: ControlPlaneServer, device_id: str, app: dict[str, Any], **kwargs: Any) -> str:
    """CreateApplicationInstance ``people`` of ``app["graph"]`` on the device; returns the instance id."""
    return str(cp.pano.create_application_instance(
        Name="people", DefaultRuntimeContextDevice=device_id, ManifestPayload={"PayloadData": app["graph"]},
        **kwargs)["ApplicationInstanceId"])


def instance_running(cp: ControlPlaneServer, instance_id: str) -> Callable[[], bool]:
    """A check for :func:`wait`: the instance deployed and reports RUNNING."""
    def check() -> bool:
        inst = cp.instance(instance_id)
        return bool(inst["Status"] == "DEPLOYMENT_SUCCEEDED" and inst["HealthStatus"] == "RUNNING")
    return check
