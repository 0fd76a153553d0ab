"""Access keys and AWS Signature Version 4 verification.

The signature is not re-implemented here: the server rebuilds the request as the client signed it (method, raw path
and query, the headers named in ``SignedHeaders``, the body) and lets botocore's own :class:`SigV4Auth` compute the
signature with the stored secret, then compares in constant time. SigV4 is an HMAC keyed by the secret, so the
server must hold the secret itself (not a hash): the database file is created mode 0600 for that reason.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from panoflow.controlplane.errors import access_denied
from panoflow.controlplane.store import Store

__all__ = ["MAX_SKEW", "AccessKey", "SignedRequest", "create_access_key", "verify_request"]

#: how far a request's X-Amz-Date may be from the server's clock
MAX_SKEW = dt.timedelta(minutes=5)

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$")
_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class AccessKey:
    """An operator-created credential pair, as ``keys create`` prints it."""

    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class SignedRequest:
    """What verification needs from an HTTP request: the raw path with query, headers and body as received."""

    method: str
    raw_path_qs: str
    headers: Mapping[str, str]
    body: bytes


def create_access_key(store: Store) -> AccessKey:
    """Create and store a new access key (``PFAK`` + 16 characters, 40-character secret)."""
    key = AccessKey("PFAK" + "".join(secrets.choice(_ALPHABET) for _ in range(16)), secrets.token_urlsafe(30)[:40])
    with store.transaction() as tx:
        tx.insert("access_keys", key.access_key_id, {}, secret=key.secret_access_key, status="Active")
    return key


def _secret_for(store: Store, akid: str) -> str | None:
    with store.transaction() as tx:
        row = tx.get("access_keys", akid)
    if row is None or row.columns["status"] != "Active":
        return None
    return str(row.columns["secret"])


def verify_request(store: Store, req: SignedRequest, service: str = "panorama",
                   now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> str:
    """The access key id that signed ``req``; ``AccessDeniedException`` when it is unsigned or badly signed."""
    header = req.headers.get("Authorization")
    if not header:
        raise access_denied("Missing Authentication Token: sign requests with AWS Signature Version 4 using an "
                            "access key created by `panoflow control-plane keys create`")
    m = _AUTH.match(header)
    if m is None:
        raise access_denied("Authorization header is not a valid AWS4-HMAC-SHA256 signature")
    if m["service"] != service:
        raise access_denied(f"Credential should be scoped to correct service: '{service}'")
    amz_date = req.headers.get("X-Amz-Date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise access_denied("Missing or malformed X-Amz-Date header") from None
    current = now()
    if abs(current - when) > MAX_SKEW:
        raise access_denied(f"Signature expired: request time {amz_date} is more than 5 minutes from the server "
                            f"time {current:%Y%m%dT%H%M%SZ}; check the client's clock")
    if not amz_date.startswith(m["date"]):
        raise access_denied("Credential date does not match X-Amz-Date")
    secret = _secret_for(store, m["akid"])
    if secret is None:
        raise access_denied("The security token included in the request is invalid")
    expected = _signature(req, m["headers"].split(";"), m["akid"], secret, m["region"], service, amz_date)
    if not hmac.compare_digest(expected, m["signature"]):
        raise access_denied("The request signature we calculated does not match the signature you provided. "
                            "Check your AWS Secret Access Key and signing method.")
    return m["akid"]


def _signature(req: SignedRequest, signed: list[str], akid: str, secret: str, region: str, service: str,
               amz_date: str) -> str:
    headers: dict[str, str] = {}
    for name in signed:
        value = req.headers.get(name)
        if value is not None:
            headers[name] = value
    host = headers.get("host", "localhost")
    request = AWSRequest(method=req.method, url=f"http://{host}{req.raw_path_qs}", headers=headers, data=req.body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
