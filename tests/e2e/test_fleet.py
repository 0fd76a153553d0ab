"""Issue #8's acceptance, end to end: boto3 and the AWS CLI against a real `panoflow control-plane serve`
process over HTTPS (verified with the CA that `panoflow control-plane ca` prints, as issue #16 asks), two real
`panoflow serve` devices joined with ProvisionDevice bundles, a real RTSP camera (GStreamer) registered with
CreateNodeFromTemplateJob, and the application published with `panoflow package-application`.

One test walks the whole story in order, as an operator would: each step needs the previous one's state, and
the control plane's 30-second outage at the end needs a device with everything on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from panoflow.controlplane.boto import client as panorama_client
from tests.support.apps import built_counter_app
from tests.support.cli import panoflow_argv
from tests.support.daemons import SECRETS, Daemon
from tests.support.fleet import wait
from tests.support.ports import free_port
from tests.support.rtsp import GstServer, h264_launch

ACCOUNT = "123456789012"
HEARTBEAT = "1"
OUTAGE_S = 30
CAMERA_USER, CAMERA_PASSWORD = "operator", "e2e-Camera-Pw-7731"


class ControlPlaneProcess:
    """`panoflow control-plane serve` as a process of its own, so the test can kill it like a crashed
    server."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = f"sqlite:///{root / 'cp.db'}"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        r = subprocess.run(panoflow_argv("control-plane", "keys", "create", "--db", self.db),
                           capture_output=True, text=True, timeout=60, check=True)
        self.key = json.loads(r.stdout)
        SECRETS.append(self.key["SecretAccessKey"])
        # the CA clients verify the server with (created once, kept in the database)
        r = subprocess.run(panoflow_argv("control-plane", "ca", "--db", self.db), capture_output=True,
                           text=True, timeout=60, check=True)
        self.ca_file = root / "ca.pem"
        self.ca_file.write_text(r.stdout)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pano = panorama_client(endpoint_url=self.url, region_name="us-east-1", verify=str(self.ca_file),
                                    aws_access_key_id=self.key["AccessKeyId"],
                                    aws_secret_access_key=self.key["SecretAccessKey"])

    @property
    def env(self) -> dict[str, str]:
        """The AWS environment a user of `package-application` has."""
        return {"AWS_ACCESS_KEY_ID": self.key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": self.key["SecretAccessKey"],
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(self.root / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "none"), "AWS_CA_BUNDLE": str(self.ca_file)}

    def aws(self, *args: str) -> Any:
        """The AWS CLI against this control plane (``--ca-bundle`` the printed CA), its JSON answer."""
        from panoflow.controlplane.model import MODEL_ROOT

        exe = shutil.which("aws")
        if exe is None:
            why = "the AWS CLI (awscli <= 1.45.x) is not installed"
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)
        env = {**os.environ, **self.env, "AWS_DATA_PATH": str(MODEL_ROOT)}
        env.pop("AWS_CA_BUNDLE")  # the flag, as the docs show it
        r = subprocess.run([exe, "panorama", *args, "--endpoint-url", self.url, "--ca-bundle",
                            str(self.ca_file),
                            "--output", "json"], capture_output=True, text=True, timeout=120, env=env,
                           check=False)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def start(self) -> None:
        with open(self.root / "control-plane.log", "ab") as log:  # the process keeps its own copy of the fd
            self.proc = subprocess.Popen(
                panoflow_argv("control-plane", "serve", "--db", self.db, "--listen", f"127.0.0.1:{self.port}",
                              "--assets", str(self.root / "assets"), "--heartbeat", HEARTBEAT),
                stdout=log, stderr=log)
        wait(lambda: self.pano.list_devices() is not None, 30, "the control plane to answer")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    cp = ControlPlaneProcess(tmp_path / "control-plane")
    cp.start()
    yield cp
    cp.stop()


def _app(root: Path) -> tuple[Path, str]:
    """The counter app, built as a developer builds it; its graph keeps the abstract camera, which the
    deployment's overrides replace with the cloud camera."""
    app, _pkg = built_counter_app(root)
    return app, (app / "graphs" / "test_app" / "graph.json").read_text()


