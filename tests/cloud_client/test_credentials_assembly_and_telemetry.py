"""The device side's parts on their own: credentials, the client's failure kinds, assembly, the log buffer and
tailer, status mapping, the OTA failure path. Real files, real HTTP over loopback (an asset server of our own,
:class:`AssetServer`), a real pip."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import random
import stat
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from panoflow.cloud_client.assemble import AssemblyError, assemble, content_id
from panoflow.cloud_client.client import Backoff, CloudClient, Offline, Refused
from panoflow.cloud_client.credentials import (
    BundleError,
    Credentials,
    load_credentials,
    read_bundle_file,
    save_credentials,
)
from panoflow.cloud_client.jobs import Jobs, ota_environment
from panoflow.cloud_client.sync import map_status, network_interfaces
from panoflow.cloud_client.telemetry import MAX_BATCH_BYTES, LogBuffer, LogTailer, Source
from panoflow.daemon.logfiles import RotatingWriter
from tests.support.ports import free_port


class AssetServer:
    """Serves ``files[key]`` at ``/_panoflow/assets/<key>`` (404 otherwise), ``status`` overrides every
    answer."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: int | None = None
        self.url = ""
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        self.requests.append(key)
        if self.status is not None:
            return web.json_response({"Code": "AccessDeniedException", "Message": "go away"},
                                     status=self.status)
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
        # a connection the server was still accepting when the loop stopped (a loaded machine runs its
        # callbacks late) is cancelled and its transport closed, instead of being destroyed pending with the
        # loop
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


GRAPH = json.dumps({"nodeGraph": {"envelopeVersion": "2021-01-01", "packages": [], "nodes": [], "edges": []}})


def _desired(assets: list[dict[str, Any]], manifest: Any = None, name: str = "people") -> dict[str, Any]:
    return {"ApplicationInstanceId": "applicationInstance-abc", "Name": name, "DesiredState": "RUNNING",
            "ManifestPayload": GRAPH, "ManifestOverridesPayload": None, "Packages": [
                {"Account": "panorama", "Name": "abstract_rtsp_media_source", "Version": "1.0",
                 "Manifest": None, "Assets": []},
                {"Account": "123456789012", "Name": "CODE", "Version": "1.0", "PatchVersion": "p1",
                 "Manifest": manifest if manifest is not None else {"nodePackage": {"name": "CODE"}},
                 "Assets": assets}]}


def _asset(server: AssetServer, data: bytes, *, claimed: bytes | None = None) -> dict[str, Any]:
    sha = hashlib.sha256(claimed if claimed is not None else data).hexdigest()
    key = f"123456789012/nodePackages/pkg-1/binaries/{sha}.tar.gz"
    server.files[key] = data
    return {"Key": key, "FileName": f"{sha}.tar.gz", "Sha256": sha, "Size": len(data)}


# ---------------------------------------------------------------------- credentials
def test_credentials_file_is_private_and_round_trips(tmp_path: Path) -> None:
    creds = Credentials("http://127.0.0.1:1", "device-1", "edge", "123456789012", "us-east-1", "s3cret-token")
    save_credentials(tmp_path, creds)
    path = tmp_path / "cloud.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["Token"] == "s3cret-token"
    assert load_credentials(tmp_path) == creds
    assert "s3cret" not in repr(creds)
    assert load_credentials(tmp_path / "nowhere") is None


def test_bundle_read_and_clear_errors(tmp_path: Path) -> None:
    from panoflow.controlplane.provisioning import make_bundle

    bundle = make_bundle(device_id="device-x", device_name="edge", account_id="123456789012",
                         region="us-east-1", now=dt.datetime.now(dt.timezone.utc))
    (tmp_path / "b.zip").write_bytes(bundle.data)
    assert read_bundle_file(tmp_path / "b.zip")["ClaimToken"] == bundle.token
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a panoflow provisioning bundle"):
        read_bundle_file(tmp_path / "bad.zip")
    with pytest.raises(BundleError, match="cannot read"):
        read_bundle_file(tmp_path / "missing.zip")


