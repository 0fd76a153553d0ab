"""``package-application``: upload a project's packages and register their versions with a control plane.

This is the seam for panoflow's Panorama-compatible control plane, which lands later. What exists now:
:func:`plan_upload` works out, per package, what panorama-cli uploads (every non-system asset file and descriptor
in ``assets/``, checked against the SHA-256 in its name, and package.json, whose SHA-256 is the patch version) and
:func:`package_application` refuses with a clear message. The control-plane client will implement
:class:`Uploader` and be returned by :func:`uploader_for`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from panoflow.packaging.project import PackageFolder, PackagingError, Project

__all__ = ["PackageUpload", "Uploader", "package_application", "plan_upload", "uploader_for"]

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")


@dataclass(frozen=True)
class PackageUpload:
    """One ``RegisterPackageVersion``: package ``name`` at ``version``, patch version = SHA-256 of package.json."""

    folder: PackageFolder
    name: str
    version: str
    patch_version: str
    files: tuple[Path, ...] = field(default_factory=tuple)  # assets/ files to upload (binaries and descriptors)


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
                        raise PackagingError(f"{project.display(folder.package_json)}: asset {asset.get('name')!r} "
                                             f"names assets/{uri}, which is not there; build or add it first")
                    named = _SHA_NAME.match(uri)
                    if named and hashlib.sha256(path.read_bytes()).hexdigest() != named.group(1):
                        raise PackagingError(f"assets/{uri} does not match the SHA-256 in its name; rebuild it")
                    files.append(path)
        plans.append(PackageUpload(folder, str(body.get("name") or folder.name),
                                   str(body.get("version") or folder.version), hashlib.sha256(data).hexdigest(),
                                   tuple(dict.fromkeys(files))))
    return plans


def uploader_for(control_plane: str) -> Uploader | None:
    """The client of the control plane at ``control_plane`` (None until panoflow's control plane lands)."""
    return None


def package_application(project: Project, control_plane: str | None,
                        only: Sequence[PackageFolder] = ()) -> list[PackageUpload]:
    plans = plan_upload(project, only)
    if not control_plane:
        raise PackagingError("package-application needs --control-plane URL (a Panorama-compatible control plane); "
                             "panoflow's control plane lands later. Meanwhile run the application with panoflow run "
                             "or deploy it to a device with panoflow deploy; --dry-run lists what would be uploaded")
    uploader = uploader_for(control_plane)
    if uploader is None:
        raise PackagingError(f"uploading to {control_plane} needs panoflow's control-plane client, which lands with "
                             "the control plane; --dry-run lists what would be uploaded")
    for plan in plans:
        uploader.upload(plan)
    return plans
