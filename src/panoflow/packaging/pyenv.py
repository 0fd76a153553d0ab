"""Per-package Python environments: a code asset's wheels, installed offline, never into panoflow's own environment.

panoflow runs Panorama code in its own process (in a thread), so "the container's Python packages" become a
virtual environment per code asset (cached under the given folder, keyed by the asset's digest, this interpreter
and a fingerprint of panoflow's installed distributions) whose ``site-packages`` goes in front of ``sys.path``.

One process has one copy of each module, so a requirement that panoflow's environment already provides (a
distribution of the same name, e.g. ``numpy``, or any top-level module it can already import, including the
standard library) is **not installed**: panoflow's copy serves the app, and a warning names both versions when
they differ. Everything else is installed with ``pip install --no-index --no-deps --target`` from the asset's
``wheels/`` (pip's configuration files are ignored), so nothing is downloaded and panoflow's environment is never
written to.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import venv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from panoflow.exceptions import NodeError
from panoflow.packaging.wheels import parse_wheel_name
from panoflow.packaging.project import DONE_MARKER, publish_folder

__all__ = ["PackageEnv", "Served", "ensure_env", "environment_fingerprint"]

log = structlog.get_logger(__name__)

_RECORD = "panoflow-env.json"


@dataclass(frozen=True)
class Served:
    """A requirement that panoflow's environment provides instead of the package environment."""

    name: str
    version: str  # the version the asset's wheel has
    provided_by: str  # "numpy 2.1.0", or "the standard library"

    @property
    def differs(self) -> bool:
        return self.provided_by != f"{self.name} {self.version}"


@dataclass(frozen=True)
class PackageEnv:
    path: Path
    site_packages: Path
    installed: tuple[str, ...]  # name==version
    served: tuple[Served, ...]

    def activate(self) -> None:
        """Put the environment's ``site-packages`` (and what its ``.pth`` files add) in front of ``sys.path``."""
        entry = str(self.site_packages)
        if entry in sys.path:
            return
        before = list(sys.path)
        site.addsitedir(entry)
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + [p for p in sys.path if p not in added]
        importlib.invalidate_caches()


def _own_paths(exclude: Path | None = None) -> list[str]:
    """panoflow's import path: ``sys.path`` without the working directory and package environments."""
    skip = str(exclude.resolve()) + os.sep if exclude is not None else None
    cwd = os.getcwd()
    return [p for p in sys.path if p and p != cwd and not (skip and (os.path.abspath(p) + os.sep).startswith(skip))]


def environment_fingerprint(exclude: Path | None = None) -> str:
    """Changes when panoflow's interpreter or installed distributions change (``exclude``: the folder of package
    environments, which do not count)."""
    dists = sorted({f"{d.metadata['Name']}=={d.version}".lower()
                    for d in importlib.metadata.distributions(path=_own_paths(exclude)) if d.metadata["Name"]})
    text = "\n".join([sys.version, sysconfig.get_platform(), *dists])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _top_level(wheel: Path) -> set[str]:
    """The top-level import names a wheel installs."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            parts = member.split("/")
            if parts[0].endswith(".dist-info"):
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            top = parts[0]
            if len(parts) == 1:  # a module file: name.py, name.cpython-311-x86_64-linux-gnu.so, name.pth
                if top.endswith(".pth") or "." not in top:
                    continue
                top = top.split(".", 1)[0]
            if top.isidentifier():
                names.add(top)
    return names


def _owner(module: str, paths: list[str]) -> str:
    for dist in importlib.metadata.distributions(path=paths):
        top = (dist.read_text("top_level.txt") or "").split()
        files = dist.files or []
        if module in top or any(f.parts and f.parts[0] in (module, f"{module}.py") for f in files):
            return f"{dist.metadata['Name']} {dist.version}"
    return ""


def _provider(name: str, modules: set[str], paths: list[str]) -> str:
    """What in panoflow's environment (``paths``) already provides distribution ``name`` or one of ``modules``."""
    dist = next(iter(importlib.metadata.distributions(name=name, path=paths)), None)
    if dist is not None:
        return f"{name} {dist.version}"
    for module in sorted(modules):
        if module in sys.builtin_module_names or module in sys.stdlib_module_names:
            return "the standard library"
        if importlib.machinery.PathFinder.find_spec(module, paths) is not None:
            owner = _owner(module, paths)
            return f"{owner} (module {module})" if owner else f"module {module} on panoflow's path"
    return ""


