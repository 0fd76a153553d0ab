"""Where a remote model lives: the ``kserve+<transport>://`` URI given to ``--model-backend`` (no I/O here).

Form: ``kserve+grpc://HOST[:PORT]/MODEL[/VERSION][?OPTION=VALUE&...]``; transports ``grpc`` (default port
8001), ``grpcs`` (gRPC over TLS), ``http`` (default port 8000), ``https``. Options:

- ``timeout``: seconds one request may take (default 10);
- ``connect_timeout``: seconds to reach the server and read the model's metadata at start-up (default 10);
- ``retries``: extra attempts for a request the server refused as UNAVAILABLE, with back-off (default 2);
- ``max_batch``: the largest batch the server's model accepts (default: no limit of the server's own);
- ``ca``, ``cert``, ``key``: PEM files: the CA that signed the server's certificate, and a client certificate
  and its key (mutual TLS); only with ``grpcs``/``https``;
- ``token_file``: a file holding a bearer token, sent as ``Authorization: Bearer ...`` (the token itself never
  goes on a command line).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["DEFAULT_PORTS", "Endpoint", "EndpointError", "parse_endpoint"]

DEFAULT_PORTS = {"grpc": 8001, "grpcs": 8001, "http": 8000, "https": 8000}
_OPTIONS = ("timeout", "connect_timeout", "retries", "max_batch", "ca", "cert", "key", "token_file")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")
EXAMPLE = "kserve+grpc://HOST:8001/MODEL[/VERSION]"


class EndpointError(ValueError):
    """The URI cannot name a KServe V2 model; the message says what is wrong and shows the expected form."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``kserve+...://`` URI (see the module docstring for the options)."""

    transport: str  # "grpc" or "http"
    tls: bool
    host: str
    port: int
    model: str
    version: str = ""  # "": the server's choice
    timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    retries: int = 2
    max_batch: int | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token_file: Path | None = None

    @property
    def address(self) -> str:
        """``host:port`` as the clients take it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        """A one-line description for logs and errors (no secrets: the URI never holds one)."""
        scheme = self.transport + ("s" if self.tls else "")
        return f"{scheme}://{self.address}/{self.model}" + (f"/{self.version}" if self.version else "")


def _number(name: str, text: str, *, integer: bool = False, minimum: float = 0.0) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise EndpointError(
            f"option {name}={text!r} is not a{'n integer' if integer else ' number'}"
        ) from None
    if not math.isfinite(value) or value < minimum:
        raise EndpointError(f"option {name}={text!r} must be at least {minimum:g}")
    return value


def parse_endpoint(uri: str) -> Endpoint:
    """Parse a ``kserve+<transport>://`` URI; raises :class:`EndpointError` naming the problem."""
    scheme, sep, _ = uri.partition("://")
    kind, plus, transport = scheme.partition("+")
    if not sep or kind.lower() != "kserve":
        raise EndpointError(f"{uri!r} is not a KServe endpoint: expected {EXAMPLE}")
    transport = transport.lower()
    if not plus or transport not in DEFAULT_PORTS:
        raise EndpointError(f"unknown transport {transport!r} in {scheme!r}: use kserve+grpc, kserve+grpcs, "
                            "kserve+http or kserve+https")
    try:
        parts = urlsplit("x" + uri[len(scheme):])
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"bad address in the endpoint: {exc} (expected {EXAMPLE})") from None
    if "@" in parts.netloc:
        raise EndpointError("the endpoint must not hold credentials: put a bearer token in a file and give "
                            "?token_file=PATH")
    host = parts.hostname or ""
    if not host:
        raise EndpointError(f"the endpoint names no host (expected {EXAMPLE})")
    if parts.fragment:
        raise EndpointError("the endpoint must not have a #fragment")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not 1 <= len(path) <= 2:
        raise EndpointError(
            f"the endpoint's path must be /MODEL or /MODEL/VERSION, not {parts.path or '/'!r}"
        )
    for piece in path:
        if not _NAME.match(piece):
            raise EndpointError(f"{piece!r} is not a model name or version (letters, digits, '_', '.', '-')")
    tls = transport.endswith("s")
    fields: dict[str, object] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise EndpointError(f"unknown endpoint option {key!r} (options: {', '.join(_OPTIONS)})")
        if key in ("timeout", "connect_timeout"):
            fields[f"{key}_s"] = _number(key, value, minimum=0.001)
        elif key in ("retries", "max_batch"):
            fields[key] = int(_number(key, value, integer=True, minimum=0 if key == "retries" else 1))
        else:
            if not value:
                raise EndpointError(f"option {key} needs a file path")
            if key != "token_file" and not tls:
                raise EndpointError(f"option {key} needs TLS: use kserve+{transport}s://")
            fields[key if key == "token_file" else f"{key}_file"] = Path(value)
    if ("cert_file" in fields) != ("key_file" in fields):
        raise EndpointError("a client certificate needs both cert= and key=")
    return Endpoint(transport=transport.rstrip("s"), tls=tls, host=host,
                    port=port or DEFAULT_PORTS[transport],
                    model=path[0], version=path[1] if len(path) > 1 else "", **fields)  # type: ignore[arg-type]
