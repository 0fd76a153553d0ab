"""``build-container``: a code package's container asset, without Docker.

panoflow reads the package's Dockerfile (:mod:`panoflow.core.dockerfile`), lays its files out as
``COPY``/``ADD``/ ``WORKDIR`` place them (:func:`panoflow.codefs.stage_code`, the same staging ``panoflow
run`` uses for source trees, plus unpacking of local archives that ``ADD`` names), fetches the wheels its
``RUN pip install`` lines need (:mod:`.wheels`) and writes one deterministic archive (:mod:`.archive`, format
in :mod:`.codeasset`) to ``assets/<sha256>.tar.gz``, with the runtime descriptor as ``assets/<sha256>.json``;
then records both in package.json. A Dockerfile that needs more (other ``RUN`` commands, other base images,
multi-stage builds) is built with Docker when an engine answers (:mod:`.docker`); otherwise panoflow says
which steps it left out.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from panoflow import __version__
from panoflow.archives import safe_extract
from panoflow.codefs import stage_code
from panoflow.core.dockerfile import DockerfilePlan, parse_dockerfile
from panoflow.core.manifest import RuntimeDescriptor, parse_descriptor
from panoflow.exceptions import NodeError
from panoflow.packaging.archive import TreeArchive, member_name
from panoflow.packaging.codeasset import FORMAT, METADATA, REQUIREMENTS, WHEELS
from panoflow.packaging.docker import docker_engine, docker_export, steps_needing_docker
from panoflow.packaging.interpreters import requested_version
from panoflow.packaging.manifests import checked_package, set_asset
from panoflow.packaging.project import PackageFolder, PackagingError, Project, check_name, write_bytes_atomic
from panoflow.packaging.wheels import PipOptions, PipRequest, Wheel, collect_wheels, pip_requests

__all__ = ["BuildOptions", "BuildResult", "build_container"]

Progress = Callable[[str], None]
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$")


@dataclass(frozen=True)
class BuildOptions:
    pip: PipOptions = field(default_factory=PipOptions)
    docker: str = "auto"  # auto: only when the Dockerfile needs it and an engine answers; never; always
    pull: bool = True  # docker build --pull (panorama-cli's --local-image turns it off)
    descriptor: Path | None = None  # default: the package's descriptor.json


@dataclass
class BuildResult:
    asset_name: str
    asset_uri: str
    descriptor_uri: str
    size: int
    files: int
    wheels: list[str]
    builder: str  # "panoflow" or "docker"
    left_out: list[str]
    interface: str
    new_interface: str = ""
    removed: list[str] = field(default_factory=list)


def _descriptor(project: Project, folder: PackageFolder,
                given: Path | None) -> tuple[bytes, RuntimeDescriptor]:
    path = given if given is not None else folder.path / "descriptor.json"
    if not path.is_file():
        raise PackagingError(f"{project.display(path)} not found: a code package needs its runtime "
                             "descriptor (panoflow create-package --type Container writes one; or pass "
                             "--descriptor-path)")
    data = path.read_bytes()
    parsed = parse_descriptor(data, project.display(path))
    desc = parsed.unwrap()
    if not isinstance(desc, RuntimeDescriptor):
        raise PackagingError(f"{project.display(path)} is a model descriptor; a code package needs a "
                             "runtimeDescriptor (entry path and name)")
    if not desc.entry_name or "<" in desc.entry_name:
        raise PackagingError(f"{project.display(path)}: set entry.name to the script to run, e.g. "
                             "/panorama/app.py")
    return data, desc


def _dockerfile(folder: PackageFolder, progress: Progress) -> tuple[str, DockerfilePlan]:
    path = folder.path / "Dockerfile"
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        source = "src" if (folder.path / "src").is_dir() else "."
        text = f"COPY {source} /panorama\n"
        progress(f"no Dockerfile in {folder.path.name}: building as if it said COPY {source} /panorama")
    return text, parse_dockerfile(text)


def _add_lines(text: str) -> set[int]:
    lines, buf = set(), False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and line.upper().startswith("ADD "):
            lines.add(number)
        buf = line.endswith("\\") if (buf or line) else buf
    return lines


def _unpack_added_archives(text: str, plan: DockerfilePlan, package: Path, root: Path) -> None:
    """``ADD local.tar.gz /dest/`` unpacks the archive (Docker does); stage_code copied it as a file."""
    adds = _add_lines(text)
    for copy in plan.copies:
        if copy.line not in adds:
            continue
        for source in copy.sources:
            if not _ARCHIVE.search(source) or any(c in source for c in "*?["):
                continue
            dest = root / copy.dest.lstrip("/")
            staged = dest / Path(source).name if dest.is_dir() else dest
            if staged.is_file():
                staged.unlink()
            target = staged.parent if staged.parent == dest else dest
            target.mkdir(parents=True, exist_ok=True)
            try:
                safe_extract(package / source, target)
            except (ValueError, tarfile.TarError, OSError) as exc:
                raise PackagingError(f"Dockerfile line {copy.line}: ADD {source}: {exc}") from None


def _drop_package_json(root: Path, manifest: bytes) -> None:
    """``COPY . .`` also copies package.json, which build-container rewrites right after: leaving it out keeps
    the digest stable from one build to the next (no Panorama app reads its own package.json)."""
    for path in root.rglob("package.json"):
        if path.is_file() and path.read_bytes() == manifest:
            path.unlink()


def _requirements_txt(wheels: list[Wheel]) -> bytes:
    lines = ["# Written by panoflow build-container: what the Dockerfile's RUN pip install needs, pinned.",
             "# Offline install: pip install --no-index --find-links wheels -r requirements.txt"]
    lines += sorted(f"{w.name}=={w.version}" for w in wheels)
    return ("\n".join(lines) + "\n").encode()


def _metadata(plan: DockerfilePlan, builder: str, wheels: list[Wheel], request: PipRequest,
              options: BuildOptions, left_out: list[str]) -> bytes:
    python = options.pip.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    doc: dict[str, Any] = {
        "format": FORMAT,
        "builder": builder,
        "panoflow_version": __version__,
        "base_image": plan.base_image,
        "workdir": plan.workdir,
        "env": dict(sorted(plan.env.items())),
        "python": {"version": python, "implementation": sys.implementation.name,
                   "platforms": list(options.pip.platforms) or [sysconfig.get_platform()]},
        "requested": request.requested,
        "requirements": REQUIREMENTS if wheels else None,
        "wheels": [f"{WHEELS}/{w.path.name}" for w in wheels],
        "left_out": left_out,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def _check_entry(entry: str, present: Callable[[str], bool], desc_file: str) -> None:
    if not present(member_name(entry)):
        raise PackagingError(f"{desc_file} runs {entry}, which the Dockerfile does not put in the image; fix "
                             "entry.name or the COPY lines (COPY src /panorama puts src/app.py at "
                             "/panorama/app.py)")


def _use_docker(mode: str, steps: list[str], progress: Progress) -> bool:
    if mode not in ("auto", "never", "always"):
        raise PackagingError(f"--docker {mode!r}: choose auto, never or always")
    engine = docker_engine() if mode == "always" or (mode == "auto" and steps) else ""
    if mode == "always":
        if not engine:
            raise PackagingError("--docker always: no Docker engine answers here (docker version failed); "
                                 "use --docker auto to build without it")
        progress(f"building with Docker (engine {engine})")
        return True
    if steps and engine:
        progress("the Dockerfile needs more than panoflow builds alone; building with Docker (engine "
                 f"{engine}):")
        for step in steps:
            progress(f"  {step}")
        return True
    if steps:
        why = "no Docker engine answers here" if mode == "auto" else "--docker never"
        progress(f"warning: building without Docker ({why}); these Dockerfile steps are left out of the "
                 "asset:")
        for step in steps:
            progress(f"  {step}")
        progress("  (Python packages belong in RUN pip install lines, which panoflow ships as wheels)")
    return False


def _wheels(plan: DockerfilePlan, root: Path, options: BuildOptions, tmp: Path,
            progress: Progress) -> tuple[PipRequest, list[Wheel]]:
    request = pip_requests(plan.pip_installs, root, plan.workdir)
    if not request:
        return request, []
    cwd = root / plan.workdir.lstrip("/")
    if not cwd.is_dir():
        cwd = root
    wheels = collect_wheels(request, tmp / WHEELS, options.pip, cwd=cwd, progress=progress)
    progress(f"{len(wheels)} wheel(s): " + ", ".join(f"{w.name} {w.version}" for w in wheels))
    return request, wheels


def _write_docker_asset(out: BinaryIO, rootfs: Path, extras: TreeArchive, names: set[str]) -> None:
    """The exported image, members as Docker wrote them (owners and modes matter on the appliance), then the
    wheels, requirements.txt and metadata."""
    buf = io.BytesIO()
    extras.write(buf)
    buf.seek(0)
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0, compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
        with tarfile.open(rootfs, "r|") as src:
            for member in src:
                names.add(member_name(member.name))
                dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        with tarfile.open(fileobj=buf, mode="r:gz") as more:
            for member in more:
                if member_name(member.name) in names and member.isdir():
                    continue
                dst.addfile(member, more.extractfile(member) if member.isreg() else None)


def build_container(project: Project, folder: PackageFolder, asset_name: str, options: BuildOptions,
                    progress: Progress) -> BuildResult:
    """Build the container asset ``asset_name`` of the package in ``folder`` and record it in its
    package.json."""
    check_name("asset", asset_name, "--container-asset-name")
    before = project.read_json(folder.package_json)
    desc_bytes, desc = _descriptor(project, folder, options.descriptor)
    desc_file = project.display(options.descriptor or folder.path / "descriptor.json")
    wanted = requested_version(desc.entry_path)
    if (
        options.pip.python_version is None
        and wanted
        and wanted != f"{sys.version_info[0]}.{sys.version_info[1]}"
    ):
        progress(f"fetching wheels for Python {wanted}, which {desc_file} runs (entry.path "
                 f"{desc.entry_path}); --python-version chooses another")
        options = replace(options, pip=replace(options.pip, python_version=wanted))
    text, plan = _dockerfile(folder, progress)
    steps = steps_needing_docker(text, plan)
    docker = _use_docker(options.docker, steps, progress)
    with tempfile.TemporaryDirectory(prefix="panoflow-build-") as tmpdir:
        tmp = Path(tmpdir)
        root = tmp / "root"
        progress(f"staging {folder.path.name} as its Dockerfile lays it out")
        try:
            stage_code(folder.path, root)
            _unpack_added_archives(text, plan, folder.path, root)
            _drop_package_json(root, folder.package_json.read_bytes())
        except (NodeError, PackagingError) as exc:
            if not docker:
                raise
            progress(f"note: {exc}; requirement files are looked up in the package folder instead")
            root = folder.path
        request, wheels = _wheels(plan, root, options, tmp, progress)
        additions = TreeArchive()  # what panoflow adds to the image
        for wheel in wheels:
            additions.add_file(f"{WHEELS}/{wheel.path.name}", wheel.path)
        if wheels:
            additions.add_bytes(REQUIREMENTS, _requirements_txt(wheels))
        additions.add_bytes(METADATA, _metadata(plan, "docker" if docker else "panoflow", wheels, request,
                                                options, [] if docker else steps))
        if docker:
            rootfs = tmp / "rootfs.tar"
            docker_export(folder.path, f"panoflow-build-{asset_name.lower()}", rootfs, pull=options.pull,
                          progress=progress)
            names: set[str] = set()
            asset_uri, size = project.write_asset(
                lambda out: _write_docker_asset(out, rootfs, additions, names), ".tar.gz")
            try:
                _check_entry(desc.entry_name, names.__contains__, desc_file)
            except PackagingError:
                project.remove_unreferenced([asset_uri])
                raise
            files = len(names)
        else:
            _check_entry(desc.entry_name, lambda n: (root / n).is_file(), desc_file)
            if (root / WHEELS).exists():
                raise PackagingError("the Dockerfile puts something at /wheels, where the code asset keeps "
                                     "its wheels")
            for name in (REQUIREMENTS, METADATA):
                if (root / name).exists():
                    progress(f"note: the image's /{name} is replaced by panoflow's")
                    (root / name).unlink()
            archive = TreeArchive()
            archive.add_tree("", root)
            files = len(archive)
            archive.merge(additions)
            asset_uri, size = project.write_asset(archive.write, ".tar.gz")
    descriptor_uri = project.add_asset_bytes(desc_bytes, ".json")
    after = json.loads(json.dumps(before))
    change = set_asset(after, asset_name, {"type": "container", "assetUri": asset_uri,
                                           "descriptorUri": descriptor_uri},
                       "business_logic")
    data = checked_package(before, after, project.display(folder.package_json))
    write_bytes_atomic(folder.package_json, data)
    removed = project.remove_unreferenced(change.superseded)
    return BuildResult(asset_name, asset_uri, descriptor_uri, size, files, [w.path.name for w in wheels],
                       "docker" if docker else "panoflow", [] if docker else steps, change.interface,
                       change.new_interface, removed)
