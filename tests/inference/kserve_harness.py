"""The ``kserve`` backend tests' server: a real KServe V2 server (:mod:`tests.inference.kserve_server`,
KServe's Python ModelServer from PyPI) in a child process on free loopback ports, readiness awaited on its
health endpoint with a deadline, always stopped; and a throw-away CA with a server certificate for 127.0.0.1.

The session's shared server is the ``kserve_server`` fixture of tests/inference/conftest.py; tests that kill,
pause or secure a server start their own with :func:`own_server`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.models import conv_model
from tests.support.ports import free_port

__all__ = ["SHAPE", "KServeServer", "TlsFiles", "TlsTerminator", "make_tls", "own_server",
           "served_models"]

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (1, 3, 24, 32)  # what tests/inference/test_app_e2e.py's Panorama app feeds its model
READY_DEADLINE_S = 90.0  # importing kserve and its dependencies takes seconds on two busy cores


def _free_port() -> int:
    """A port free on every address (the server listens on all of them)."""
    return free_port("::" if socket.has_ipv6 else "0.0.0.0")


@dataclass(frozen=True)
class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (for mutual TLS), all signed by
    it."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def make_tls(folder: Path) -> TlsFiles:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, and a client certificate (the
    ``cryptography`` package)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "panoflow test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def issue(name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    usages = x509.oid.ExtendedKeyUsageOID
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "client.pem",
                     folder / "client.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for (cert_path, key_path), (name, usage, san) in zip(
            ((files.cert, files.key), (files.client_cert, files.client_key)),
            (("127.0.0.1", usages.SERVER_AUTH, [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                x509.DNSName("localhost")]),
             ("panoflow device", usages.CLIENT_AUTH, [x509.DNSName("device.panoflow.test")]))):
        cert_pem, key_pem = issue(name, usage, san)
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
    return files


class TlsTerminator:
    """TLS in front of a plain loopback port, as an ingress or a sidecar puts it before a server: it completes
    the handshake (ALPN ``h2`` for gRPC, ``http/1.1``; with ``client_ca``, a client certificate signed by it
    is required) and copies bytes both ways. KServe's gRPC server has no TLS of its own."""

    def __init__(self, target_port: int, tls: TlsFiles, *, client_ca: Path | None = None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        context.set_alpn_protocols(["h2", "http/1.1"])
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(client_ca))
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tls-terminator", daemon=True)
        self._thread.start()
        self._tasks: set[asyncio.Task[None]] = set()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class KServeServer:
    """One KServe ModelServer child process serving ``models`` (name -> ONNX file) on REST and gRPC."""

    def __init__(self, models: dict[str, Path], workdir: Path, *, tls: TlsFiles | None = None,
                 token_file: Path | None = None, threads: int = 1):
        self.models, self.workdir, self.tls, self.token_file = models, workdir, tls, token_file
        self.threads = threads
        self.http_port, self.grpc_port = _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "kserve-server.log"
        self.starts = 0

    def uri(self, transport: str, model: str = "conv", **options: object) -> str:
        port = self.grpc_port if transport.startswith("grpc") else self.http_port
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"kserve+{transport}://127.0.0.1:{port}/{model}" + (f"?{query}" if query else "")

    def start(self, *, wait: bool = True) -> None:
        """Start the server (on the same ports as before, after a kill) and, with ``wait``, wait until
        ready."""
        assert self.proc is None or self.proc.poll() is not None, "the server is already running"
        cmd = [sys.executable, "-m", "tests.inference.kserve_server", "--http-port", str(self.http_port),
               "--grpc-port", str(self.grpc_port), "--threads", str(self.threads)]
        for name, path in self.models.items():
            cmd += ["--model", f"{name}={path}"]
        if self.tls:
            cmd += ["--ssl-certfile", str(self.tls.cert), "--ssl-keyfile", str(self.tls.key)]
        if self.token_file:
            cmd += ["--token-file", str(self.token_file)]
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if wait:
            self.wait_ready()

    def ready(self) -> bool:
        """Whether the REST health endpoint answers ready and the gRPC port accepts connections."""
        scheme = "https" if self.tls else "http"
        context = ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else None
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{self.http_port}/v2/health/ready", timeout=2,
                                        context=context) as answer:
                if answer.status != 200:
                    return False
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> float:
        """Poll the health endpoint until ready; returns the monotonic time it first answered ready."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError("the KServe server exited "
                                   f"({self.proc.returncode}):\n{self.log.read_text()}")
            if self.ready():
                return time.monotonic()
            time.sleep(0.05)  # polling interval, not a wait for something to happen
        raise RuntimeError(f"the KServe server was not ready within {deadline_s} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crashed or rescheduled pod does."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGCONT)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


def served_models(folder: Path) -> dict[str, Path]:
    """The ONNX files the test server serves: ``conv`` (the e2e app's model, dynamic batch axis) and
    ``renamed`` (the same model with its input called ``image``)."""
    folder.mkdir(parents=True, exist_ok=True)
    models = {"conv": conv_model(size=SHAPE[2:], seed=7),
              "renamed": conv_model(size=SHAPE[2:], seed=7, input_name="image")}
    paths = {}
    for name, data in models.items():
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(data)
    return paths


@contextmanager
def own_server(folder: Path, *, tls: TlsFiles | None = None, token_file: Path | None = None
               ) -> Iterator[KServeServer]:
    """A server of the test's own (to kill, pause or secure), started and ready; stopped on leaving."""
    server = KServeServer(served_models(folder / "models"), folder, tls=tls, token_file=token_file)
    try:
        server.start()
        yield server
    finally:
        server.stop()
