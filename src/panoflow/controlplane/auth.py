"""Access keys and AWS Signature Version 4 verification.

The signature is not re-implemented here: the server rebuilds the request as the client signed it (method, raw
path and query, the headers named in ``SignedHeaders``, the body) and lets botocore's own :class:`SigV4Auth`
compute the signature with the stored secret, then compares in constant time. SigV4 is an HMAC keyed by the
secret, so the server must hold the secret itself (not a hash): the database file is created mode 0600 for
that reason.

Beyond the signature (docs/security.md): when ``x-amz-content-sha256`` is signed it must be the SHA-256 of the
body received (botocore trusts the header, so without this check a signed request's body could be swapped);
``UNSIGNED-PAYLOAD`` and streaming payloads are refused; the credential scope must name this control plane's
region and the ``panorama`` service; and a non-idempotent request (POST, PUT, DELETE, PATCH) is not accepted
again from another host: its signature is remembered until it would be too old anyway (:class:`ReplayCache`).
The same client repeating the very same call within a second (a loop creating identical instances, or an SDK
retrying a call that timed out, on a new connection) is not a replay: a captured request is replayed from the
attacker's host. (A scalar query parameter sent twice is refused by the protocol layer: SigV4 sorts values, so
their order is not signed.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from panoflow.controlplane.errors import access_denied
from panoflow.controlplane.store import Store

__all__ = ["MAX_SKEW", "NON_IDEMPOTENT", "AccessKey", "ReplayCache", "SignedRequest", "connection_id",
           "create_access_key", "verify_plane_request", "verify_request"]

#: how far a request's X-Amz-Date may be from the server's clock
MAX_SKEW = dt.timedelta(minutes=5)

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$")
_ALPHABET = string.ascii_uppercase + string.digits
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: methods whose requests are accepted once (a replay within the skew window is refused)
NON_IDEMPOTENT = frozenset({"POST", "PUT", "DELETE", "PATCH"})


class ReplayCache:
    """Signatures of non-idempotent requests seen within the skew window, with the client address each came
    from (in memory, per server process; bounded: the oldest are forgotten first)."""

    def __init__(self, capacity: int = 200_000):
        self.capacity = capacity
        self._seen: OrderedDict[str, tuple[dt.datetime, str]] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, signature: str, connection: str, expires: dt.datetime, now: dt.datetime) -> bool:
        """Record ``signature`` (valid until ``expires``) as sent from ``connection`` (a client address);
        False when it was already used from another one (a replay)."""
        with self._lock:
            while self._seen:
                oldest, (until, _conn) = next(iter(self._seen.items()))
                if until >= now and len(self._seen) < self.capacity:
                    break
                del self._seen[oldest]
            seen = self._seen.get(signature)
            if seen is not None and (not connection or seen[1] != connection):
                return False
            self._seen[signature] = (expires, connection)
            return True


@dataclass(frozen=True)
class AccessKey:
    """An operator-created credential pair, as ``keys create`` prints it."""

    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class SignedRequest:
    """What verification needs from an HTTP request: the raw path with query, headers and body as received,
    and which connection it came on (the peer's address and port; "" when unknown)."""

    method: str
    raw_path_qs: str
    headers: Mapping[str, str]
    body: bytes
    connection: str = ""


def create_access_key(store: Store, *, read_only: bool = False) -> AccessKey:
    """Create and store a new access key (``PFAK`` + 16 characters, 40-character secret). A ``read_only`` key
    may call only reading operations (``controlplane.keys``)."""
    key = AccessKey("PFAK" + "".join(secrets.choice(_ALPHABET) for _ in range(16)),
                    secrets.token_urlsafe(30)[:40])
    doc = {"Policy": "ReadOnly" if read_only else "Admin",
           "CreatedTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with store.transaction() as tx:
        tx.insert("access_keys", key.access_key_id, doc, secret=key.secret_access_key, status="Active")
    return key


def connection_id(request: object) -> str:
    """Where an aiohttp request came from, for :class:`ReplayCache`: the client's address (not its port). An
    SDK retrying a call whose answer it did not get in time sends the very same signed request again, on a new
    connection from the same host; that is not a replay. A captured request is replayed from the attacker's
    host."""
    transport = getattr(request, "transport", None)
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""


def verify_plane_request(plane: object, req: SignedRequest, *, body_checked_later: bool = False) -> str:
    """:func:`verify_request` for a control plane: its store, its region, its replay cache."""
    return verify_request(plane.store, req, region=getattr(plane, "region", None),  # type: ignore[attr-defined]
                          replay=getattr(plane, "replay", None), body_checked_later=body_checked_later)


def _check_payload(req: SignedRequest, signed: list[str], body_checked_later: bool) -> None:
    claimed = req.headers.get("x-amz-content-sha256")
    if claimed is None or "x-amz-content-sha256" not in signed:
        return  # the signature covers the body itself (botocore hashes it)
    if not _HEX64.fullmatch(claimed):
        raise access_denied(f"x-amz-content-sha256 {claimed[:40]!r} is not accepted: sign the payload (the "
                            "hex SHA-256 of the body); UNSIGNED-PAYLOAD and streaming payloads are refused")
    if not body_checked_later and not hmac.compare_digest(hashlib.sha256(req.body).hexdigest(), claimed):
        raise access_denied("The provided 'x-amz-content-sha256' header does not match what was computed: "
                            "the body is not the one that was signed")


def _secret_for(store: Store, akid: str) -> str | None:
    with store.transaction() as tx:
        row = tx.get("access_keys", akid)
    if row is None or row.columns["status"] != "Active":
        return None
    return str(row.columns["secret"])


def verify_request(store: Store, req: SignedRequest, service: str = "panorama",
                   now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc), *,
                   region: str | None = None, replay: ReplayCache | None = None,
                   body_checked_later: bool = False) -> str:
    """The access key id that signed ``req``; ``AccessDeniedException`` when it is unsigned or badly signed.

    ``region``: the region the credential scope must name (None: any). ``replay``: where non-idempotent
    requests are remembered (None: no replay check). ``body_checked_later``: the body is streamed and its
    SHA-256 compared with the signed ``x-amz-content-sha256`` while it is stored (the asset PUT route), so it
    is not hashed here."""
    header = req.headers.get("Authorization")
    if not header:
        raise access_denied("Missing Authentication Token: sign requests with AWS Signature Version 4 using "
                            "an access key created by `panoflow control-plane keys create`")
    m = _AUTH.match(header)
    if m is None:
        raise access_denied("Authorization header is not a valid AWS4-HMAC-SHA256 signature")
    if m["service"] != service:
        raise access_denied(f"Credential should be scoped to correct service: '{service}'")
    if region is not None and m["region"] != region:
        raise access_denied(f"Credential should be scoped to a valid region: '{region}' (got "
                            f"'{m['region'][:40]}')")
    amz_date = req.headers.get("X-Amz-Date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise access_denied("Missing or malformed X-Amz-Date header") from None
    current = now()
    if abs(current - when) > MAX_SKEW:
        raise access_denied(f"Signature expired: request time {amz_date} is more than 5 minutes from the "
                            f"server time {current:%Y%m%dT%H%M%SZ}; check the client's clock")
    if not amz_date.startswith(m["date"]):
        raise access_denied("Credential date does not match X-Amz-Date")
    secret = _secret_for(store, m["akid"])
    if secret is None:
        raise access_denied("The security token included in the request is invalid")
    signed = m["headers"].split(";")
    _check_payload(req, signed, body_checked_later)
    expected = _signature(req, signed, m["akid"], secret, m["region"], service, amz_date)
    if not hmac.compare_digest(expected, m["signature"]):
        raise access_denied("The request signature we calculated does not match the signature you provided. "
                            "Check your AWS Secret Access Key and signing method.")
    if replay is not None and req.method.upper() in NON_IDEMPOTENT and \
            not replay.first_use(m["signature"], req.connection, when + MAX_SKEW, current):
        raise access_denied("This request was already received (a replay): sign every request anew")
    return m["akid"]


def _signature(req: SignedRequest, signed: list[str], akid: str, secret: str, region: str, service: str,
               amz_date: str) -> str:
    headers: dict[str, str] = {}
    for name in signed:
        value = req.headers.get(name)
        if value is not None:
            headers[name] = value
    host = headers.get("host", "localhost")
    request = AWSRequest(method=req.method, url=f"http://{host}{req.raw_path_qs}", headers=headers,
                         data=req.body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
