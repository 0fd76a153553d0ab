"""The device's HTTP client for the control plane's ``/_panoflow/`` routes (docs/device-protocol.md).

Every failure is one of two kinds, because the device reacts differently:

* :class:`Offline` - connection refused or reset, a timeout, a 5xx: the control plane is (for now) out of
  reach. Retry later with :class:`Backoff`, keep running, keep buffering.
* :class:`Refused` - 401/403: the control plane does not accept this device (claim token used or expired,
  device deleted). Retrying cannot help: say so once, stop syncing, keep running what the device has.

Anything else (a 4xx the device did not expect, a malformed answer) is a :class:`ProtocolError`.

Transport (docs/security.md): an ``https://`` control plane is verified against the CA of the provisioning
bundle only (the system's trust store is not used), so a server with any other certificate is an
:class:`UntrustedServer` that says why; ``http://`` is refused (:class:`InsecureTransport`) unless the device
was started with ``--insecure-http``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import anyio
import anyio.to_thread

from panoflow.exceptions import CloudError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Backoff", "CloudClient", "InsecureTransport", "Offline", "ProtocolError", "Refused",
           "UntrustedServer", "VerificationError", "client_ssl_context"]

PREFIX = "/_panoflow"
CHUNK = 1 << 20


class Offline(CloudError):
    """The control plane cannot be reached right now (retry later)."""


class UntrustedServer(Offline):
    """The server presented a certificate the pinned CA did not sign (or for another name): nothing is sent to
    it. An :class:`Offline` (the real control plane may be back later), whose message says what is wrong."""


class InsecureTransport(CloudError):
    """The control plane URL is plain ``http://`` (or ``https://`` with no CA to pin) and ``--insecure-http``
    was not given."""


def client_ssl_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts ``ca_pem`` and nothing else (hostname checked, TLS 1.2 or newer)."""
    try:
        ctx = ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise InsecureTransport(f"the CA certificate in the provisioning bundle cannot be used ({exc}); "
                                "provision the device again") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def check_transport(base_url: str, ca_pem: str | None, insecure_http: bool) -> ssl.SSLContext | bool:
    """What :class:`CloudClient` connects with: a pinned SSL context, or ``False`` (plain HTTP, only with
    ``insecure_http``). Raises :class:`InsecureTransport` saying what to do otherwise."""
    scheme = base_url.split("://", 1)[0].lower()
    if scheme == "https":
        if not ca_pem:
            raise InsecureTransport(f"no CA to verify {base_url} with: the device pins the CA certificate of "
                                    "its provisioning bundle; provision it again (ProvisionDevice on a "
                                    "control plane that serves HTTPS) and start it with --provision "
                                    "BUNDLE.zip")
        return client_ssl_context(ca_pem)
    if scheme == "http":
        if not insecure_http:
            raise InsecureTransport(f"refusing plain HTTP to {base_url}: device tokens, camera passwords and "
                                    "code would cross the network in clear and anyone on the path could run "
                                    "code on this device; use the control plane's https:// URL, or "
                                    "--insecure-http for development only")
        return False
    raise InsecureTransport(f"the control plane URL {base_url!r} must start with https://")


class Refused(CloudError):
    """The control plane refuses this device (401/403); ``str()`` is the server's message."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ProtocolError(CloudError):
    """An answer the device did not expect (a 4xx other than 401/403, or not the JSON the contract says)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class VerificationError(CloudError):
    """A downloaded asset is not the file the control plane said it is (SHA-256 or size mismatch)."""


