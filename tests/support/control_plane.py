"""A real control plane on 127.0.0.1 (random port, in-process thread) and a real boto3 client, over each store
backend (fixtures: ``store`` is parametrized: SQLite, and PostgreSQL when scripts/test started one; ``pano``,
``device``, ``endpoint``...), helpers for raw and SigV4-signed requests, and a real moto server
(``moto_url``)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:  # imported where used: this plugin loads for every test, most never start a control plane
    from panoflow.controlplane import AccessKey, ControlPlane
    from panoflow.controlplane.store import Store

APP = Path(__file__).parents[1] / "fixtures" / "panorama-apps" / "debug-server" / "graphs" / "my-app"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL of an empty schema of the test PostgreSQL (``PANOFLOW_TEST_POSTGRES``, set by scripts/test),
    dropped afterwards. Skips the test when there is none, and fails it instead under CI (``CI`` set)."""
    base = os.environ.get("PANOFLOW_TEST_POSTGRES")
    if not base:
        why = ("no PostgreSQL for the store tests: run scripts/test (it starts one and sets "
               "PANOFLOW_TEST_POSTGRES)")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    import psycopg

    schema = f"pftest_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cp.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    from panoflow.controlplane import open_store

    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def key(store: Store) -> AccessKey:
    from panoflow.controlplane import create_access_key

    return create_access_key(store)


@pytest.fixture
def plane(store: Store, tmp_path: Path) -> ControlPlane:
    from panoflow.controlplane import ControlPlane

    return ControlPlane(store, assets=tmp_path / "assets")


@pytest.fixture
def endpoint(plane: ControlPlane) -> Iterator[str]:
    from panoflow.controlplane import serve_in_thread

    with serve_in_thread(plane) as url:
        yield url


def make_client(endpoint: str, key_id: str, secret: str, verify: str | None = None) -> Any:
    """A boto3 panorama client for ``endpoint``; ``verify``: the CA file of an https:// endpoint."""
    from botocore.config import Config

    from panoflow.controlplane.boto import client as panorama_client

    return panorama_client(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                           aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
                           **({"verify": verify} if verify else {}))


@pytest.fixture
def pano(endpoint: str, key: AccessKey) -> Any:
    return make_client(endpoint, key.access_key_id, key.secret_access_key)


@pytest.fixture
def graph_text() -> str:
    return (APP / "graph.json").read_text()


@pytest.fixture
def overrides_text() -> str:
    return (APP / "override.json").read_text()


@pytest.fixture
def device(pano: Any) -> str:
    return str(pano.provision_device(Name="edge-1")["DeviceId"])


def deploy(pano: Any, device: str, graph: str, **kwargs: Any) -> str:
    """CreateApplicationInstance with the graph as the Test Utility sends it."""
    return str(pano.create_application_instance(
        DefaultRuntimeContextDevice=device, ManifestPayload={"PayloadData": graph},
        **kwargs)["ApplicationInstanceId"])


def signed_headers(endpoint: str, key: AccessKey, method: str, path: str, when: dt.datetime | None = None,
                   body: bytes = b"") -> dict[str, str]:
    """SigV4 headers as botocore computes them, for a raw request (optionally at another time ``when``)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    when = when or dt.datetime.now(dt.timezone.utc)
    req = AWSRequest(method=method, url=endpoint + path, headers={}, data=body)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    req.context["timestamp"] = stamp
    req.headers["X-Amz-Date"] = stamp
    signer = SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "panorama", "us-east-1")
    signature = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    scope = f"{key.access_key_id}/{stamp[:8]}/us-east-1/panorama/aws4_request"
    names = signer.signed_headers(signer.headers_to_sign(req))
    return {"X-Amz-Date": stamp, "Host": urlsplit(endpoint).netloc,
            "Authorization": (f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={names}, "
                              f"Signature={signature}")}


def raw_request(endpoint: str, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", context: ssl.SSLContext | None = None,
                source: str | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP request (HTTPS with ``context`` for an https:// endpoint): (status, headers, JSON body).
    ``source``: the local address to send from (another loopback address plays another host)."""
    u = urlsplit(endpoint)
    conn: http.client.HTTPConnection
    src = (source, 0) if source else None
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname or "127.0.0.1", u.port, timeout=10, context=context,
                                           source_address=src)
    else:
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10, source_address=src)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def error_of(exc: Any) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ClientError."""
    r = exc.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


__all__ = ["APP", "deploy", "error_of", "make_client", "postgres_schema", "raw_request", "signed_headers"]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A real moto S3 server on 127.0.0.1 (a free port), for one test module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