def _overrides(version: str) -> str:
    """Bind the graph's camera_node to the template-job camera FRONT_DOOR.front_door, and set a parameter."""
    return json.dumps({"nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": f"{ACCOUNT}::FRONT_DOOR", "version": "1.0"}],
        "nodes": [{"name": "front_door", "interface": f"{ACCOUNT}::FRONT_DOOR.front_door"},
                  {"name": "p_str_override", "interface": "string", "value": version}],
        "nodeOverrides": [{"replace": "camera_node", "with": [{"name": "front_door"}]},
                          {"replace": "p_str", "with": [{"name": "p_str_override"}]}]}})


def _join(make_daemon: Callable[..., Daemon], cp: ControlPlaneProcess, root: Path,
          name: str) -> tuple[Daemon, str]:
    answer = cp.pano.provision_device(Name=name, Description=f"e2e {name}")
    bundle = root / f"{name}.zip"
    bundle.write_bytes(answer["Certificates"])
    daemon = make_daemon(name, "--control-plane", cp.url, "--provision", str(bundle))
    wait(lambda: _online(cp, answer["DeviceId"]), 30, f"{name} ONLINE")
    SECRETS.append(json.loads((daemon.state_dir / "cloud.json").read_text())["Token"])
    return daemon, str(answer["DeviceId"])


def _instances(cp: ControlPlaneProcess, device_id: str) -> dict[str, dict[str, Any]]:
    out = cp.pano.list_application_instances(DeviceId=device_id)["ApplicationInstances"]
    return {i["ApplicationInstanceId"]: i for i in out}


def _nodes(cp: ControlPlaneProcess, instance_id: str) -> dict[str, str]:
    out = cp.pano.list_application_instance_node_instances(ApplicationInstanceId=instance_id)["NodeInstances"]
    return {n["NodeInstanceId"]: n["CurrentStatus"] for n in out}


def _running(cp: ControlPlaneProcess, device_id: str, instance_id: str) -> Callable[[], bool]:
    def check() -> bool:
        inst = _instances(cp, device_id).get(instance_id, {})
        return inst.get("Status") == "DEPLOYMENT_SUCCEEDED" and inst.get("HealthStatus") == "RUNNING"
    return check


def _online(cp: ControlPlaneProcess, device_id: str) -> bool:
    return bool(cp.pano.describe_device(DeviceId=device_id)["DeviceConnectionStatus"] == "ONLINE")


