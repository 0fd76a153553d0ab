"""Code assets: the ``assets/<sha256>.tar.gz`` that ``build-container`` writes and ``panoflow run`` runs.

Format (``panoflow-code-asset/1``; see docs/packaging.md):

* a gzip-compressed tar of a root filesystem layout: ``panorama/...`` (and any other folder the Dockerfile
  copies to) exactly as the Dockerfile places the package's files;
* ``wheels/*.whl``: every distribution the Dockerfile's ``RUN pip install`` needs, dependencies included;
* ``requirements.txt``: those distributions pinned (``name==version``), for
  ``pip install --no-index --find-links wheels -r requirements.txt``;
* ``panoflow-asset.json``: how it was built (WORKDIR, ENV, target Python, wheel list, the Dockerfile steps
  left out).

An asset that ``docker export`` made (panorama-cli, or ``build-container --docker always``) is a whole image;
panoflow takes its ``panorama/`` (plus the files above when present) and ignores the rest.

:func:`prepare_code_asset` verifies an asset against the SHA-256 in its name and extracts what a run needs
once per digest (cut down with :func:`~panoflow.packaging.archive.filter_archive`, extracted by
:func:`panoflow.archives.safe_extract`); :func:`panoflow.packaging.pyenv.app_environment` then makes the code
node's own Python environment from its ``wheels``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from panoflow.archives import safe_extract
from panoflow.core.manifest.models import LoadedPackage
from panoflow.core.manifest.packages import file_sha256
from panoflow.exceptions import NodeError
from panoflow.packaging.archive import filter_archive
from panoflow.packaging.project import DONE_MARKER, publish_folder

__all__ = [
    "FORMAT",
    "METADATA",
    "REQUIREMENTS",
    "CodeAsset",
    "find_code_asset",
    "prepare_code_asset",
    "readable_by_all",
    "stale_sources",
]

log = structlog.get_logger(__name__)

FORMAT = "panoflow-code-asset/1"
METADATA = "panoflow-asset.json"
REQUIREMENTS = "requirements.txt"
WHEELS = "wheels"
_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")


def _needed(name: str) -> bool:
    top = name.split("/", 1)[0]
    return top in ("panorama", WHEELS) or name in (REQUIREMENTS, METADATA)


@dataclass(frozen=True)
class CodeAsset:
    """A prepared code asset: ``root`` holds ``panorama/`` as the container sees it."""

    archive: Path
    digest: str
    root: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> str:
        workdir = str(self.metadata.get("workdir") or "/")
        return workdir if workdir != "/" else "/panorama"

    @property
    def env(self) -> dict[str, str]:
        """The Dockerfile's ENV values."""
        return {str(k): str(v) for k, v in dict(self.metadata.get("env") or {}).items()}

    @property
    def wheels(self) -> list[Path]:
        """The wheels the Dockerfile's ``RUN pip install`` needs, dependencies included."""
        return sorted((self.root / WHEELS).glob("*.whl"))

    @property
    def python_version(self) -> str:
        """The Python its wheels were fetched for (``"3.8"``), or ``""`` when the asset does not say."""
        return str((self.metadata.get("python") or {}).get("version", ""))

    def host_path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")


def readable_by_all(folder: Path) -> None:
    """The sandboxed app runs as another uid: what it mounts must be readable (folders and executables also
    searchable) by all, whatever the umask or the archive said; nothing becomes writable."""
    for path in [folder, *(folder.rglob("*") if folder.is_dir() else ())]:
        try:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode & 0o7777
            extra = 0o055 if path.is_dir() or mode & 0o100 else 0o044
            if mode & extra != extra:
                path.chmod(mode | extra)
        except OSError:
            continue


def find_code_asset(package: LoadedPackage, asset_name: str) -> Path | None:
    """The built code asset (a container asset's archive in ``assets/``, verified by the manifest loader) of
    ``package``'s asset ``asset_name``, or None when there is none locally (then the source tree is used)."""
    asset = package.config.asset(asset_name)
    path = package.files.get(asset_name)
    if asset is None or path is None or not any(i.type == "container" for i in asset.implementations):
        return None
    return path if path.name.endswith((".tar.gz", ".tgz", ".tar")) else None


