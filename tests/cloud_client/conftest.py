"""Fixtures for the device side of the device protocol: a small real HTTP server for asset downloads (the parts'
tests), and for the integration tests a real control plane (in a thread, restartable on the same port and
database), the daemon tests' counter app built and registered on it, and real ``panoflow serve`` devices."""

from __future__ import annotations

import asyncio
import hashlib
import io
import ssl
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.daemon.conftest import (  # noqa: F401 - fixtures the integration tests use
    SECRETS,
    Daemon,
    _no_secrets_in_logs,
    clips,
    make_daemon,
    panoflow_argv,
)


class AssetServer:
    """Serves ``files[key]`` at ``/_panoflow/assets/<key>`` (404 otherwise), ``status`` overrides every answer."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: int | None = None
        self.url = ""
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        self.requests.append(key)
        if self.status is not None:
            return web.json_response({"Code": "AccessDeniedException", "Message": "go away"}, status=self.status)
        if key not in self.files:
            return web.json_response({"Code": "NotFoundException", "Message": f"no asset {key}"}, status=404)
        return web.Response(body=self.files[key])


@pytest.fixture
def asset_server() -> Iterator[AssetServer]:
    server = AssetServer()
    app = web.Application()
    app.router.add_get("/_panoflow/assets/{key:.*}", server.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        # a connection the server was still accepting when the loop stopped (a loaded machine runs its callbacks
        # late) is cancelled and its transport closed, instead of being destroyed pending with the loop
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(asyncio.sleep(0))  # the closed transports' connection_lost callbacks
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield server
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)  # the server closes its connections
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


# ---------------------------------------------------------------------- a real control plane and device
HEARTBEAT = 1.0
ACCOUNT = "123456789012"


class ControlPlaneServer:
    """``panoflow control-plane`` in a thread over a SQLite file, over HTTPS with the CA it keeps in its database
    (as ``control-plane serve`` does); stop() and start() keep port, database and CA."""

    def __init__(self, root: Path):
        from panoflow.controlplane import ControlPlane, create_access_key, open_store
        from panoflow.controlplane.tls import server_context

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
        from panoflow.controlplane import serve_in_thread
        from tests.controlplane.conftest import make_client

        self._serving = serve_in_thread(self.plane, port=self.port, ssl_context=self.ssl)
        self.url = self._serving.__enter__()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pano = make_client(self.url, self.key.access_key_id, self.key.secret_access_key, str(self.ca_file))
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
        self.pano.register_package_version(PackageId=created["PackageId"], PackageVersion="1.0", PatchVersion=patch,
                                           MarkLatest=True)

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
        from tests.controlplane.conftest import raw_request, signed_headers

        status, _headers, body = raw_request(self.url, "GET", path, signed_headers(self.url, self.key, "GET", path),
                                             context=self.client_ssl)
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


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path).start()
    yield server
    server.stop()
    server.store.close()


def built_counter_app(root: Path) -> tuple[Path, Path]:
    """The daemon tests' counter app with its code asset built (code asset + descriptor in assets/, as
    RegisterPackageVersion wants); returns the app folder and its code package folder."""
    from tests.daemon.apps import counter_app

    root = counter_app(root)
    pkg = root / "packages" / f"{ACCOUNT}-TEST_CODE-1.0"
    (pkg / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n")
    r = subprocess.run(panoflow_argv("build-container", "--container-asset-name", "code_asset", "--package-path",
                                     f"packages/{pkg.name}", "--docker", "never", "--no-index"),
                       cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return root, pkg


@pytest.fixture(scope="session")
def cloud_app(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> dict[str, Any]:
    """The built counter app, its camera node a template-job camera package ``CAM`` that streams a test clip."""
    root, pkg = built_counter_app(tmp_path_factory.mktemp("cloud-app") / "app")
    graph_file = root / "graphs" / "test_app" / "graph.json"
    graph = json.loads(graph_file.read_text())["nodeGraph"]
    graph["packages"] = [p for p in graph["packages"] if p["name"] != "panorama::abstract_rtsp_media_source"]
    graph["packages"].append({"name": f"{ACCOUNT}::CAM", "version": "1.0"})
    for node in graph["nodes"]:
        if node["name"] == "camera_node":
            node.clear()
            node.update({"name": "camera_node", "interface": f"{ACCOUNT}::CAM.camera_node"})
    return {"root": root, "package": pkg, "graph": json.dumps({"nodeGraph": graph}, indent=2),
            "stream": f"file://localhost{clips['a']}?loop=1&realtime=1"}


def publish_app(cp: ControlPlaneServer, app: dict[str, Any]) -> None:
    """Register the app's code package and its template-job camera on ``cp``."""
    cp.register_package(app["package"], app["root"] / "assets")
    cp.pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="CAM", OutputPackageVersion="1.0", NodeName="camera_node",
        TemplateParameters={"StreamUrl": app["stream"]})


def join(make_daemon: Callable[..., Daemon], cp: ControlPlaneServer, tmp_path: Path, name: str = "dev",
         *extra: str) -> tuple[Daemon, str]:
    """Provision a device on ``cp`` and start a ``panoflow serve`` that joins it; wait until it shows ONLINE."""
    bundle = tmp_path / f"{name}.zip"
    device_id = cp.provision(bundle, name=f"edge-{name}")
    daemon = make_daemon(name, "--control-plane", cp.url, "--provision", str(bundle), *extra)
    wait(lambda: cp.device(device_id)["DeviceConnectionStatus"] == "ONLINE", 30, "the device to be ONLINE")
    wait(lambda: (daemon.state_dir / "cloud.json").exists(), 10, "cloud.json")
    token = json.loads((daemon.state_dir / "cloud.json").read_text())["Token"]
    SECRETS.append(token)
    return daemon, device_id


__all__ = ["ACCOUNT", "HEARTBEAT", "ControlPlaneServer", "built_counter_app", "join", "panoflow_argv", "publish_app",
           "wait"]
