"""The device CA and the gateway's certificates, made with the cryptography package and with the openssl
command: a TLS client trusting only the app's bundle accepts the gateway for the AWS hostnames (and S3 bucket
wildcards) and refuses other names; keys stay in the private folder (0600) and never in the bundle."""

from __future__ import annotations

import shutil
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest

from panoflow.aws.tls import DeviceCA

NAMES = ["monitoring.us-east-1.amazonaws.com", "s3.amazonaws.com", "*.s3.amazonaws.com"]


def _handshake(leaf_cert: Path, leaf_key: Path, bundle: Path, hostname: str) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(leaf_cert, leaf_key)
    client_ctx = ssl.create_default_context(cafile=str(bundle))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(b, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(a, server_hostname=hostname) as tls:
            tls.sendall(b"x")
    finally:
        a.close()
        thread.join(10)
        b.close()


@pytest.mark.parametrize("backend", ["cryptography", "openssl"])
def test_certificates_verify_for_aws_names_only(tmp_path: Path, backend: str) -> None:
    if backend == "openssl" and not shutil.which("openssl"):
        pytest.skip("no openssl command")
    ca = DeviceCA(tmp_path / "ca", backend=backend)
    leaf = ca.issue(NAMES, name="gw")
    bundle = ca.write_bundle(tmp_path / "app" / "ca-bundle.pem")
    for name in ("monitoring.us-east-1.amazonaws.com", "s3.amazonaws.com", "snapshots.s3.amazonaws.com"):
        _handshake(leaf.cert_file, leaf.key_file, bundle, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(leaf.cert_file, leaf.key_file, bundle, "sqs.us-east-1.amazonaws.com")
    assert "PRIVATE KEY" not in bundle.read_text()
    assert bundle.read_text().count("BEGIN CERTIFICATE") > 1  # the system's CAs follow the device CA
    for key in (ca.key_file, leaf.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    again = DeviceCA(tmp_path / "ca", backend=backend)  # a restart keeps the CA the apps trust
    assert again.certificate_pem() == ca.certificate_pem()