def stale_sources(package_dir: Path | None, archive: Path) -> list[str]:
    """Files of the package's source tree changed after ``archive`` was written (package.json aside)."""
    if package_dir is None or not package_dir.is_dir():
        return []
    try:
        built = archive.stat().st_mtime
    except OSError:
        return []
    newer = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".git")]
        for name in filenames:
            path = Path(dirpath, name)
            if name in ("package.json",) or name.endswith(".pyc"):
                continue
            try:
                if path.stat().st_mtime > built:
                    newer.append(path.relative_to(package_dir).as_posix())
            except OSError:
                continue
    return sorted(newer)


def _extract(archive: Path, cache_dir: Path, node_id: str) -> tuple[str, Path]:
    named = _SHA_NAME.match(archive.name)
    if named and (cache_dir / named.group(1) / DONE_MARKER).is_file():
        done = cache_dir / named.group(1)
        if not done.stat().st_mode & 0o001:  # extracted by an earlier panoflow, for its own uid only
            readable_by_all(done)
        return named.group(1), done / "root"
    try:
        digest = file_sha256(archive)
    except OSError as exc:
        raise NodeError(f"cannot read code asset {archive}: {exc.strerror or exc}", node_id=node_id) from None
    if named and named.group(1) != digest:
        raise NodeError(f"code asset {archive.name} does not match the SHA-256 in its name (it hashes to "
                        f"{digest}); run panoflow build-container again", node_id=node_id)
    final = cache_dir / digest
    if (final / DONE_MARKER).is_file():
        return digest, final / "root"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=cache_dir))
    try:
        filtered = tmp / "needed.tar"
        try:
            with open(filtered, "wb") as out:
                kept = filter_archive(archive, _needed, out)
            (tmp / "root").mkdir()
            safe_extract(filtered, tmp / "root")
        except (ValueError, tarfile.TarError, OSError) as exc:
            raise NodeError(f"code asset {archive.name}: {exc}", node_id=node_id) from None
        filtered.unlink()
        if not kept or not (tmp / "root" / "panorama").is_dir():
            raise NodeError(f"code asset {archive.name} has no panorama/ folder: it is not a Panorama code "
                            "asset (build it with panoflow build-container)", node_id=node_id)
        readable_by_all(tmp)
        publish_folder(tmp, final, archive.name)
        readable_by_all(final / DONE_MARKER)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("code_asset_extracted", node_id=node_id, digest=digest[:12], folder=str(final))
    return digest, final / "root"


def prepare_code_asset(archive: Path, cache_dir: Path, *, node_id: str = "",
                       package_dir: Path | None = None) -> CodeAsset:
    """Verify and extract ``archive`` under ``cache_dir/<digest>/`` (once). The folder belongs to one
    application: what earlier assets left there is removed. ``package_dir``: the package's source folder, to
    warn when it changed after the asset was built. Its Python environment comes from
    :func:`panoflow.packaging.pyenv.app_environment`. Raises :class:`NodeError`."""
    digest, root = _extract(archive, cache_dir, node_id)
    metadata: dict[str, Any] = {}
    meta_file = root / METADATA
    if meta_file.is_file():
        try:
            metadata = json.loads(meta_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise NodeError(f"code asset {archive.name}: {METADATA} is not valid JSON: {exc}",
                            node_id=node_id) \
                from None
        if not str(metadata.get("format", "")).startswith("panoflow-code-asset/"):
            raise NodeError(f"code asset {archive.name}: unknown format {metadata.get('format')!r}",
                            node_id=node_id)
    stale = stale_sources(package_dir, archive)
    if stale:
        log.warning("code_asset_older_than_source", node_id=node_id, asset=archive.name, changed=stale[:10],
                    hint="run panoflow build-container again to ship these changes")
    _prune(cache_dir, digest)
    asset = CodeAsset(archive, digest, root, metadata)
    log.info("code_asset_ready", node_id=node_id, asset=archive.name, wheels=len(asset.wheels))
    return asset


def _prune(folder: Path, keep: str) -> None:
    """Remove what earlier builds left in ``folder`` (one app, one code asset); unfinished work (``.*``)
    stays."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name != keep and not entry.name.startswith(".") and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
