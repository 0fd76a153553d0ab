"""A desired application instance (a sync answer's ``Instances[]`` entry) -> an application folder to deploy.

The folder is what ``panoflow deploy`` would upload::

    graphs/<name>/graph.json                          the ManifestPayload
    packages/<account>-<name>-<version>/package.json   each package's registered Manifest
    assets/<file>                                      each asset, downloaded and checked against its SHA-256

``panorama`` account packages are built into panoflow and are skipped. The folder lives where the daemon keeps
uploaded archives (``STATE_DIR/archives/<content id>``), named by a digest of everything in it, so redeploying
the same graph and packages reuses it; it is built in a temporary folder and appears with one rename. An asset
that another archive already holds (same name: the SHA-256) is linked from there after checking it, not
downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import structlog

from panoflow.cloud_client.client import CloudClient, ProtocolError, VerificationError
from panoflow.core.manifest.packages import file_sha256
from panoflow.exceptions import CloudError

__all__ = ["Assembled", "AssemblyError", "assemble", "content_id", "graph_folder_name", "parse_overrides"]

log = structlog.get_logger("panoflow.cloud")

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PLAIN_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AssemblyError(CloudError):
    """The instance cannot be assembled as given (its text is the deployment's failure reason). Not
    retried."""


@dataclass(frozen=True)
class Assembled:
    """An assembled application: its archive id (``STATE_DIR/archives/<archive>``) and graph path inside
    it."""

    archive: str
    graph: str


def graph_folder_name(desired: dict[str, Any]) -> str:
    """``graphs/<this>/graph.json``: the instance's name made safe for a folder name."""
    name = _SAFE.sub("_", str(desired.get("Name") or "")).strip("_")[:64]
    return name or "app"


def _packages(desired: dict[str, Any]) -> list[dict[str, Any]]:
    packages = desired.get("Packages") or []
    if not isinstance(packages, list):
        raise AssemblyError("the control plane sent Packages that is not a list")
    return [p for p in packages if isinstance(p, dict) and p.get("Account") != "panorama"]


def content_id(desired: dict[str, Any]) -> str:
    """A digest of the graph and of every package's manifest and assets: the same inputs, the same folder."""
    doc = {
        "graph": desired.get("ManifestPayload") or "",
        "folder": graph_folder_name(desired),
        "packages": sorted(
            ({"Account": p.get("Account"), "Name": p.get("Name"), "Version": p.get("Version"),
              "PatchVersion": p.get("PatchVersion"), "Manifest": p.get("Manifest"),
              "Assets": sorted(((a.get("FileName"), a.get("Sha256")) for a in p.get("Assets") or []
                                if isinstance(a, dict)), key=str)}
             for p in _packages(desired)), key=lambda p: json.dumps(p, sort_keys=True)),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def parse_overrides(desired: dict[str, Any]) -> dict[str, Any] | None:
    """The ManifestOverridesPayload as a document (``None`` when there is none)."""
    text = desired.get("ManifestOverridesPayload")
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AssemblyError(f"the instance's manifest overrides are not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AssemblyError("the instance's manifest overrides are not a JSON object")
    return doc


def _reuse(archives: Path, file_name: str, sha256: str, dest: Path) -> bool:
    """Link (or copy) ``file_name`` from another archive that holds it with the right content."""
    for other in archives.glob(f"*/assets/{file_name}"):
        try:
            if file_sha256(other) != sha256.lower():
                continue
            try:
                os.link(other, dest)
            except OSError:
                shutil.copyfile(other, dest)
            return True
        except OSError:
            continue
    return False


def _check_package(pkg: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    account, name, version = (str(pkg.get(k) or "") for k in ("Account", "Name", "Version"))
    label = f"{account}::{name} {version}"
    if not all(_PART.match(x) for x in (account, name, version)):
        raise AssemblyError(f"package {label!r}: account, name or version is not a plain name")
    if pkg.get("Manifest") is None:
        raise AssemblyError(f"package {label} has no registered manifest (package.json) on the control "
                            "plane; register the package version with its package.json (panoflow project "
                            "package-application), then deploy again")
    assets = pkg.get("Assets") or []
    for asset in assets:
        if not isinstance(asset, dict) or not _PLAIN_FILE.match(str(asset.get("FileName") or "")) \
                or not _HEX64.match(str(asset.get("Sha256") or "")) or not asset.get("Key"):
            raise AssemblyError(f"package {label}: an asset entry lacks a plain FileName, a Sha256 or a Key: "
                                f"{json.dumps(asset)[:200]}")
    return f"{account}-{name}-{version}", assets


async def assemble(client: CloudClient, archives: Path, desired: dict[str, Any]) -> Assembled:
    """Build (or reuse) the application folder of ``desired`` under ``archives``.

    Raises :class:`AssemblyError` (a permanent failure: a missing manifest, a bad entry, an asset that does
    not match its SHA-256) or :class:`~panoflow.cloud_client.client.Offline` (try again later)."""
    cid = content_id(desired)
    graph = f"graphs/{graph_folder_name(desired)}/graph.json"
    final = archives / cid
    if final.is_dir():
        return Assembled(cid, graph)
    payload = desired.get("ManifestPayload")
    if not isinstance(payload, str) or not payload.strip():
        raise AssemblyError("the instance has no ManifestPayload (graph.json)")
    plan = [(pkg, *_check_package(pkg)) for pkg in _packages(desired)]
    archives.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".cloud-{cid[:12]}-", dir=archives))
    try:
        (tmp / "graphs" / graph_folder_name(desired)).mkdir(parents=True)
        (tmp / graph).write_text(payload, encoding="utf-8")
        (tmp / "assets").mkdir()
        for pkg, folder, assets in plan:
            (tmp / "packages" / folder).mkdir(parents=True)
            (tmp / "packages" / folder / "package.json").write_text(json.dumps(pkg["Manifest"], indent=2))
            for asset in assets:
                dest = tmp / "assets" / asset["FileName"]
                if dest.exists():
                    continue
                if await anyio.to_thread.run_sync(_reuse, archives, asset["FileName"], asset["Sha256"], dest):
                    continue
                log.info("asset_downloading", key=asset["Key"], size=asset.get("Size"))
                try:
                    await client.download(
                        asset["Key"], dest, sha256=asset["Sha256"],
                        size=asset.get("Size") if isinstance(asset.get("Size"), int) else None)
                except VerificationError as exc:
                    raise AssemblyError(str(exc)) from None
                except ProtocolError as exc:  # 404: the asset was never uploaded
                    raise AssemblyError(f"{exc}; upload the package's assets again (panoflow project "
                                        "package-application)") from None
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # assembled meanwhile by someone else: theirs is complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("application_assembled", archive=cid, packages=len(plan))
    return Assembled(cid, graph)