def _site_packages(env: Path) -> Path:
    paths = {"base": str(env), "platbase": str(env), "installed_base": str(env), "installed_platbase": str(env)}
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else sysconfig.get_default_scheme()
    return Path(sysconfig.get_path("purelib", scheme, paths))


def _load(final: Path) -> PackageEnv | None:
    try:
        record = json.loads((final / _RECORD).read_text())
        return PackageEnv(final, final / record["site_packages"], tuple(record["installed"]),
                          tuple(Served(**s) for s in record["served"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_env(wheels: Sequence[Path], envs_dir: Path, digest: str, *, node_id: str = "") -> PackageEnv:
    """The environment of the code asset ``digest`` with ``wheels`` installed, created once and cached."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}")
    final = envs_dir / f"{digest[:16]}-{tag}-{environment_fingerprint(envs_dir)}"
    if (final / DONE_MARKER).is_file():
        cached = _load(final)
        if cached is not None:
            log.debug("package_env_cached", node_id=node_id, env=str(final))
            return cached
    install, served = [], []
    paths = _own_paths(envs_dir)
    for wheel in sorted(wheels):
        parsed = parse_wheel_name(wheel.name)
        if parsed is None:
            raise NodeError(f"code asset: {wheel.name} is not a wheel file name", node_id=node_id)
        provider = _provider(parsed[0], _top_level(wheel), paths)
        if provider:
            served.append(Served(parsed[0], parsed[1], provider))
        else:
            install.append((wheel, parsed))
    envs_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=envs_dir))
    try:
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt", clear=True).create(tmp)
        site_dir = _site_packages(tmp)
        site_dir.mkdir(parents=True, exist_ok=True)
        if install:
            _pip_install([w for w, _ in install], site_dir, node_id)
        record = {"site_packages": site_dir.relative_to(tmp).as_posix(),
                  "installed": [f"{n}=={v}" for _, (n, v) in install],
                  "served": [s.__dict__ for s in served]}
        (tmp / _RECORD).write_text(json.dumps(record, indent=2))
        publish_folder(tmp, final, digest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env = _load(final)
    if env is None:
        raise NodeError(f"package environment {final} is unreadable", node_id=node_id)
    log.info("package_env_created", node_id=node_id, env=str(final), installed=list(env.installed))
    return env


def _pip_install(wheels: Sequence[Path], target: Path, node_id: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(target),
           "--disable-pip-version-check", "--no-input", "--no-warn-script-location", "--progress-bar", "off",
           *map(str, wheels)]
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(key, None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeError(f"cannot install the code asset's wheels: {exc}", node_id=node_id) from None
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip()
        if "No module named pip" in text:
            raise NodeError("installing a code asset's requirements needs pip in panoflow's environment "
                            f"({sys.executable} -m pip)", node_id=node_id)
        lines = "\n".join(f"    {line}" for line in text.splitlines()[-15:])
        hint = ""
        if "is not a supported wheel" in text or "not a supported wheel" in text:
            hint = (f"\n  the wheels were built for another interpreter or machine; rebuild the code asset for this "
                    f"one (panoflow build-container --python-version {sys.version_info[0]}.{sys.version_info[1]} "
                    "--platform ...)")
        raise NodeError(f"installing the code asset's wheels failed:\n{lines}{hint}", node_id=node_id)