# ---------------------------------------------------------------------- client
def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [b.next() for _ in range(10)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[-1] >= 4.0 and max(delays) <= 8.0
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter
    b.reset()
    assert b.next() <= 1.0


@pytest.mark.anyio
async def test_failures_are_offline_or_refused(asset_server: AssetServer, tmp_path: Path) -> None:
    async with CloudClient(f"http://127.0.0.1:{free_port()}", "t", insecure_http=True,
                           timeout_s=3) as client:
        with pytest.raises(Offline, match="cannot reach"):
            await client.sync({})
    asset_server.status = 403
    async with CloudClient(asset_server.url, "t", insecure_http=True) as client:
        with pytest.raises(Refused, match="go away"):
            await client.download("k/x.bin", tmp_path / "x.bin", sha256="0" * 64)
    asset_server.status = 503
    async with CloudClient(asset_server.url, "t", insecure_http=True) as client:
        with pytest.raises(Offline):
            await client.download("k/x.bin", tmp_path / "x.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# ---------------------------------------------------------------------- assembly
@pytest.mark.anyio
async def test_assembly_downloads_verifies_and_reuses(asset_server: AssetServer, tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    desired = _desired([_asset(asset_server, b"code asset bytes")])
    async with CloudClient(asset_server.url, "t", insecure_http=True) as client:
        first = await assemble(client, archives, desired)
        folder = archives / first.archive
        assert first.graph == "graphs/people/graph.json" and (folder / first.graph).read_text() == GRAPH
        assert json.loads((folder / "packages/123456789012-CODE-1.0/package.json").read_text()) == {
            "nodePackage": {"name": "CODE"}}
        assert not (folder / "packages" / "panorama-abstract_rtsp_media_source-1.0").exists()
        (asset,) = (folder / "assets").iterdir()
        assert asset.read_bytes() == b"code asset bytes"
        again = await assemble(client, archives, desired)
        assert again == first and len(asset_server.requests) == 1  # identical redeploy: the same folder
        # another graph with the same asset: linked from the first folder, not downloaded again
        other = dict(desired, ManifestPayload=GRAPH + " ")
        second = await assemble(client, archives, other)
        assert second.archive != first.archive and len(asset_server.requests) == 1
    assert content_id(desired) == first.archive


@pytest.mark.anyio
async def test_assembly_refuses_a_sha_mismatch(asset_server: AssetServer, tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    desired = _desired([_asset(asset_server, b"tampered bytes", claimed=b"the real bytes")])
    async with CloudClient(asset_server.url, "t", insecure_http=True) as client:
        with pytest.raises(AssemblyError, match="does not match its SHA-256"):
            await assemble(client, archives, desired)
    assert list(archives.iterdir()) == []  # nothing half-built stays


@pytest.mark.anyio
async def test_assembly_refuses_a_null_manifest_and_bad_names(asset_server: AssetServer,
                                                              tmp_path: Path) -> None:
    desired = _desired([])
    desired["Packages"][1]["Manifest"] = None
    async with CloudClient(asset_server.url, "t", insecure_http=True) as client:
        with pytest.raises(AssemblyError, match="has no registered manifest"):
            await assemble(client, tmp_path, desired)
        bad = _desired([{"Key": "k", "FileName": "../../etc/passwd", "Sha256": "0" * 64}])
        with pytest.raises(AssemblyError, match="plain FileName"):
            await assemble(client, tmp_path, bad)
        missing = _desired([{"Key": "nowhere/x.bin", "FileName": "x.bin", "Sha256": "0" * 64}])
        with pytest.raises(AssemblyError, match="upload the package's assets again"):
            await assemble(client, tmp_path, missing)


# ---------------------------------------------------------------------- logs
def test_log_buffer_is_bounded_and_counts_drops() -> None:
    buf = LogBuffer(max_lines=100)
    for i in range(250):
        buf.add("inst", "node", f"line {i}")
    assert len(buf) == 100 and buf.dropped == 150
    upto, batch = buf.batch(max_lines=30)
    assert [e["Line"] for e in batch][:2] == ["line 150", "line 151"] and len(batch) == 30
    buf.add("inst", "node", "late")  # drops one more while the batch is in flight
    buf.commit(upto)
    assert len(buf) == 71 and buf.dropped == 151  # 100 - 29 still unsent of the batch + "late"
    big = LogBuffer()
    for _ in range(600):
        big.add("i", "n", "x" * 4000)
    _upto, batch = big.batch()
    assert 0 < len(batch) < 500 and len(json.dumps({"Lines": batch}).encode()) <= MAX_BATCH_BYTES
    small = LogBuffer()
    for i in range(800):
        small.add("i", "n", str(i))
    assert len(small.batch()[1]) == 500


def test_tailer_reads_appended_lines_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "instance.log"
    path.write_text("old history\n")
    tailer, buf = LogTailer(), LogBuffer()
    src = [Source(path, "applicationInstance-1", "")]
    assert tailer.poll(src, buf) == 0  # a file seen for the first time is read from its end
    writer = RotatingWriter(path, max_bytes=40)
    writer.write_line("one rtsp://admin:pw@cam/x")
    writer.write_line("two")
    writer.write_line("three")  # rotates: "one", "two" are in the backup now
    tailer.poll(src, buf)
    writer.close()
    lines = [e["Line"] for e in buf.batch()[1]]
    assert lines == ["one rtsp://admin:***@cam/x", "two", "three"]


# ---------------------------------------------------------------------- status
def test_status_mapping() -> None:
    report = map_status("DEPLOYMENT_SUCCEEDED", "RUNNING", {"camera_node": "PAUSED", "code_node": "STARTING"},
                        "running")
    assert report == {"Status": "DEPLOYMENT_SUCCEEDED", "HealthStatus": "RUNNING",
                      "StatusDescription": "running",
                      "NodeStatuses": {"camera_node": "PAUSED", "code_node": "NOT_AVAILABLE"}}
    assert map_status("WHATEVER", "odd", {}, "x" * 999)["HealthStatus"] == "NOT_AVAILABLE"
    assert len(map_status("REMOVAL_SUCCEEDED", "NOT_AVAILABLE", {}, "x" * 999)["StatusDescription"]) == 255
    interfaces = network_interfaces()
    assert interfaces and all(set(i) == {"Name", "IpAddress", "HwAddress"} for i in interfaces)
    assert interfaces[-1]["IpAddress"].startswith("127.") or len(interfaces) >= 1


# ---------------------------------------------------------------------- jobs
@pytest.mark.anyio
async def test_ota_that_cannot_install_fails_and_keeps_the_running_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    restarts: list[Mapping[str, str] | None] = []
    reports: list[int] = []

    async def report_now() -> None:
        reports.append(1)

    jobs = Jobs(tmp_path, restarts.append, report_now)
    pinned = {"Version": "99.0.0", "Sha256": "0" * 64}
    assert jobs.take({"JobId": "job-1", "JobType": "OTA", "ImageVersion": "99.0.0", "Ota": pinned})
    # once
    assert not jobs.take({"JobId": "job-1", "JobType": "OTA", "ImageVersion": "99.0.0", "Ota": pinned})
    await jobs.run("job-1")
    (status,) = jobs.statuses()
    assert status["Status"] == "FAILED" and "pip install failed" in status["Reason"]
    assert "panoflow==99.0.0" in status["Reason"] or "No matching distribution" in status["Reason"]
    assert restarts == [] and not (tmp_path / "ota" / "panoflow-99.0.0").exists()
    jobs.reported([status])
    assert jobs.statuses() == []
    assert Jobs(tmp_path, restarts.append, report_now).statuses() == []  # forgotten across restarts too
    assert ota_environment(tmp_path, os.environ) is None


def test_reboot_job_resolves_after_the_restart(tmp_path: Path) -> None:
    async def report_now() -> None:
        return None

    jobs = Jobs(tmp_path, lambda env: None, report_now)
    assert jobs.take({"JobId": "job-r", "JobType": "REBOOT"})
    jobs._set("job-r", Stage="restarting")
    again = Jobs(tmp_path, lambda env: None, report_now)  # the re-executed daemon
    assert again.statuses() == [{"JobId": "job-r", "Status": "SUCCEEDED", "Reason": "restarted"}]
    ota = Jobs(tmp_path, lambda env: None, report_now, version="0.1.0")
    assert ota.take({"JobId": "job-o", "JobType": "OTA", "ImageVersion": "0.2.0"})
    ota._set("job-o", Stage="restarting")
    after = Jobs(tmp_path, lambda env: None, report_now, version="0.1.0")
    (failed,) = [s for s in after.statuses() if s["JobId"] == "job-o"]
    assert failed["Status"] == "FAILED" and "not 0.2.0" in failed["Reason"]
    assert sys.executable  # the OTA path itself runs pip: see the test above
