"""OTA pinning (issue #16): the control plane records the wheel's SHA-256 with the job; the device installs
with ``--only-binary :all: --require-hashes`` and refuses any other bytes before running anything. Real pip
(offline, a find-links folder), a real control plane and asset route, a small real wheel named panoflow."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.cloud_client.client import CloudClient
from panoflow.cloud_client.jobs import Jobs
from panoflow.controlplane import ControlPlane
from panoflow.controlplane.service.jobs import ota_wheel_key
from tests.support.control_plane import error_of
from tests.support.device_protocol import claimed

VERSION = "99.9.0"


def _wheel(folder: Path, marker: str) -> Path:
    """A valid wheel of "panoflow" ``VERSION`` holding one module (not a working panoflow: its self-test
    fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"panoflow-{VERSION}.dist-info"
    files = {"panoflow_ota_probe.py": f"MARKER = {marker!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: panoflow\nVersion: {VERSION}\n",
             f"{dist}/WHEEL": ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: "
                               "py3-none-any\n")}
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    path = folder / f"panoflow-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in {**files, f"{dist}/RECORD": record}.items():
            zf.writestr(name, text)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Device:
    """The device's job runner, as the sync loop builds it; restarts recorded instead of re-executing."""

    def __init__(self, state: Path, download: Any = None):
        self.restarts: list[Mapping[str, str] | None] = []

        async def report_now() -> None:
            return None

        self.jobs = Jobs(state, self.restarts.append, report_now, version="0.1.0", download=download)

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.jobs.take(job)
        await self.jobs.run(job["JobId"])
        return self.jobs.jobs[job["JobId"]]


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip with no index: only the find-links folder (as the device's configured index)."""
    links = tmp_path / "index"
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


@pytest.mark.anyio
async def test_a_wheel_with_another_hash_is_not_installed(tmp_path: Path, offline_index: Path) -> None:
    genuine = _wheel(tmp_path / "genuine", "genuine")
    evil = _wheel(offline_index, "evil")  # what the (compromised) index serves under that name and version
    device = Device(tmp_path / "state")
    job = await device.run({"JobId": "job-1", "JobType": "OTA", "ImageVersion": VERSION,
                            "Ota": {"Version": VERSION, "Sha256": _sha(genuine)}})
    assert job["Status"] == "FAILED" and "pip install failed" in job["Reason"]
    assert "hash" in job["Reason"].lower(), job["Reason"]
    assert not (tmp_path / "state" / "ota" / f"panoflow-{VERSION}").exists() and device.restarts == []
    # the same job pinned to what the index holds: pip installs it (then the self-test refuses this fake
    # panoflow)
    job = await device.run({"JobId": "job-2", "JobType": "OTA", "ImageVersion": VERSION,
                            "Ota": {"Version": VERSION, "Sha256": _sha(evil)}})
    assert job["Status"] == "FAILED" and "self-test (python -m panoflow --version) failed" in job["Reason"], (
        job["Reason"]
    )
    assert device.restarts == []


@pytest.mark.anyio
async def test_a_job_without_a_digest_is_refused(tmp_path: Path, offline_index: Path) -> None:
    _wheel(offline_index, "unpinned")
    device = Device(tmp_path / "state")
    job = await device.run({"JobId": "job-1", "JobType": "OTA", "ImageVersion": VERSION})
    assert job["Status"] == "FAILED" and "installs only pinned wheels" in job["Reason"]
    assert not (tmp_path / "state" / "ota" / f"panoflow-{VERSION}").exists()


def test_the_control_plane_pins_the_uploaded_wheel(pano: Any, device: str, plane: ControlPlane,
                                                   tmp_path: Path) -> None:
    with pytest.raises(ClientError) as err:  # nothing uploaded, no digest named
        pano.create_job_for_devices(DeviceIds=[device], JobType="OTA",
                                    DeviceJobConfig={"OTAJobConfig": {"ImageVersion": VERSION}})
    assert error_of(err.value)[:2] == ("ValidationException", 400)
    assert ota_wheel_key("123456789012", VERSION) in error_of(err.value)[2]
    wheel = _wheel(tmp_path, "genuine")
    plane.assets.put(ota_wheel_key("123456789012", VERSION), io.BytesIO(wheel.read_bytes()))
    [job] = pano.create_job_for_devices(DeviceIds=[device], JobType="OTA",
                                        DeviceJobConfig={"OTAJobConfig": {"ImageVersion": VERSION}})["Jobs"]
    with plane.store.transaction() as tx:
        row = tx.get("device_jobs", job["JobId"])
    assert row is not None and row.doc["Ota"]["Sha256"] == _sha(wheel)
    assert pano.describe_device_job(JobId=job["JobId"])["ImageVersion"] == VERSION


@pytest.mark.anyio
async def test_a_replaced_wheel_in_the_asset_store_is_not_installed(endpoint: str, pano: Any,
                                                                    plane: ControlPlane, tmp_path: Path,
                                                                    offline_index: Path) -> None:
    """The asset store is changed after the job was created: the device downloads other bytes and refuses
    them."""
    device_id, token = claimed(endpoint, pano)
    wheel = _wheel(tmp_path / "w", "genuine")
    key = ota_wheel_key("123456789012", VERSION)
    plane.assets.put(key, io.BytesIO(wheel.read_bytes()))
    [created] = pano.create_job_for_devices(
        DeviceIds=[device_id], JobType="OTA", DeviceJobConfig={"OTAJobConfig": {"ImageVersion": VERSION}}
    )["Jobs"]
    plane.assets.put(key, io.BytesIO(_wheel(tmp_path / "x", "evil").read_bytes()))  # swapped afterwards
    with plane.store.transaction() as tx:
        row = tx.get("device_jobs", created["JobId"])
    assert row is not None
    async with CloudClient(endpoint, token, insecure_http=True) as client:
        async def download(k: str, dest: Path, sha256: str, size: int | None) -> Path:
            return await client.download(k, dest, sha256=sha256, size=size)

        device = Device(tmp_path / "state", download)
        job = await device.run({"JobId": created["JobId"], "JobType": "OTA", "ImageVersion": VERSION,
                                "Ota": row.doc["Ota"]})
    assert job["Status"] == "FAILED" and "does not match its SHA-256" in job["Reason"], job["Reason"]
    assert not (tmp_path / "state" / "ota" / f"panoflow-{VERSION}").exists() and device.restarts == []
