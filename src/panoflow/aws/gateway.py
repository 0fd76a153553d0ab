"""The per-instance AWS gateway: one aiohttp server per application instance, on 127.0.0.1 (ephemeral ports).

It serves, to that instance's sandbox only:

1. the container-credentials protocol (``GET /panoflow/credentials`` with the instance's random token in
   ``Authorization``; compared in constant time; another token gets 403), fresh credentials from the
   instance's
   :class:`~panoflow.aws.credentials.CredentialCache`;
2. local CloudWatch ``PutMetricData`` (query, JSON and rpc-v2-cbor), kept in a
   :class:`~panoflow.aws.cloudwatch.MetricStore`;
3. local S3 (:class:`~panoflow.aws.s3.LocalS3`), path-style and virtual-hosted;
4. forwarding of ``--aws-endpoint SERVICE=URL`` services, the request's Host and signature untouched;
5. an AWS-shaped ``NotImplemented`` (501, which SDKs do not retry) for every other service, logged once per
   service.

A plain HTTP listener takes the credentials requests and new SDKs (``AWS_ENDPOINT_URL_<SERVICE>``); a TLS
listener with a certificate for the services' AWS hostnames (signed by the device CA, see
:mod:`panoflow.aws.tls`) takes old SDKs whose AWS hostnames the sandbox resolves to it.
:meth:`AwsGateway.sandbox` says what the sandbox must map.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import aiohttp
import anyio.to_thread
import structlog
from aiohttp import web

from panoflow.aws import cbor
from panoflow.aws.cloudwatch import CloudWatchError, MetricStore, parse_document, parse_query
from panoflow.aws.credentials import CredentialCache, CredentialSource, credential_source
from panoflow.aws.s3 import LocalS3, S3Answer, S3Error, decode_aws_chunked
from panoflow.aws.settings import AwsError, AwsSettings, known_services, service
from panoflow.aws.tls import DeviceCA
from panoflow.aws.wire import error_answer, protocol_of, s3_bucket_from_host, service_of
from panoflow.core.metrics import MetricFamily

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CREDENTIALS_PATH", "AwsGateway", "SandboxAws", "app_config_text", "app_environment",
           "sandbox_hostnames"]

log = structlog.get_logger(__name__)

CREDENTIALS_PATH = "/panoflow/credentials"
_CW_TARGET = "GraniteServiceVersion20100801"
_CW_XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
_MAX_BODY = 64 << 20
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "expect"}


def sandbox_hostnames(region: str, services: Iterable[str], buckets: Iterable[str] = ()) -> list[str]:
    """The AWS hostnames that, resolved to 127.0.0.1 in the sandbox's /etc/hosts, bring an old SDK's calls to
    ``services`` (names as in ``--aws-local``/``--aws-endpoint``) to the gateway's TLS listener. S3's
    virtual-hosted names exist per bucket: pass the ``buckets`` you know of, and give the app the
    :func:`app_config_text` config file, which makes old SDKs use path-style addresses."""
    names: list[str] = []
    for name in sorted({service(s).name for s in services}):
        svc = service(name)
        if svc.name == "s3":
            names += ["s3.amazonaws.com", f"s3.{region}.amazonaws.com", f"s3-{region}.amazonaws.com",
                      f"s3.dualstack.{region}.amazonaws.com"]
            for bucket in sorted(set(buckets)):
                names += [f"{bucket}.s3.amazonaws.com", f"{bucket}.s3.{region}.amazonaws.com"]
        elif svc.name == "sts":
            names += ["sts.amazonaws.com", f"sts.{region}.amazonaws.com"]
        elif svc.name == "sqs":  # older SDKs use the legacy queue.amazonaws.com names
            names += [f"sqs.{region}.amazonaws.com", "queue.amazonaws.com", f"{region}.queue.amazonaws.com"]
        else:
            names.append(f"{svc.prefix}.{region}.amazonaws.com")
    return list(dict.fromkeys(names))


def _certificate_names(region: str, services: Iterable[str]) -> list[str]:
    names = sandbox_hostnames(region, services)
    if "s3.amazonaws.com" in names:
        names += ["*.s3.amazonaws.com", f"*.s3.{region}.amazonaws.com"]
    return names


def app_config_text(region: str) -> str:
    """An ``AWS_CONFIG_FILE`` for the app: its region, and path-style S3 addresses (so old SDKs reach S3
    through the hostnames :func:`sandbox_hostnames` lists, whatever the bucket)."""
    return f"[default]\nregion = {region}\ns3 =\n    addressing_style = path\n"


def app_environment(*, credentials_url: str, token: str, region: str, endpoint_url: str | None,
                    endpoint_services: Iterable[str] = (), all_services: bool = False,
                    ca_bundle: str | None = None, config_file: str | None = None) -> dict[str, str]:
    """The environment an app's AWS SDK needs, and nothing secret beyond the per-instance endpoint token.

    ``endpoint_url`` is the gateway's plain HTTP address as the sandbox reaches it; ``endpoint_services`` get
    ``AWS_ENDPOINT_URL_<SERVICE>`` (new SDKs); ``all_services`` (offline) also sets ``AWS_ENDPOINT_URL`` so
    every other service fails fast at the gateway. ``ca_bundle`` and ``config_file`` are paths inside the
    sandbox.
    """
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": credentials_url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
           "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_STS_REGIONAL_ENDPOINTS": "regional"}
    if endpoint_url:
        for name in sorted(set(endpoint_services)):
            env[f"AWS_ENDPOINT_URL_{service(name).env_suffix}"] = endpoint_url
        if all_services:
            env["AWS_ENDPOINT_URL"] = endpoint_url
    if ca_bundle:
        env["AWS_CA_BUNDLE"] = ca_bundle
    if config_file:
        env["AWS_CONFIG_FILE"] = config_file
    return env


@dataclass(frozen=True)
class SandboxAws:
    """What the sandbox launcher must do for one instance's AWS access.

    ``ports``: (port inside the sandbox's loopback, gateway port on the host's 127.0.0.1) pairs to forward
    (the HTTP listener at the same number; 443 to the TLS listener). ``hosts``: names to resolve to 127.0.0.1
    in the sandbox's /etc/hosts. ``files``: (host file, path inside) to bind read-only (the CA bundle and the
    AWS config file; certificates and settings only, never a key). ``env``: the app's AWS environment
    variables.
    """

    ports: tuple[tuple[int, int], ...]
    hosts: tuple[str, ...]
    files: tuple[tuple[Path, str], ...]
    env: dict[str, str] = field(default_factory=dict)


class AwsGateway:
    """One instance's AWS gateway. ``async with AwsGateway(...) as gw`` (or ``await start()`` / ``await
    stop()``).

    ``state_dir`` is the device's state folder: local S3 objects go to ``STATE/aws/s3`` (shared by the
    device's instances, one cap), the CA to ``STATE/aws/ca`` (keys, never mounted into a sandbox), the
    per-instance files an app may read (CA bundle, config) to ``STATE/aws/apps/INSTANCE``. ``metrics`` may be
    shared by the instances of a device, and so should ``s3`` (one :class:`LocalS3` keeps one cap for the
    device's folder); ``source`` overrides the credential source the settings imply (tests);
    ``refresh_margin`` and ``max_lifetime`` are passed to the :class:`CredentialCache`.
    ``require_credentials=False`` lets the gateway start while the credentials cannot be had yet (a device
    booting without network): it logs why, and the app's SDK gets an error from the credentials endpoint until
    they can.
    """

    def __init__(self, settings: AwsSettings, *, instance_id: str, state_dir: Path,
                 metrics: MetricStore | None = None, source: CredentialSource | None = None,
                 refresh_margin: float | None = None, max_lifetime: float | None = None,
                 tls: bool = True, buckets: Iterable[str] = (), host: str = "127.0.0.1",
                 s3: LocalS3 | None = None, require_credentials: bool = True):
        self.settings = settings.validate()
        self.instance_id, self.host = instance_id, host
        self.state_dir = Path(state_dir)
        self.metrics = metrics if metrics is not None else MetricStore()
        self.cache = CredentialCache(source or credential_source(settings), refresh_margin=refresh_margin,
                                     max_lifetime=max_lifetime)
        self.s3 = s3 if s3 is not None else LocalS3(self.state_dir / "aws" / "s3", settings.s3_cap_bytes)
        self.token = secrets.token_urlsafe(32)
        self.tls, self.buckets, self.require_credentials = tls, tuple(buckets), require_credentials
        self.http_port = 0
        self.https_port = 0
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._logged: set[str] = set()
        self.log = log.bind(instance_id=instance_id)
        self.denied = 0

    # -- what the sandbox needs ------------------------------------------------------------------------------
    @property
    def redirected(self) -> frozenset[str]:
        return frozenset(self.settings.endpoints)

    @property
    def local(self) -> frozenset[str]:
        return self.settings.local_services

    @property
    def offline(self) -> bool:
        """No credentials configured: every AWS call of the app comes to the gateway (and fails fast if
        unserved)."""
        return not self.settings.has_credentials

    def mapped_services(self) -> frozenset[str]:
        """Services whose hostnames the sandbox resolves to the gateway: the local and redirected ones, and
        offline every service panoflow knows by name (so those fail fast instead of waiting on a network)."""
        names = set(self.local) | set(self.redirected)
        if self.offline:
            names |= {s.name for s in known_services()}
        return frozenset(names)

    def hostnames(self) -> list[str]:
        return sandbox_hostnames(self.settings.region, self.mapped_services(), self.buckets)

    @property
    def app_dir(self) -> Path:
        return self.state_dir / "aws" / "apps" / self.instance_id

    @property
    def credentials_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}{CREDENTIALS_PATH}"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def environment(self, *, ca_bundle: str | None = "/run/panoflow/aws/ca-bundle.pem",
                    config_file: str | None = "/run/panoflow/aws/config") -> dict[str, str]:
        """The app's AWS environment (see :func:`app_environment`), paths as the sandbox shows the files."""
        return app_environment(credentials_url=self.credentials_url, token=self.token,
                               region=self.settings.region, endpoint_url=self.endpoint_url,
                               endpoint_services=set(self.local) | set(self.redirected),
                               all_services=self.offline, ca_bundle=ca_bundle if self.https_port else None,
                               config_file=config_file)

    def sandbox(self, inside: str = "/run/panoflow/aws") -> SandboxAws:
        """Everything the launcher maps for this instance (call after :meth:`start`)."""
        files: list[tuple[Path, str]] = [(self.app_dir / "config", f"{inside}/config")]
        ports = [(self.http_port, self.http_port)]
        if self.https_port:
            files.append((self.app_dir / "ca-bundle.pem", f"{inside}/ca-bundle.pem"))
            ports.append((443, self.https_port))
        env = self.environment(ca_bundle=f"{inside}/ca-bundle.pem", config_file=f"{inside}/config")
        return SandboxAws(tuple(ports), tuple(self.hostnames()) if self.https_port else (), tuple(files), env)

    def families(self) -> list[MetricFamily]:
        """This instance's CloudWatch metrics as Prometheus families (for the instance's and daemon's
        /metrics)."""
        return self.metrics.families()

    # -- life cycle ------------------------------------------------------------------------------------------
    async def start(self) -> AwsGateway:
        """Fetch the credentials once (so a bad role fails now, with its reason), bind the listeners, write
        the app's files. Raises :class:`AwsError`."""
        try:
            await anyio.to_thread.run_sync(self.cache.get)
        except AwsError as exc:
            if self.require_credentials:
                raise
            self.log.warning("aws_credentials_unavailable", error=str(exc))
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
            self.http_port = _port_of(site)
            self.app_dir.mkdir(parents=True, exist_ok=True)
            (self.app_dir / "config").write_text(app_config_text(self.settings.region), encoding="ascii")
            if self.tls:
                ssl_context = await anyio.to_thread.run_sync(self._tls_context)
                tls_site = web.TCPSite(runner, self.host, 0, ssl_context=ssl_context)
                await tls_site.start()
                self.https_port = _port_of(tls_site)
        except BaseException:
            await self.stop()
            raise
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False)
        self.log.info("aws_gateway_started", http_port=self.http_port, https_port=self.https_port,
                      local=sorted(self.local), redirected=sorted(self.redirected),
                      credentials=self.cache.source.description)
        return self

    def _tls_context(self) -> ssl.SSLContext:
        ca = DeviceCA(self.state_dir / "aws" / "ca")
        names = _certificate_names(self.settings.region, self.mapped_services())
        names += [f"{b}.s3.amazonaws.com" for b in self.buckets] if "s3" in self.mapped_services() else []
        leaf = ca.issue(list(dict.fromkeys(names)), name=f"gateway-{_safe(self.instance_id)}")
        ca.write_bundle(self.app_dir / "ca-bundle.pem")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(leaf.cert_file, leaf.key_file)
        return context

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- requests --------------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == CREDENTIALS_PATH:
            return await self._credentials(request)
        body = await request.read()
        headers = request.headers
        prefix = service_of(headers, request.query, request.host) or _cloudwatch_hint(request)
        name = service(prefix).name if prefix else None
        protocol = protocol_of(headers, prefix, request.content_type)
        if name and name in self.redirected:
            return await self._forward(request, body, self.settings.endpoints[name])
        if name == "cloudwatch" and "cloudwatch" in self.local:
            return self._cloudwatch(request, body, protocol)
        if name == "s3" and "s3" in self.local:
            return await self._s3(request, body)
        what = name or "an unknown service"
        if what not in self._logged:
            self._logged.add(what)
            self.log.warning("aws_service_not_served", service=what, method=request.method,
                             local=sorted(self.local), redirected=sorted(self.redirected))
        return _answer(error_answer(protocol, 501, "NotImplemented",
                                    f"panoflow does not serve {what} to this application: give the instance "
                                    "AWS credentials (--aws-profile, --aws-credentials or --aws-role-arn) "
                                    "or redirect it (--aws-endpoint "
                                    f"{name or 'SERVICE'}=URL)", xml_namespace=None))

    async def _credentials(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.denied += 1
            self.log.warning("aws_credentials_denied", remote=request.remote, token_given=bool(given))
            return web.json_response({"Code": "AccessDenied",
                                      "Message": "wrong or missing authorization token"},
                                     status=403)
        try:
            creds, expires = await anyio.to_thread.run_sync(self.cache.get)
        except AwsError as exc:
            self.log.error("aws_credentials_unavailable", error=str(exc))
            return web.json_response({"Code": "CredentialsUnavailable", "Message": str(exc)}, status=500)
        return web.json_response(creds.container_document(expires))

    def _cloudwatch(self, request: web.Request, body: bytes, protocol: str) -> web.Response:
        if protocol == "cbor":
            operation = request.path.rstrip("/").rsplit("/", 1)[-1]
        elif protocol == "json":
            operation = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        else:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if body else \
                list(request.query.items())
            operation = dict(pairs).get("Action", "")
        if operation != "PutMetricData":
            key = f"cloudwatch.{operation}"
            if key not in self._logged:
                self._logged.add(key)
                self.log.warning("aws_operation_not_served", service="cloudwatch", operation=operation)
            return _answer(error_answer(protocol, 501, "NotImplemented",
                                        "panoflow's local CloudWatch serves PutMetricData only, not "
                                        f"{operation!r}",
                                        xml_namespace=_CW_XMLNS))
        try:
            if protocol == "cbor":
                data = parse_document(cbor.decode(body) if body else {})
            elif protocol == "json":
                data = parse_document(_json(body))
            else:
                data = parse_query(pairs)
        except (CloudWatchError, cbor.CborError) as exc:
            code = exc.code if isinstance(exc, CloudWatchError) else "SerializationException"
            return _answer(error_answer(protocol, 400, code, str(exc), xml_namespace=_CW_XMLNS))
        self.metrics.add(data)
        if protocol == "cbor":
            return web.Response(body=cbor.encode({}), content_type="application/cbor",
                                headers={"smithy-protocol": "rpc-v2-cbor"})
        if protocol == "json":
            return web.Response(body=b"{}", content_type="application/x-amz-json-1.0")
        return web.Response(body=(f'<PutMetricDataResponse xmlns="{_CW_XMLNS}"><ResponseMetadata><RequestId>'
                                  f"{secrets.token_hex(16)}</RequestId></ResponseMetadata></PutMetricDataResponse>"
                                  ).encode(), content_type="text/xml")

    async def _s3(self, request: web.Request, body: bytes) -> web.StreamResponse:
        bucket = s3_bucket_from_host(request.host)
        # the raw target, decoded here: the parsed path has dot segments collapsed, hiding a traversal attempt
        path = unquote(request.raw_path.split("?", 1)[0])
        if bucket is None:
            bucket, _, key = path.lstrip("/").partition("/")
        else:
            key = path.lstrip("/")
        query = request.query
        method = request.method
        try:
            if not bucket:
                raise S3Error(501, "NotImplemented", "panoflow's local S3 does not list buckets")
            unsupported = set(query) - {"list-type", "prefix", "delimiter", "max-keys", "continuation-token",
                                        "start-after", "encoding-type", "fetch-owner", "x-id"}
            if unsupported:
                raise S3Error(501, "NotImplemented", "panoflow's local S3 does not serve "
                              f"?{min(unsupported)}: it serves PutObject, GetObject, HeadObject, "
                              "DeleteObject and ListObjectsV2")
            answer: S3Answer
            if key and method == "PUT":
                if "aws-chunked" in request.headers.get("Content-Encoding", "") or \
                        request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
                    body = decode_aws_chunked(body)
                answer = await anyio.to_thread.run_sync(self.s3.put_object, bucket, key, body)
            elif key and method in ("GET", "HEAD"):
                answer = await anyio.to_thread.run_sync(lambda: self.s3.get_object(bucket, key,
                                                                                   head=method == "HEAD"))
            elif key and method == "DELETE":
                answer = await anyio.to_thread.run_sync(self.s3.delete_object, bucket, key)
            elif not key and method == "PUT":
                answer = await anyio.to_thread.run_sync(self.s3.create_bucket, bucket)
            elif not key and method == "HEAD":
                answer = S3Answer(200, {})
            elif not key and method == "GET" and query.get("list-type") == "2":
                answer = await anyio.to_thread.run_sync(self.s3.list_objects_v2, bucket, dict(query))
            else:
                raise S3Error(501, "NotImplemented", f"panoflow's local S3 does not serve {method} {path}: "
                              "it serves PutObject, GetObject, HeadObject, DeleteObject and ListObjectsV2")
        except S3Error as exc:
            if exc.status == 501 and exc.message not in self._logged:
                self._logged.add(exc.message)
                self.log.warning("aws_operation_not_served", service="s3", method=method, detail=exc.message)
            return _answer(error_answer("rest-xml", exc.status, exc.code, exc.message))
        response = web.Response(status=answer.status, body=answer.body or None, headers=answer.headers)
        return response

    async def _forward(self, request: web.Request, body: bytes, base: str) -> web.StreamResponse:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        skip = [h for h in ("Accept-Encoding", "User-Agent", "Content-Type") if h not in request.headers]
        url = base + request.raw_path
        try:
            async with self._client.request(request.method, url, headers=headers, data=body or None,
                                            allow_redirects=False, skip_auto_headers=skip) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
                status = upstream.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            key = f"unreachable {base}"
            if key not in self._logged:
                self._logged.add(key)
                self.log.warning("aws_endpoint_unreachable", endpoint=base, error=type(exc).__name__)
            protocol = protocol_of(request.headers, service_of(request.headers, request.query, request.host),
                                   request.content_type)
            return _answer(error_answer(protocol, 502, "EndpointUnreachable",
                                        f"panoflow could not reach the --aws-endpoint {base}: "
                                        f"{type(exc).__name__}",
                                        sender=False))
        response = web.Response(status=status, body=payload if request.method != "HEAD" else None,
                                headers=out)
        if request.method == "HEAD" and "Content-Length" in upstream.headers:
            response.headers["Content-Length"] = upstream.headers["Content-Length"]
        return response


def _port_of(site: web.TCPSite) -> int:
    server: Any = site._server  # aiohttp keeps the asyncio server here; its sockets hold the ephemeral port
    return int(server.sockets[0].getsockname()[1])


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80] or "instance"


def _cloudwatch_hint(request: web.Request) -> str | None:
    """Unsigned CloudWatch requests still say what they are (target prefix, rpc-v2 path, or query Action)."""
    if request.headers.get("X-Amz-Target", "").startswith(_CW_TARGET) or \
            request.path.startswith(f"/service/{_CW_TARGET}/"):
        return "monitoring"
    return None


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise CloudWatchError("SerializationException", "the request body is not JSON") from None


def _answer(err: Any) -> web.Response:
    return web.Response(status=err.status, body=err.body, headers=err.headers)
