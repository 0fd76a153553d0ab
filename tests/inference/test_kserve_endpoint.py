"""The ``kserve+<transport>://`` endpoint parser: every valid URI round-trips, anything else is refused with
:class:`EndpointError` (never another exception) and a message that says what to write."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoflow.core.inference import split_backend
from panoflow.plugins.kserve.endpoint import Endpoint, EndpointError, parse_endpoint

NAMES = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.-", min_size=1, max_size=20).filter(
    lambda s: s not in (".", ".."))
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "triton.example.internal", "::1", "10.0.0.7"])


@given(transport=st.sampled_from(["grpc", "grpcs", "http", "https"]), host=HOSTS,
       port=st.one_of(st.none(), st.integers(1, 65535)), model=NAMES, version=st.one_of(st.none(), NAMES),
       timeout=st.one_of(st.none(), st.floats(0.01, 1e4)), retries=st.one_of(st.none(), st.integers(0, 50)),
       max_batch=st.one_of(st.none(), st.integers(1, 4096)))
def test_valid_endpoints_parse_to_what_they_say(transport: str, host: str, port: int | None, model: str,
                                                version: str | None, timeout: float | None,
                                                retries: int | None, max_batch: int | None) -> None:
    shown = f"[{host}]" if ":" in host else host
    uri = f"kserve+{transport}://{shown}" + (f":{port}" if port else "") + f"/{model}" + (
        f"/{version}" if version else "")
    options = {k: v for k, v in (("timeout", timeout), ("retries", retries), ("max_batch", max_batch))
               if v is not None}
    if options:
        uri += "?" + "&".join(f"{k}={v!r}" for k, v in options.items())
    ep = parse_endpoint(uri)
    assert ep.transport == transport.rstrip("s") and ep.tls == transport.endswith("s")
    assert ep.host == host and ep.model == model and ep.version == (version or "")
    assert ep.port == (port or (8001 if transport.startswith("grpc") else 8000))
    assert ep.timeout_s == (timeout if timeout is not None else 10.0)
    assert ep.retries == (retries if retries is not None else 2) and ep.max_batch == max_batch
    assert ep.address == f"{shown}:{ep.port}"
    assert parse_endpoint(f"kserve+{transport}://{ep.address}/{ep.describe().split('/', 3)[3]}") == Endpoint(
        ep.transport, ep.tls, ep.host, ep.port, ep.model, ep.version)
    assert split_backend(uri) == ("kserve", uri)


@given(st.text(max_size=80))
def test_anything_else_is_refused_with_an_endpoint_error(text: str) -> None:
    for uri in (text, "kserve+grpc://" + text, "kserve+http://127.0.0.1:8000/" + text):
        try:
            parse_endpoint(uri)
        except EndpointError as exc:
            assert str(exc)


@pytest.mark.parametrize(("uri", "message"), [
    ("triton://h/m", "is not a KServe endpoint: expected kserve+grpc://HOST:8001/MODEL[/VERSION]"),
    ("kserve+ftp://h/m", "unknown transport 'ftp'"),
    ("kserve+grpc://h", "path must be /MODEL or /MODEL/VERSION"),
    ("kserve+grpc://h/a/b/c", "path must be /MODEL or /MODEL/VERSION"),
    ("kserve+grpc://user:pw@h/m", "must not hold credentials: put a bearer token in a file"),
    ("kserve+grpc://h:99999/m", "bad address"),
    ("kserve+grpc://h/m?timeout=-1", "timeout='-1' must be at least 0.001"),
    ("kserve+grpc://h/m?retries=x", "retries='x' is not an integer"),
    ("kserve+grpc://h/m?ca=/ca.pem", "option ca needs TLS: use kserve+grpcs://"),
    ("kserve+https://h/m?cert=/c.pem", "a client certificate needs both cert= and key="),
    ("kserve+grpc://h/m?color=red", "unknown endpoint option 'color'"),
])
def test_bad_endpoints_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(EndpointError) as err:
        parse_endpoint(uri)
    assert message in str(err.value)


def test_tls_files_and_token_file() -> None:
    ep = parse_endpoint("kserve+grpcs://h/m?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem&token_file=/run/token")
    assert (ep.ca_file, ep.cert_file, ep.key_file, ep.token_file) == (
        Path("/etc/ca.pem"), Path("/c.pem"), Path("/k.pem"), Path("/run/token"))
    assert "token" not in ep.describe() and ep.describe() == "grpcs://h:8001/m"
    assert split_backend("onnxruntime") == ("onnxruntime", None) and split_backend(None) == (None, None)