class Backoff:
    """Capped exponential back-off with full jitter: ``next()`` returns how long to wait before the next
    try."""

    def __init__(self, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # at least half the ceiling: no hot loop

    def reset(self) -> None:
        self.attempts = 0


def _message(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            text = doc.get("Message") or doc.get("message") or doc.get("error")
            code = doc.get("Code") or doc.get("__type")
            if text:
                return f"{code}: {text}" if code else str(text)
    except ValueError:
        pass
    return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"


class CloudClient:
    """One aiohttp session to the control plane at ``base_url`` (use as ``async with``).

    ``token`` is the device's bearer token (set after the claim). ``timeout_s`` bounds each JSON call; asset
    downloads get ``download_timeout_s`` between two chunks. ``ca_pem`` is the pinned CA (see the module
    docstring); ``insecure_http`` allows a plain ``http://`` URL."""

    def __init__(self, base_url: str, token: str | None = None, *, ca_pem: str | None = None,
                 insecure_http: bool = False, timeout_s: float = 20.0,
                 connect_timeout_s: float = 5.0, download_timeout_s: float = 60.0):
        self.ssl = check_transport(base_url, ca_pem, insecure_http)
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.download_timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s,
                                                      sock_read=download_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers={"User-Agent": "panoflow-device"},
                                              connector=aiohttp.TCPConnector(ssl=self.ssl))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _call(self, path: str, body: Any, *, auth: bool = True, jpeg: bytes | None = None) -> Any:
        """POST ``body`` as JSON (or ``jpeg`` as ``image/jpeg``); the JSON answer."""
        assert self._session is not None, "use CloudClient as `async with`"
        url = self.base_url + PREFIX + path
        headers = self._headers() if auth else {}
        send: dict[str, Any] = {"json": body} if jpeg is None else {
            "data": jpeg, "headers": {**headers, "Content-Type": "image/jpeg"}}
        send.setdefault("headers", headers)
        try:
            async with self._session.post(url, timeout=self.timeout, **send) as resp:
                data = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise self._untrusted(exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Offline(f"cannot reach the control plane at {self.base_url}: {type(exc).__name__}: {exc}"
                          ) from None
        if status in (401, 403):
            raise Refused(_message(status, data), status)
        if status >= 500 or status == 429:  # 429: this device is over its rate or quota; back off, keep lines
            raise Offline(f"the control plane answered {path} with {_message(status, data)}")
        if status >= 400:
            raise ProtocolError(f"the control plane refused {path}: {_message(status, data)}", status)
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError:
            raise ProtocolError(
                f"the control plane answered {path} with something that is not JSON"
            ) from None

    def _untrusted(self, exc: aiohttp.ClientConnectorCertificateError) -> UntrustedServer:
        return UntrustedServer(f"refusing to talk to {self.base_url}: its TLS certificate is not one the CA "
                               "of this device's provisioning bundle signed for that name "
                               f"({exc.certificate_error}); someone may be impersonating the control plane, "
                               "or it was given another certificate: if that was intended, provision the "
                               "device again")

    # ------------------------------------------------------------------ the protocol's calls
    async def claim(self, *, device_id: str, claim_token: str, version: str, hostname: str) -> dict[str, Any]:
        """Exchange the bundle's one-time token for the device's credentials (section 1)."""
        answer = await self._call("/device/v1/claim", {
            "DeviceId": device_id, "ClaimToken": claim_token, "Software": {"Version": version},
            "Hostname": hostname}, auth=False)
        if not isinstance(answer, dict) or not isinstance(answer.get("Token"), str):
            raise ProtocolError("the control plane's claim answer has no Token")
        return answer

    async def renew_token(self) -> dict[str, Any]:
        """A new device token replacing this one (section 1): ``{"Token", "ExpiresAt"}``."""
        answer = await self._call("/device/v1/token", {})
        if not isinstance(answer, dict) or not isinstance(answer.get("Token"), str):
            raise ProtocolError("the control plane's token answer has no Token")
        return answer

    async def sync(self, state: dict[str, Any]) -> dict[str, Any]:
        """Report the full state, receive the desired state (section 2)."""
        answer = await self._call("/device/v1/sync", state)
        if not isinstance(answer, dict):
            raise ProtocolError("the control plane's sync answer is not a JSON object")
        return answer

    async def logs(self, lines: list[dict[str, str]]) -> None:
        await self._call("/device/v1/logs", {"Lines": lines})

    async def metrics(self, text: str) -> None:
        await self._call("/device/v1/metrics", {"Text": text})

    async def preview(self, instance_id: str, jpeg: bytes) -> dict[str, Any]:
        """One live-preview frame of a control-plane instance (section 6): ``{"Wanted": bool, ...}``."""
        answer = await self._call("/device/v1/preview/" + quote(instance_id, safe=""), None, jpeg=jpeg)
        return answer if isinstance(answer, dict) else {}

    async def download(self, key: str, dest: Path, *, sha256: str, size: int | None = None) -> Path:
        """Stream asset ``key`` into a temporary file beside ``dest``, check its SHA-256 (and size), then move
        it to ``dest``. A mismatch is a :class:`VerificationError` and leaves nothing behind."""
        assert self._session is not None, "use CloudClient as `async with`"
        url = self.base_url + PREFIX + "/assets/" + quote(key, safe="/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    async with self._session.get(url, headers=self._headers(),
                                                 timeout=self.download_timeout) as resp:
                        if resp.status != 200:
                            data = await resp.read()
                            if resp.status in (401, 403):
                                raise Refused(_message(resp.status, data), resp.status)
                            if resp.status >= 500:
                                raise Offline(f"asset {key}: {_message(resp.status, data)}")
                            raise ProtocolError(f"asset {key}: {_message(resp.status, data)}", resp.status)
                        async for chunk in resp.content.iter_chunked(CHUNK):
                            digest.update(chunk)
                            written += len(chunk)
                            if size is not None and written > size:
                                raise VerificationError(f"asset {key} is larger than the {size} bytes the "
                                                        "control plane announced")
                            await anyio.to_thread.run_sync(out.write, chunk)
                except CloudError:  # ours (a ConnectionError, hence an OSError): as raised
                    raise
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise self._untrusted(exc) from None
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    raise Offline(f"downloading asset {key} failed: {type(exc).__name__}: {exc}") from None
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if got != sha256.lower():
                raise VerificationError(f"asset {key} does not match its SHA-256: expected {sha256}, got "
                                        f"{got}; the file in the control plane's asset store is damaged or "
                                        "was replaced: register the package version again")
            if size is not None and written != size:
                raise VerificationError(
                    f"asset {key} has {written} bytes, the control plane announced {size}"
                )
            os.chmod(tmp, 0o644)  # an application file (not a secret): readable by the app's own user
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest
