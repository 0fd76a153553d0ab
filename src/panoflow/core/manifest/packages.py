"""Finding a package on disk: ``packages/<account>-<NAME>-<version>/``, its descriptors and its asset files.

Where a descriptor comes from, for each asset that needs one (model and container assets, and the asset an
``ml_model``/``business_logic`` interface names even when ``assets`` is still empty, as in a package before
``panorama-cli build-container``/``add-raw-model`` fills it in):

1. ``assets/<descriptorUri>`` when the implementation names one and that file exists;
2. else, in the package folder, the ``descriptor_<words>.json`` whose ``_``-separated words all appear in the
   asset's name, the one with most words winning (pose_estimation keeps ``descriptor_people_detection.json``
   for asset ``people_detection_model`` and ``descriptor_pose_estimation_4.json`` for
   ``pose_estimation_model_4``);
3. else ``descriptor.json`` in the package folder;
4. else none: the descriptor is absent locally (fine for validation; running needs it).

Asset files are looked up in ``assets/`` by their ``assetUri``; a file named ``<sha256>.<ext>`` must hash to
that name. Files that are not there are simply absent: samples do not ship model archives.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from panoflow.core.manifest.jsonio import display_path, read_manifest_bytes
from panoflow.core.manifest.models import (
    Descriptor,
    Interface,
    LoadedPackage,
    ModelDescriptor,
    PackageConfig,
    PackageRef,
    Port,
)
from panoflow.core.manifest.parse import parse_descriptor, parse_package
from panoflow.core.manifest.semantic import check_package
from panoflow.exceptions import ManifestError, Problem

__all__ = ["PackageLoad", "file_sha256", "load_package"]

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")
_KIND_KEY = {"model": "mlModelDescriptor", "runtime": "runtimeDescriptor"}


@dataclass
class PackageLoad:
    """What loading one package found: the package (``None`` when its folder is missing or its package.json is
    unusable), the problems (in package.json, descriptors, asset files) and whether the folder exists."""

    package: LoadedPackage | None
    problems: list[Problem] = field(default_factory=list)
    folder_exists: bool = False


def _plain_name(uri: str) -> bool:
    """A bare file name that cannot leave ``assets/``."""
    return uri not in ("", ".", "..") and not any(c in uri for c in "/\\\x00")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def file_sha256(path: Path | str) -> str:
    """The SHA-256 (hex) of a file's bytes: what names a Panorama asset (``assets/<sha256>.tar.gz``). The one
    copy of this helper: the model store, the compiler, packaging and the device's assembly all verify or name
    assets with it. Raises OSError when the file cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _sha256(path: str, _size: int, _mtime_ns: int) -> str:
    return file_sha256(path)


def _check_hash(path: Path, file: str) -> list[Problem]:
    match = _SHA_NAME.match(path.name)
    if not match:
        return []
    try:
        stat = path.stat()
        actual = _sha256(str(path), stat.st_size, stat.st_mtime_ns)
    except OSError as exc:
        return [Problem(file, "", f"cannot read the asset file: {exc.strerror or exc}",
                        "check its permissions")]
    if actual != match.group(1):
        return [Problem(file, "", f"content does not match the SHA-256 in its name (it hashes to {actual})",
                        "re-add the asset (panorama-cli names assets after their SHA-256) or restore the "
                        "file")]
    return []


def _needed_descriptors(config: PackageConfig) -> dict[str, str]:
    """asset name -> the descriptor kind it needs (``model`` or ``runtime``)."""
    needed: dict[str, str] = {}
    defined = {asset.name for asset in config.assets}
    for asset in config.assets:
        types = {i.type for i in asset.implementations}
        if "model" in types:
            needed[asset.name] = "model"
        elif "container" in types:
            needed[asset.name] = "runtime"
    for iface in config.interfaces:
        if iface.asset and iface.asset not in defined:
            kind = {"ml_model": "model", "business_logic": "runtime"}.get(iface.category)
            if kind:
                needed.setdefault(iface.asset, kind)
    return needed


def _folder_descriptor(folder: Path, asset: str, listing: Sequence[str]) -> Path | None:
    words = set(asset.split("_"))
    best: tuple[int, str] | None = None
    for name in listing:
        if not (name.startswith("descriptor_") and name.endswith(".json")):
            continue
        stem_words = name[len("descriptor_"):-len(".json")].split("_")
        if stem_words and set(stem_words) <= words and (best is None or len(stem_words) > best[0]):
            best = (len(stem_words), name)
    if best is not None:
        return folder / best[1]
    return folder / "descriptor.json" if "descriptor.json" in listing else None


def _descriptor_file(app_dir: Path, folder: Path, config: PackageConfig, asset: str,
                     listing: Sequence[str]) -> Path | None:
    found = config.asset(asset)
    for impl in found.implementations if found else ():
        if _plain_name(impl.descriptor_uri) and _is_file(app_dir / "assets" / impl.descriptor_uri):
            return app_dir / "assets" / impl.descriptor_uri
    return _folder_descriptor(folder, asset, listing)


def _load_descriptors(app_dir: Path, folder: Path, config: PackageConfig,
                      problems: list[Problem]) -> dict[str, Descriptor]:
    try:
        listing = sorted(os.listdir(folder))
    except OSError:
        listing = []
    descriptors: dict[str, Descriptor] = {}
    for asset, kind in _needed_descriptors(config).items():
        path = _descriptor_file(app_dir, folder, config, asset, listing)
        if path is None:
            continue
        file = display_path(path, app_dir)
        if path.parent.name == "assets":
            problems.extend(_check_hash(path, file))
        try:
            parsed = parse_descriptor(read_manifest_bytes(path, file), file)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(parsed.problems)
        if parsed.model is None:
            continue
        got = "model" if isinstance(parsed.model, ModelDescriptor) else "runtime"
        if got != kind:
            problems.append(Problem(
                file, "", f"asset {asset!r} needs a {_KIND_KEY[kind]}, this is a {_KIND_KEY[got]}",
                "model assets are described by mlModelDescriptor, code (container) assets by "
                "runtimeDescriptor"))
            continue
        descriptors[asset] = parsed.model
    return descriptors


def _load_files(app_dir: Path, config: PackageConfig, problems: list[Problem]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for asset in config.assets:
        for impl in asset.implementations:
            if impl.type == "system" or not _plain_name(impl.asset_uri):
                continue
            path = app_dir / "assets" / impl.asset_uri
            if not _is_file(path):
                continue
            hash_problems = _check_hash(path, display_path(path, app_dir))
            problems.extend(hash_problems)
            if not hash_problems:
                files.setdefault(asset.name, path)
    return files


def _assumed_model_package(ref: PackageRef, interfaces: Sequence[str]) -> PackageConfig:
    """The package.json panorama-cli users write for a model package, for samples that leave it out."""
    return PackageConfig(
        envelope_version="2021-01-01",
        name=ref.name,
        version=ref.version,
        assets=(),
        interfaces=tuple(
            Interface(name, "ml_model", "model_asset", (Port("video_in", "media"),),
                      (Port("video_out", "media"),))
            for name in (interfaces or ("interface",))
        ),
    )


def _read_config(app_dir: Path, folder: Path, ref: PackageRef, interfaces: Sequence[str],
                 problems: list[Problem]) -> PackageConfig | None:
    path = folder / "package.json"
    file = display_path(path, app_dir)
    if not _is_file(path) and _is_file(folder / "descriptor.json"):
        desc = parse_descriptor(_read_or_empty(folder / "descriptor.json"), "")
        if isinstance(desc.model, ModelDescriptor):
            config = _assumed_model_package(ref, interfaces)
            names = ", ".join(repr(i.name) for i in config.interfaces)
            problems.append(Problem(
                file, "", "package.json is missing; assuming a model package described by "
                f"descriptor.json (interface {names}: ml_model, video_in -> video_out)",
                "add the package.json (some published samples leave it out and generate it in their "
                "notebook)", "warning"))
            return config
    try:
        parsed = parse_package(read_manifest_bytes(path, file), file)
    except ManifestError as exc:
        problems.extend(exc.problems)
        return None
    problems.extend(parsed.problems)
    if parsed.model is None:
        return None
    problems.extend(check_package(parsed.model, file))
    for key, want, got in (("name", ref.name, parsed.model.name),
                           ("version", ref.version, parsed.model.version)):
        if got and got != want:
            problems.append(Problem(file, f"/nodePackage/{key}", f"{key} {got!r} does not match the folder "
                                    "and the graph, which say "
                                    f"{want!r}", f"make the {key} {want!r} everywhere"))
    return parsed.model


def _read_or_empty(path: Path) -> bytes:
    """The file's bytes, or ``b""`` (which never parses) when it cannot be read."""
    try:
        return read_manifest_bytes(path, "")
    except ManifestError:
        return b""


def load_package(app_dir: Path, ref: PackageRef, interfaces: Sequence[str] = ()) -> PackageLoad:
    """Load ``packages/<ref.folder_name>/`` under ``app_dir``. ``interfaces`` are the interface names the
    graph uses from it (used only when a model package's package.json must be assumed)."""
    folder = app_dir / "packages" / ref.folder_name
    try:
        exists = folder.is_dir()
    except (OSError, ValueError):
        exists = False
    if not exists:
        return PackageLoad(None)
    problems: list[Problem] = []
    config = _read_config(app_dir, folder, ref, interfaces, problems)
    if config is None:
        return PackageLoad(None, problems, True)
    descriptors = _load_descriptors(app_dir, folder, config, problems)
    files = _load_files(app_dir, config, problems)
    package = LoadedPackage(ref, folder, config, MappingProxyType(descriptors), MappingProxyType(files))
    return PackageLoad(package, problems, True)
