"""``package-application``: upload a project's packages and register their versions with a control plane.

:func:`plan_upload` works out, per package, what panorama-cli uploads (every non-system asset file and
descriptor in ``assets/``, checked against the SHA-256 in its name, and package.json, whose SHA-256 is the
patch version).
:class:`ControlPlaneUploader` (from :func:`uploader_for`) talks to a panoflow control plane: ``CreatePackage``
for the StorageLocation, a signed ``HEAD`` then ``PUT /_panoflow/assets/<key>`` per file (skipping what is
already there: files are content addressed, so running it again uploads nothing), the manifest,
``RegisterPackageVersion`` (marked latest) and ``DescribePackageVersion`` until it is registered. Credentials
are the usual AWS ones (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or a profile) holding a key from
``panoflow control-plane keys create``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, urlsplit

import structlog

from panoflow.core.manifest.packages import file_sha256
from panoflow.packaging.project import PackageFolder, PackagingError, Project

__all__ = ["ControlPlaneUploader", "PackageUpload", "Uploader", "package_application", "plan_upload",
           "uploader_for"]

log = structlog.get_logger("panoflow.packaging.publish")

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")


@dataclass(frozen=True)
class PackageUpload:
    """One ``RegisterPackageVersion``: package ``name`` at ``version``, patch version = SHA-256 of
    package.json."""

    folder: PackageFolder
    name: str
    version: str
    patch_version: str
    # assets/ files to upload (binaries and descriptors)
    files: tuple[Path, ...] = field(default_factory=tuple)


class Uploader(Protocol):
    """What the control-plane client provides: create the package if needed, upload the files the store lacks,
    put the manifest, register the version (marked latest) and wait until it is registered."""

    def upload(self, package: PackageUpload) -> None: ...


def plan_upload(project: Project, only: Sequence[PackageFolder] = ()) -> list[PackageUpload]:
    """What ``package-application`` uploads; :class:`PackagingError` for a missing or altered asset file."""
    plans = []
    for folder in only or project.package_folders():
        if not folder.package_json.is_file():
            continue
        data = folder.package_json.read_bytes()
        doc = project.read_json(folder.package_json)
        body = doc.get("nodePackage", {}) if isinstance(doc, dict) else {}
        _check_interfaces_have_assets(project, folder, body)
        files: list[Path] = []
        for asset in body.get("assets", []) or []:
            for impl in asset.get("implementations", []) if isinstance(asset, dict) else ():
                if not isinstance(impl, dict) or impl.get("type") == "system":
                    continue
                for key in ("assetUri", "descriptorUri"):
                    uri = impl.get(key)
                    if not isinstance(uri, str) or not uri:
                        continue
                    path = project.assets / uri
                    if "/" in uri or not path.is_file():
                        raise PackagingError(f"{project.display(folder.package_json)}: asset "
                                             f"{asset.get('name')!r} names assets/{uri}, which is not there; "
                                             "build or add it first")
                    named = _SHA_NAME.match(uri)
                    if named and file_sha256(path) != named.group(1):
                        raise PackagingError(f"assets/{uri} does not match the SHA-256 in its name; rebuild "
                                             "it")
                    files.append(path)
        plans.append(PackageUpload(folder, str(body.get("name") or folder.name),
                                   str(body.get("version") or folder.version),
                                   hashlib.sha256(data).hexdigest(), tuple(dict.fromkeys(files))))
    return plans


#: what adds an interface's asset, by interface category
_ADDED_BY = {
    "business_logic": "panoflow build-container --container-asset-name {asset} --package-path {package}",
    "ml_model": "panoflow add-raw-model --model-asset-name {asset} --model-local-path MODEL "
                "--descriptor-path DESCRIPTOR --packages-path {package}",
}


def _check_interfaces_have_assets(project: Project, folder: PackageFolder, body: Any) -> None:
    """Every interface's ``asset`` must be one of the package's assets: a code package whose code asset was
    never built would register, then fail on the device."""
    if not isinstance(body, dict):
        return
    assets = {a.get("name") for a in body.get("assets", []) or [] if isinstance(a, dict)}
    for interface in body.get("interfaces", []) or []:
        if not isinstance(interface, dict):
            continue
        asset = interface.get("asset")
        if not isinstance(asset, str) or not asset or asset in assets:
            continue
        category = interface.get("category")
        package = project.display(folder.path)
        how = _ADDED_BY.get(str(category), "add the asset to the package's assets")
        what = "code asset" if category == "business_logic" else "model asset" if category == "ml_model" \
            else "asset"
        raise PackagingError(f"{project.display(folder.package_json)}: interface {interface.get('name')!r} "
                             f"runs {what} {asset!r}, which was never built or added; run "
                             f"{how.format(asset=asset, package=package)} first")


_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key from `panoflow control-plane "
                     "keys create` (run where the control plane's database is)")
#: how long to wait for a version to reach REGISTER_COMPLETED
REGISTER_TIMEOUT = 120.0


class ControlPlaneUploader:
    """The client of a panoflow control plane at ``url`` (see the module docstring); ``progress`` receives one
    line per file (stderr by default)."""

    def __init__(self, url: str, *, progress: Callable[[str], None] | None = None, timeout: float = 60.0):
        from botocore.config import Config

        from panoflow.controlplane.boto import session

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PackagingError(f"--control-plane {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        self.url = url.rstrip("/")
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.timeout = timeout
        sess = session()
        self.region = (
            os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or sess.region_name
            or "us-east-1"
        )
        creds = sess.get_credentials()
        if creds is None:
            raise PackagingError(f"no credentials for the control plane at {self.url}: {_CREDENTIALS_HINT}")
        self.credentials = creds.get_frozen_credentials()
        self.pano = sess.client("panorama", endpoint_url=self.url, region_name=self.region,
                                config=Config(retries={"max_attempts": 2}, connect_timeout=timeout,
                                              read_timeout=timeout))

    # -- errors ---------------------------------------------------------------------------------------------

    def _unreachable(self, reason: object) -> PackagingError:
        return PackagingError(f"cannot reach the control plane at {self.url} ({reason}); check the URL and "
                              "that `panoflow control-plane serve` runs there")

    def _api(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            return call(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = err.get("Message") or err.get("message") or str(exc)
            if status == 403 or err.get("Code") in ("AccessDeniedException", "UnrecognizedClientException"):
                raise PackagingError(f"the control plane at {self.url} refused the credentials ({message}): "
                                     f"{_CREDENTIALS_HINT}") from None
            raise PackagingError(
                f"{what} failed at {self.url}: {err.get('Code', status)}: {message}"
            ) from None
        except NoCredentialsError:
            raise PackagingError(f"no credentials for the control plane at {self.url}: {_CREDENTIALS_HINT}") \
                from None
        except EndpointConnectionError as exc:
            raise self._unreachable(exc) from None
        except BotoCoreError as exc:
            raise self._unreachable(exc) from None

    # -- signed asset requests ------------------------------------------------------------------------------

    def _request(self, method: str, key: str, body: BinaryIO | None = None, size: int = 0,
                 sha256: str | None = None) -> tuple[int, dict[str, str], bytes]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        path = "/_panoflow/assets/" + quote(key, safe="/")
        url = self.url + path
        headers: dict[str, str] = {}
        if sha256 is not None:
            headers["x-amz-content-sha256"] = sha256
        request = AWSRequest(method=method, url=url, headers=headers, data=b"")
        SigV4Auth(self.credentials, "panorama", self.region).add_auth(request)
        sent = dict(request.headers.items())
        if body is not None:
            sent["Content-Length"] = str(size)
            sent["Content-Type"] = "application/octet-stream"
        parts = urlsplit(self.url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":  # verified like boto3 does: AWS_CA_BUNDLE (`panoflow control-plane ca`)
            context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=self.timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout)
        try:
            conn.request(method, urlsplit(url).path, body=body, headers=sent)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, socket.timeout):
                raise PackagingError(f"the control plane at {self.url} did not answer within "
                                     f"{self.timeout:.0f} s ({method} {key})") from None
            raise self._unreachable(exc) from None
        finally:
            conn.close()

    def _check(self, status: int, body: bytes, what: str) -> None:
        if status < 300:
            return
        try:
            doc = json.loads(body or b"{}")
            message = doc.get("Message") or doc.get("message") or ""
            code = doc.get("Code") or status
        except ValueError:
            message, code = body[:200].decode("utf-8", "replace"), status
        if status == 403:
            raise PackagingError(f"the control plane at {self.url} refused the credentials ({message}): "
                                 f"{_CREDENTIALS_HINT}")
        raise PackagingError(f"{what} failed at {self.url}: {code}: {message}")

    def _put_file(self, key: str, path: Path, label: str) -> bool:
        """Upload ``path`` to ``key`` unless the control plane already holds those bytes; True when
        uploaded."""
        size = path.stat().st_size
        sha = file_sha256(path)
        status, headers, body = self._request("HEAD", key)
        if (
            status == 200
            and headers.get("content-length") == str(size)
            and headers.get("x-panoflow-sha256") == sha
        ):
            self.progress(f"  {label} ({size} bytes): skipped, already uploaded")
            return False
        if status not in (200, 404):
            self._check(status, body, f"checking {label}")
        with path.open("rb") as f:
            status, _headers, body = self._request("PUT", key, f, size, sha)
        self._check(status, body, f"uploading {label}")
        self.progress(f"  {label} ({size} bytes): uploaded")
        log.debug("asset_uploaded", key=key, size=size)
        return True

    # -- the Uploader protocol ------------------------------------------------------------------------------

    def upload(self, package: PackageUpload) -> None:
        """Create the package if needed, upload what the store lacks, register the version (marked latest)."""
        self.progress(f"{package.name} {package.version} (patch {package.patch_version[:12]}):")
        created = self._api("CreatePackage", self.pano.create_package, PackageName=package.name)
        location = created["StorageLocation"]
        package_id = created["PackageId"]
        for path in package.files:
            self._put_file(f"{location['BinaryPrefixLocation']}/{path.name}", path, f"assets/{path.name}")
        self._put_file(f"{location['ManifestPrefixLocation']}/{package.patch_version}.json",
                       package.folder.package_json, "package.json")
        self._api(f"registering {package.name} {package.version}", self.pano.register_package_version,
                  PackageId=package_id, PackageVersion=package.version, PatchVersion=package.patch_version,
                  MarkLatest=True)
        deadline = time.monotonic() + REGISTER_TIMEOUT
        while True:
            described = self._api("DescribePackageVersion", self.pano.describe_package_version,
                                  PackageId=package_id, PackageVersion=package.version,
                                  PatchVersion=package.patch_version)
            status = described.get("Status")
            if status == "REGISTER_COMPLETED":
                return
            if status == "FAILED" or (status or "").endswith("FAILED"):
                raise PackagingError(f"registering {package.name} {package.version} failed: "
                                     f"{described.get('StatusDescription') or status}")
            if time.monotonic() > deadline:
                raise PackagingError(f"{package.name} {package.version} is still {status} after "
                                     f"{REGISTER_TIMEOUT:.0f} s; check it later with DescribePackageVersion")
            time.sleep(1.0)


def uploader_for(control_plane: str) -> Uploader:
    """The client of the control plane at ``control_plane`` (a :class:`ControlPlaneUploader`)."""
    return ControlPlaneUploader(control_plane)


def package_application(project: Project, control_plane: str | None,
                        only: Sequence[PackageFolder] = ()) -> list[PackageUpload]:
    """Check every package, then upload and register each with the control plane at ``control_plane``."""
    plans = plan_upload(project, only)
    if not control_plane:
        raise PackagingError("package-application needs --control-plane URL (a panoflow control plane, "
                             "started with `panoflow control-plane serve`); --dry-run lists what would be "
                             "uploaded")
    uploader = uploader_for(control_plane)
    for plan in plans:
        uploader.upload(plan)
    return plans
