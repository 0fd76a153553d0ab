"""``panoflow control-plane serve`` as a real subprocess: boto3 talks to it, its JSON logs hold no secrets."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import botocore.exceptions
import pytest

from panoflow.controlplane import create_access_key, open_store
from tests.support.control_plane import make_client
from tests.support.ports import free_port

#: runs the CLI with the control-plane command registered even before panoflow.cli.COMMANDS lists it
_MAIN = ("import sys, panoflow.cli as c\n"
         "c.COMMANDS = tuple(dict.fromkeys(c.COMMANDS + ('controlplane',)))\n"
         "sys.exit(c.main(sys.argv[1:]))\n")


def test_serve_subprocess(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cp.db'}"
    store = open_store(db)
    key = create_access_key(store)
    store.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "--log-format", "json", "control-plane", "serve", "--db", db,
         "--listen", f"127.0.0.1:{port}", "--assets", str(tmp_path / "assets"), "--account-id",
         "111122223333"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # HTTPS by default, with the CA `control-plane ca` prints (kept in the database: the same on every
        # call)
        ca = subprocess.run([sys.executable, "-c", _MAIN, "control-plane", "ca", "--db", db],
                            capture_output=True, text=True, timeout=60, check=True).stdout
        assert ca.startswith("-----BEGIN CERTIFICATE-----")
        (tmp_path / "ca.pem").write_text(ca)
        pano = make_client(f"https://127.0.0.1:{port}", key.access_key_id, key.secret_access_key,
                           str(tmp_path / "ca.pem"))
        answer = pano.provision_device(Name="edge-1")
        assert answer["Arn"].startswith("arn:aws:panorama:us-east-1:111122223333:device/")
        with zipfile.ZipFile(io.BytesIO(answer["Certificates"])) as bundle:  # the device gets the CA to pin
            assert bundle.read("ca.pem").decode() == ca
            assert json.loads(bundle.read("panoflow-device.json"))["CaCertificate"] == ca
        # a client that trusts only the system's CAs refuses the server's certificate
        with pytest.raises(botocore.exceptions.SSLError):
            make_client(f"https://127.0.0.1:{port}", key.access_key_id, key.secret_access_key).list_devices()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "api_call" and e.get("operation") == "ProvisionDevice" for e in events)
    assert key.secret_access_key not in err and "Signature=" not in err
