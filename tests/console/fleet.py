"""What a console test signs in to: :class:`ConsoleControlPlane`, a real ``panoflow control-plane serve``
process (HTTPS with its own CA) with an administrator key and a read-only key from ``panoflow control-plane
keys create`` (the app the deploy wizard deploys: :func:`tests.support.apps.greeter_app`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from panoflow.controlplane import AccessKey, create_access_key, open_store
from panoflow.controlplane.boto import client as panorama_client
from panoflow.controlplane.tls import ensure_ca
from tests.support.cli import panoflow_argv
from tests.support.daemons import SECRETS
from tests.support.fleet import wait
from tests.support.ports import free_port


def _cli(*args: str) -> str:
    """``panoflow ARGS``' standard output."""
    return subprocess.run(panoflow_argv(*args), capture_output=True, text=True, timeout=60, check=True).stdout


def _key_pair(key: AccessKey) -> dict[str, str]:
    """A key as ``keys create`` prints it."""
    return {"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}


class ConsoleControlPlane:
    """``panoflow control-plane serve`` over HTTPS in a process of its own, with an administrator key
    (``key``, made by ``panoflow control-plane keys create`` when ``cli_key``) and a read-only key
    (``read_only_key``), and a boto3 client (``pano``) that verifies the control plane's CA (what
    ``panoflow control-plane ca`` prints). ``env`` goes into the server's environment
    (``PANOFLOW_CONSOLE_SESSION_TTL_S``)."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, *, cli_key: bool = True):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.env = env or {}
        self.db = f"sqlite:///{root / 'cp.db'}"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        # the operator's key as the docs make it (``cli_key``); the others, and the CA, with the calls those
        # commands make (each command is a Python start-up: seconds on the loaded machine)
        if cli_key:
            self.key: dict[str, str] = json.loads(_cli("control-plane", "keys", "create", "--db", self.db))
        store = open_store(self.db)
        try:
            if not cli_key:
                self.key = _key_pair(create_access_key(store))
            self.read_only_key = _key_pair(create_access_key(store, read_only=True))
            self.ca_file = root / "ca.pem"
            self.ca_file.write_text(ensure_ca(store).cert_pem)
        finally:
            store.close()
        SECRETS.extend([self.key["SecretAccessKey"], self.read_only_key["SecretAccessKey"]])
        self.pano = panorama_client(endpoint_url=self.url, region_name="us-east-1", verify=str(self.ca_file),
                                    aws_access_key_id=self.key["AccessKeyId"],
                                    aws_secret_access_key=self.key["SecretAccessKey"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def console(self) -> str:
        """The console's address."""
        return f"{self.url}/console/"

    def start(self) -> ConsoleControlPlane:
        with open(self.root / "control-plane.log", "ab") as log:  # the process keeps its own copy of the fd
            self.proc = subprocess.Popen(
                panoflow_argv("control-plane", "serve", "--db", self.db, "--listen", f"127.0.0.1:{self.port}",
                              "--assets", str(self.root / "assets"), "--heartbeat", "1"),
                stdout=log, stderr=log, env={**os.environ, **self.env})
        wait(lambda: self.pano.list_devices() is not None, 30, "the control plane to answer")
        return self

    def stop(self) -> None:
        self.pano.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        """What the server logged (JSON lines)."""
        return (self.root / "control-plane.log").read_text(errors="replace")

    # ------------------------------------------------------------------ what tests.support.fleet.join uses
    def provision(self, path: Path, name: str) -> str:
        answer = self.pano.provision_device(Name=name)
        path.write_bytes(answer["Certificates"])
        return str(answer["DeviceId"])

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self.pano.describe_device(DeviceId=device_id))

    # ------------------------------------------------------------------ a developer's side
    def publish(self, app: Path) -> None:
        """``panoflow package-application`` in the app's folder, with its developer's AWS environment."""
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": self.key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_CONFIG_FILE": str(self.root / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "none"),
               "AWS_CA_BUNDLE": str(self.ca_file)}
        r = subprocess.run(panoflow_argv("package-application", "--control-plane", self.url), cwd=app,
                           capture_output=True, text=True, timeout=120, check=False, env=env)
        assert r.returncode == 0, r.stderr
