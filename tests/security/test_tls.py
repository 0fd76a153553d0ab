"""Transport attacks (issue #16): a device pins the CA of its provisioning bundle, so a control plane with
another certificate (a man in the middle with its own CA, or a real CA's certificate for another name) gets
nothing, not even the claim token; plain http is refused unless ``--insecure-http``. Real control planes over
loopback, real TLS."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panoflow.cloud_client import DeviceContext
from panoflow.cloud_client.client import CloudClient, InsecureTransport, UntrustedServer
from panoflow.cloud_client.sync import ensure_credentials
from panoflow.controlplane import ControlPlane, create_access_key, open_store, serve_in_thread
from panoflow.controlplane.tls import issue_server_certificate, server_context
from panoflow.daemon.store import StatePaths
from panoflow.exceptions import CloudError
from tests.support.control_plane import make_client


class Plane:
    """A control plane over HTTPS with its own CA (as ``control-plane serve`` runs it)."""

    def __init__(self, root: Path, names: tuple[str, ...] = ()):
        root.mkdir(parents=True, exist_ok=True)
        self.store = open_store(f"sqlite:///{root / 'cp.db'}")
        self.ssl, self.ca_pem = server_context(self.store, list(names))
        self.ca_file = root / "ca.pem"
        self.ca_file.write_text(self.ca_pem)
        self.plane = ControlPlane(self.store, assets=root / "assets", ca_pem=self.ca_pem)
        self.key = create_access_key(self.store)
        self.url = ""
        self.pano: Any = None


@pytest.fixture
def planes(tmp_path: Path) -> Iterator[tuple[Plane, Plane]]:
    a, b = Plane(tmp_path / "a"), Plane(tmp_path / "b")
    with (
        serve_in_thread(a.plane, ssl_context=a.ssl) as url_a,
        serve_in_thread(b.plane, ssl_context=b.ssl) as url_b,
    ):
        a.url, b.url = url_a, url_b
        a.pano = make_client(url_a, a.key.access_key_id, a.key.secret_access_key, str(a.ca_file))
        b.pano = make_client(url_b, b.key.access_key_id, b.key.secret_access_key, str(b.ca_file))
        yield a, b
        a.pano.close()
        b.pano.close()
    a.store.close()
    b.store.close()


def _context(tmp_path: Path, url: str, bundle: Path | None, insecure_http: bool = False) -> DeviceContext:
    paths = StatePaths(tmp_path / "device")
    paths.create()
    return DeviceContext(manager=None, paths=paths, control_plane=url, provision=bundle,  # type: ignore[arg-type]
                         restart=lambda env: None, metrics_text=None,  # type: ignore[arg-type]
                         cameras_file=tmp_path / "cameras.json", insecure_http=insecure_http)


def _bundle(plane: Plane, path: Path, name: str = "edge-1") -> Path:
    path.write_bytes(plane.pano.provision_device(Name=name)["Certificates"])
    return path


def test_the_bundle_carries_the_ca_and_the_device_pins_it(planes: tuple[Plane, Plane],
                                                          tmp_path: Path) -> None:
    a, _b = planes
    bundle = _bundle(a, tmp_path / "dev.zip")
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as zf:
        assert zf.read("ca.pem").decode() == a.ca_pem
    import anyio

    creds = anyio.run(ensure_credentials, _context(tmp_path, a.url, bundle))
    assert creds.ca_pem == a.ca_pem
    stored = json.loads((tmp_path / "device" / "cloud.json").read_text())
    assert stored["CaCertificate"] == a.ca_pem and stored["ControlPlane"].startswith("https://")


@pytest.mark.anyio
async def test_a_control_plane_with_another_certificate_gets_nothing(planes: tuple[Plane, Plane],
                                                                    tmp_path: Path) -> None:
    """The attack: the device's --control-plane points at B (a man in the middle with its own CA) while its
    bundle came from A. The claim is refused before the claim token is sent, and the device says why."""
    a, b = planes
    bundle = _bundle(a, tmp_path / "dev.zip")
    with pytest.raises(CloudError, match="TLS certificate is not one the CA of this device's provisioning "
                                         "bundle"):
        await ensure_credentials(_context(tmp_path, b.url, bundle))
    assert not (tmp_path / "device" / "cloud.json").exists()
    assert b.pano.list_devices()["Devices"] == []  # B never saw a claim (it could not have used it anyway)
    # a claimed device whose plane is swapped later: every call is refused with the reason, nothing is sent
    async with CloudClient(b.url, "device-token", ca_pem=a.ca_pem) as client:
        with pytest.raises(UntrustedServer, match="someone may be impersonating the control plane"):
            await client.sync({})


@pytest.mark.anyio
async def test_a_certificate_from_the_right_ca_for_another_name_is_refused(tmp_path: Path) -> None:
    """The pinned CA signed a certificate, but for another host: hostname verification refuses it."""
    plane = Plane(tmp_path / "p")
    from panoflow.controlplane.tls import context_from_pem, ensure_ca

    ca = ensure_ca(plane.store)
    cert, key = issue_server_certificate(ca, ["other.example"])
    with serve_in_thread(plane.plane, ssl_context=context_from_pem(cert + ca.cert_pem, key)) as url:
        async with CloudClient(url, "t", ca_pem=plane.ca_pem) as client:
            with pytest.raises(UntrustedServer, match="127.0.0.1"):
                await client.sync({})
    plane.store.close()


@pytest.mark.anyio
async def test_plain_http_is_refused_without_insecure_http(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    plane = ControlPlane(store, assets=tmp_path / "assets")  # plain HTTP: bundles carry no CA
    key = create_access_key(store)
    with serve_in_thread(plane) as url:
        assert url.startswith("http://")
        pano = make_client(url, key.access_key_id, key.secret_access_key)
        bundle = tmp_path / "dev.zip"
        bundle.write_bytes(pano.provision_device(Name="edge-1")["Certificates"])
        with pytest.raises(InsecureTransport, match="refusing plain HTTP .* --insecure-http for development "
                                                    "only"):
            await ensure_credentials(_context(tmp_path, url, bundle))
        assert not (tmp_path / "device" / "cloud.json").exists()
        # an https URL with no CA to pin is refused too (the system's trust store is never used)
        with pytest.raises(InsecureTransport, match="no CA to verify"):
            CloudClient(url.replace("http://", "https://"), "t")
        # with --insecure-http the device joins, and says so in its reports
        creds = await ensure_credentials(_context(tmp_path, url, bundle, insecure_http=True))
        assert creds.ca_pem == ""
    store.close()


def test_the_control_plane_keeps_one_ca(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    first = server_context(store, ["cp.example"])[1]
    assert server_context(store, [])[1] == first  # restarts sign new server certificates with the same CA
    store.close()
    again = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    assert server_context(again, [])[1] == first
    again.close()


def test_operator_certificates_and_bad_files(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the bundle pins --tls-ca (or the certificate itself); unusable files are
    named."""
    from panoflow.controlplane.tls import TlsError, ensure_ca, server_context_from_files

    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    ca = ensure_ca(store)
    store.close()
    cert, key = issue_server_certificate(ca, ["cp.example"])
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    _ctx, pinned = server_context_from_files(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
    assert pinned == ca.cert_pem
    assert server_context_from_files(tmp_path / "cert.pem", tmp_path / "key.pem")[1] == cert
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TlsError, match="junk.pem"):
        server_context_from_files(tmp_path / "junk.pem", tmp_path / "key.pem")
    with pytest.raises(TlsError, match="no PEM certificate"):
        server_context_from_files(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "key.pem")
