"""A real ``panoflow serve --control-plane`` against a real control plane over loopback, driven with boto3."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.cli import panoflow_argv
from tests.support.daemons import Daemon
from tests.support.fleet import ControlPlaneServer, create_instance, instance_running, join, publish_app, wait


def test_deploy_signal_logs_and_remove(make_daemon: Callable[..., Daemon], cp: ControlPlaneServer,
                                       cloud_app: dict[str, Any], tmp_path: Path) -> None:
    publish_app(cp, cloud_app)
    daemon, device_id = join(make_daemon, cp, tmp_path)
    assert cp.device(device_id)["ProvisioningStatus"] == "SUCCEEDED"
    assert (daemon.state_dir / "cloud.json").stat().st_mode & 0o777 == 0o600
    instance_id = create_instance(cp, device_id, cloud_app)
    wait(instance_running(cp, instance_id), 60, "the instance to run")
    wait(lambda: cp.nodes(instance_id).get("camera_node") == "RUNNING", 20, "node statuses")
    (local,) = daemon.get("/instances")["instances"]
    assert local["name"] == "people" and local["cameras"] == {"camera_node": [
        f"camera:cloud-camera_node-{instance_id[-8:]}"]}

    cp.pano.signal_application_instance_node_instances(
        ApplicationInstanceId=instance_id, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "PAUSE"}])
    wait(lambda: cp.nodes(instance_id).get("camera_node") == "PAUSED", 20, "camera_node PAUSED")
    assert daemon.instance("people")["signals"] == {"camera_node": "PAUSE"}

    logs = wait(
        lambda: [
            line
            for line in cp.operator_get(f"/_panoflow/devices/{device_id}/logs?limit=1000")["Lines"]
            if line.get("Instance") == instance_id and "start 1" in (line.get("Line") or "")
        ],
        30,
        "the app's console output in the control plane",
    )
    assert logs[0]["Node"] == "code_node"
    metrics = wait(lambda: cp.operator_get(f"/_panoflow/devices/{device_id}/metrics").get("Text"), 20,
                   "metrics")
    assert "panoflow_device_up" in metrics and "panoflow_cloud_log_lines_dropped_total 0" in metrics

    # a new version replacing the old one: deployed under the old one's daemon name, swapped without a gap
    old_id, old_pids = instance_id, daemon.instance_pids()
    instance_id = create_instance(cp, device_id, cloud_app, ApplicationInstanceIdToReplace=old_id)
    wait(instance_running(cp, instance_id), 60, "the replacement to run")
    wait(lambda: cp.instance(old_id)["Status"] == "REMOVAL_SUCCEEDED", 30, "the replaced one to be removed")
    (local,) = daemon.get("/instances")["instances"]
    assert local["name"] == "people" and daemon.instance_pids() != old_pids

    cp.pano.remove_application_instance(ApplicationInstanceId=instance_id)
    wait(lambda: cp.instance(instance_id)["Status"] == "REMOVAL_SUCCEEDED", 40, "the removal")
    wait(lambda: daemon.get("/instances")["instances"] == [], 10, "the daemon to forget the instance")
    assert "cloud-camera_node" not in (daemon.state_dir / "cameras.json").read_text()


def test_reboot_outage_and_failed_ota(make_daemon: Callable[..., Daemon], cp: ControlPlaneServer,
                                      cloud_app: dict[str, Any], tmp_path: Path) -> None:
    publish_app(cp, cloud_app)
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    os.environ["PIP_NO_INDEX"], os.environ["PIP_FIND_LINKS"] = "1", str(wheels)  # inherited by the daemon
    try:
        daemon, device_id = join(make_daemon, cp, tmp_path)
    finally:
        del os.environ["PIP_NO_INDEX"], os.environ["PIP_FIND_LINKS"]
    instance_id = create_instance(cp, device_id, cloud_app)
    wait(instance_running(cp, instance_id), 60, "the instance to run")

    # REBOOT: the daemon re-executes itself (same pid), the instance comes back, the job succeeds
    pid = daemon.proc.pid if daemon.proc else 0
    before = daemon.instance_pids()
    job = cp.pano.create_job_for_devices(DeviceIds=[device_id], JobType="REBOOT")["Jobs"][0]["JobId"]
    wait(lambda: cp.job(job)["Status"] == "COMPLETED", 60, "the REBOOT job")  # SUCCEEDED, as the API says it
    assert daemon.proc is not None and daemon.proc.poll() is None and daemon.proc.pid == pid
    wait(lambda: daemon.instance_pids() and daemon.instance_pids() != before, 30, "a new instance process")
    wait(instance_running(cp, instance_id), 40, "the instance to run again")
    daemon.url = json.loads((daemon.state_dir / "daemon.json").read_text())["url"]

    # the control plane goes away for ~5 s: the app never stops, statuses are current once it is back
    running = daemon.instance_pids()
    cp.stop()
    time.sleep(5)
    assert daemon.instance_pids() == running
    cp.start()
    wait(lambda: cp.device(device_id)["DeviceConnectionStatus"] == "ONLINE", 40, "ONLINE again")
    cp.pano.signal_application_instance_node_instances(
        ApplicationInstanceId=instance_id, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "PAUSE"}])
    wait(lambda: cp.nodes(instance_id).get("camera_node") == "PAUSED", 20,
         "camera_node PAUSED after the outage")
    assert daemon.instance_pids() == running

    # OTA to a version pip cannot find: FAILED with pip's words, the device keeps running as it was
    job = cp.pano.create_job_for_devices(
        DeviceIds=[device_id], JobType="OTA",
        DeviceJobConfig={"OTAJobConfig": {"ImageVersion": "99.0.0@sha256:" + "0" * 64}})["Jobs"][0]["JobId"]
    wait(lambda: cp.job(job)["Status"] == "FAILED", 60, "the OTA job to fail")
    assert daemon.instance_pids() == running and cp.device(device_id)["DeviceConnectionStatus"] == "ONLINE"
    assert not (daemon.state_dir / "ota" / "panoflow-99.0.0").exists()


def test_a_used_bundle_is_refused_clearly(make_daemon: Callable[..., Daemon], cp: ControlPlaneServer,
                                         tmp_path: Path) -> None:
    daemon, _device_id = join(make_daemon, cp, tmp_path)
    state = tmp_path / "second"
    r = subprocess.run(panoflow_argv("serve", "--state-dir", str(state), "--listen", "127.0.0.1:0",
                                     "--control-plane", cp.url, "--provision", str(tmp_path / "dev.zip")),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert "refused the provisioning bundle" in r.stderr and "already used" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (state / "cloud.json").exists()
    # the first device restarts from cloud.json, without the bundle
    daemon.stop()
    restarted = Daemon(daemon.state_dir, "--control-plane", cp.url).start()
    try:
        assert restarted.get("/device")["device_id"]
        assert json.loads((daemon.state_dir / "cloud.json").read_text())["ControlPlane"] == cp.url
    finally:
        restarted.stop()