@pytest.mark.timeout(400)  # a 30-second outage, a reboot and three deployments on 2 shared cores
def test_fleet_end_to_end(make_daemon: Callable[..., Daemon], control_plane: ControlPlaneProcess,
                          servers: Callable[..., GstServer], clips: dict[str, Path], tmp_path: Path) -> None:
    cp = control_plane
    pano = cp.pano
    SECRETS.append(CAMERA_PASSWORD)

    # provision two devices; each claims its bundle and shows ONLINE with its software version
    (dev_a, id_a), (dev_b, id_b) = (_join(make_daemon, cp, tmp_path, n) for n in ("edge-a", "edge-b"))
    for device_id in (id_a, id_b):
        described = pano.describe_device(DeviceId=device_id)
        assert described["ProvisioningStatus"] == "SUCCEEDED" and described["CurrentSoftware"]
    listed = {d["DeviceId"]: d for d in pano.list_devices()["Devices"]}
    assert {listed[i]["DeviceAggregatedStatus"] for i in (id_a, id_b)} == {"ONLINE"}
    # the AWS CLI sees the same fleet over HTTPS; a client that does not trust the CA gets nothing
    assert {d["DeviceId"] for d in cp.aws("list-devices")["Devices"]} == {id_a, id_b}
    with pytest.raises(botocore.exceptions.SSLError):
        panorama_client(endpoint_url=cp.url, region_name="us-east-1", aws_access_key_id=cp.key["AccessKeyId"],
                        aws_secret_access_key=cp.key["SecretAccessKey"]).list_devices()
    # the devices pinned that CA (from their bundles)
    assert json.loads((dev_a.state_dir / "cloud.json").read_text())["CaCertificate"] == cp.ca_file.read_text()

    # a real RTSP camera with a password, registered the Panorama way
    rtsp = servers({"/front": h264_launch(clips["a"])}, auth=("digest", CAMERA_USER, CAMERA_PASSWORD))
    job = pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="FRONT_DOOR", OutputPackageVersion="1.0",
        NodeName="front_door", TemplateParameters={"StreamUrl": rtsp.url("/front"), "Username": CAMERA_USER,
                                                   "Password": CAMERA_PASSWORD})
    assert pano.describe_node_from_template_job(JobId=job["JobId"])["Status"] == "SUCCEEDED"

    # the developer publishes the application with the CLI and the usual AWS environment
    app, graph = _app(tmp_path / "app")
    r = subprocess.run(panoflow_argv("package-application", "--control-plane", cp.url), cwd=app,
                       capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **cp.env})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    names = {n["PackageName"] for n in pano.list_nodes()["Nodes"]}
    assert {"TEST_CODE", "FRONT_DOOR"} <= names

    # deploy to device A with overrides: DEPLOYMENT_SUCCEEDED + RUNNING, its nodes listed
    first = pano.create_application_instance(
        Name="counter", DefaultRuntimeContextDevice=id_a, ManifestPayload={"PayloadData": graph},
        ManifestOverridesPayload={"PayloadData": _overrides("v1")})["ApplicationInstanceId"]
    wait(_running(cp, id_a, first), 90, "the first instance RUNNING")
    nodes = wait(lambda: (n := _nodes(cp, first)) and n.get("front_door") == "RUNNING" and n, 30,
                 "node statuses")
    assert set(nodes) >= {"front_door", "code_node"}, nodes
    assert _instances(cp, id_b) == {}
    (local,) = dev_a.get("/instances")["instances"]
    assert local["name"] == "counter"
    assert dev_b.get("/instances")["instances"] == []

    # PAUSE the camera node: PAUSED in the Panorama API
    pano.signal_application_instance_node_instances(
        ApplicationInstanceId=first, NodeSignals=[{"NodeInstanceId": "front_door", "Signal": "PAUSE"}])
    wait(lambda: _nodes(cp, first).get("front_door") == "PAUSED", 30, "front_door PAUSED")

    # replace: a running new instance, the old one removed
    second = pano.create_application_instance(
        Name="counter", DefaultRuntimeContextDevice=id_a, ManifestPayload={"PayloadData": graph},
        ManifestOverridesPayload={"PayloadData": _overrides("v2")},
        ApplicationInstanceIdToReplace=first)["ApplicationInstanceId"]
    wait(_running(cp, id_a, second), 90, "the replacement RUNNING")
    wait(
        lambda: (
            pano.describe_application_instance(ApplicationInstanceId=first)["Status"] == "REMOVAL_SUCCEEDED"
        ),
        60,
        "the replaced instance removed",
    )
    assert wait(lambda: _nodes(cp, second).get("front_door") == "RUNNING", 30, "the new camera node RUNNING")
    assert "version v2" in dev_a.cli("logs", "counter", "--node", "code_node", "--tail", "50").stdout

    # REBOOT device A: the job completes and the instance is RUNNING again
    (reboot,) = pano.create_job_for_devices(DeviceIds=[id_a], JobType="REBOOT")["Jobs"]
    wait(lambda: pano.describe_device_job(JobId=reboot["JobId"])["Status"] == "COMPLETED", 90,
         "the REBOOT job")
    wait(_running(cp, id_a, second), 60, "the instance RUNNING after the reboot")
    assert _online(cp, id_a)
    # the daemon re-executed itself (same pid); with --listen 127.0.0.1:0 its API port is new
    dev_a.url = json.loads((dev_a.state_dir / "daemon.json").read_text())["url"]
    assert dev_a.instance("counter")["status"] == "DEPLOYMENT_SUCCEEDED"

    # the control plane dies for 30 s: the devices keep running what they have, then resync
    pids = dev_a.instance_pids()
    assert pids
    cp.kill()
    time.sleep(OUTAGE_S)
    assert dev_a.instance_pids() == pids, "the application stopped while the control plane was away"
    assert dev_a.instance("counter")["status"] == "DEPLOYMENT_SUCCEEDED"
    # a status change the control plane has not seen
    r = dev_a.cli("signal", "counter", "front_door", "pause")
    assert r.returncode == 0, r.stderr
    cp.start()
    for device_id in (id_a, id_b):
        wait(lambda d=device_id: _online(cp, d), 30, f"{device_id} ONLINE again")
    wait(_running(cp, id_a, second), 30, "the instance status after the outage")
    wait(lambda: _nodes(cp, second).get("front_door") == "PAUSED", 30, "the pause made during the outage")
    assert pano.describe_application_instance(ApplicationInstanceId=first)["Status"] == "REMOVAL_SUCCEEDED"
    assert pano.describe_device_job(JobId=reboot["JobId"])["Status"] == "COMPLETED"
    assert dev_a.instance_pids() == pids
