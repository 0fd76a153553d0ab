"""Each application's own Python environment: the interpreter a code node's process runs, and what a sandbox
must mount for it.

A code node runs as its own process, with its own interpreter, in a sandbox that mounts read-only exactly the
folders listed in :attr:`AppEnvironment.mounts`, at the same absolute paths. :func:`app_environment` gives:

* for a built code asset (``wheels/*.whl``, see :mod:`.codeasset`): a real virtual environment (``python -m
  venv --without-pip``) made from the interpreter the descriptor's ``entry.path`` names (:mod:`.interpreters`;
  the device default when absent), with **all** of the asset's wheels installed offline and with their own
  pins (``pip install --no-index --no-deps --target``, pip's configuration files and ``PIP_*`` variables
  ignored, compatibility checked for that interpreter), byte-compiled by that interpreter. Nothing is shared
  with panoflow's environment: opencv 4.6 with numpy 1.x works while panoflow runs numpy 2. (One exception, as
  the Panorama base image had it: an asset that ships no numpy gets panoflow's numpy folders, linked behind
  its own packages, when its interpreter can load them; see :data:`PLATFORM_PACKAGES`.) It is cached under
  ``envs_dir``, keyed by the asset's digest and the interpreter's path and version; it is built in a temporary
  folder and published with one rename, so a second start creates nothing and a crash leaves nothing
  half-made.
* without one (a package run from its source tree): the device default, panoflow's base interpreter with
  panoflow's environment's ``site-packages`` on ``PYTHONPATH`` (so numpy and friends are there, as before),
  and neither panoflow's source tree nor its editable-install ``.pth`` paths.

The ``panoramasdk`` client the app imports is not part of either: the runner mounts it and puts it on
``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from panoflow.exceptions import NodeError
from panoflow.packaging.codeasset import CodeAsset, readable_by_all
from panoflow.packaging.interpreters import (
    Interpreter,
    choose_interpreter,
    default_interpreter,
    is_default_request,
)
from panoflow.packaging.project import DONE_MARKER, publish_folder
from panoflow.packaging.wheels import parse_wheel_name

__all__ = ["PLATFORM_PACKAGES", "AppEnvironment", "app_environment", "device_default_environment",
           "prune_environments"]

log = structlog.get_logger(__name__)

_RECORD = "panoflow-env.json"
#: what every application interpreter gets: no user site-packages, no bytecode writes into read-only mounts
BASE_ENV: Mapping[str, str] = {"PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
#: what the Panorama base image had for every application (the SDK hands frames over as numpy arrays): an
#: asset that ships none gets panoflow's, behind its own packages, when its interpreter can load it
PLATFORM_PACKAGES = ("numpy",)


@dataclass(frozen=True)
class AppEnvironment:
    """How to start a code node's interpreter, inside a sandbox or not."""

    python: Path  # the interpreter to exec (same path inside the sandbox and outside)
    # host folders to mount read-only at the same path: the environment needs no more
    mounts: tuple[Path, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # environment variables the interpreter needs
    installed: tuple[str, ...] = ()  # name==version of what the environment has
    python_version: str = ""  # "3.11.7"
    site_packages: Path | None = None  # where the asset's wheels are installed (None: the device default)


def _minimal_mounts(paths: Iterable[Path]) -> tuple[Path, ...]:
    """``paths`` without duplicates and without folders inside another one of them."""
    unique = sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return tuple(sorted(kept))


def device_default_environment() -> AppEnvironment:
    """panoflow's base interpreter with panoflow's environment's ``site-packages`` visible (on
    ``PYTHONPATH``)."""
    interp = default_interpreter()
    prefix = Path(sys.prefix)
    in_venv = prefix != Path(sys.base_prefix)
    sites = [Path(p) for p in site.getsitepackages() if in_venv and Path(p).is_relative_to(prefix)]
    user_site = Path(site.getusersitepackages())
    if site.ENABLE_USER_SITE and any(Path(p).is_relative_to(user_site) for p in sys.path if p):
        # panoflow installed with pip --user: the app's interpreter ignores user sites
        sites.append(user_site)
    sites = [p for p in sites if p.is_dir()]
    env = dict(BASE_ENV)
    if sites:
        env["PYTHONPATH"] = os.pathsep.join(map(str, sites))
    search = [str(p) for p in sites] + [p for p in sys.path if Path(p or ".").is_relative_to(interp.prefix)]
    installed = sorted({f"{d.metadata['Name']}=={d.version}"
                        for d in importlib.metadata.distributions(path=search) if d.metadata["Name"]})
    return AppEnvironment(interp.executable, _minimal_mounts([interp.prefix, *sites]), env, tuple(installed),
                          interp.version_text)


def app_environment(asset_or_none: CodeAsset | None, *, envs_dir: Path, requested: str | None,
                    node_id: str) -> AppEnvironment:
    """The Python environment of a code node: ``asset_or_none`` is its prepared code asset (None: run from the
    source tree), ``requested`` the descriptor's ``entry.path``. Raises :class:`NodeError` with the fix."""
    if asset_or_none is None:
        if not is_default_request(requested):
            log.info("source_tree_uses_default_python", node_id=node_id, requested=requested,
                     hint="a package run from its source tree uses panoflow's interpreter and libraries; "
                          "build its code asset (panoflow build-container) to run it on its own Python")
        return device_default_environment()
    interp = choose_interpreter(requested, node_id=node_id)
    return _asset_environment(asset_or_none.wheels, envs_dir, asset_or_none.digest, interp, node_id)


@dataclass(frozen=True)
class _Platform:
    """What the Panorama base image gave every application besides its own requirements, taken from panoflow's
    environment only where the code asset ships none: the folders to link (and mount) and their
    name==version."""

    paths: tuple[Path, ...] = ()
    installed: tuple[str, ...] = ()


def _platform(shipped: set[str], interp: Interpreter, node_id: str) -> _Platform:
    paths: list[Path] = []
    installed: list[str] = []
    default = default_interpreter()
    for name in PLATFORM_PACKAGES:
        if name in shipped:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise NodeError(f"the panoramasdk client needs {name}: add it to the application's "
                            "requirements.txt and rebuild the code asset (panoflow "
                            "build-container)", node_id=node_id) from None
        if (interp.short_version, interp.abiflags) != (default.short_version, default.abiflags):
            raise NodeError(
                f"the panoramasdk client needs {name}, which the code asset does not ship, and panoflow's "
                f"({name} {dist.version}, for Python {default.short_version}) does not fit "
                f"{interp.describe()}: add {name} to the application's requirements.txt and rebuild the code "
                f"asset (panoflow build-container --python-version {interp.short_version})", node_id=node_id)
        site_dir = Path(str(dist.locate_file("")))
        tops = sorted({f.parts[0] for f in dist.files or () if f.parts and f.parts[0] != ".."})
        paths += [(site_dir / top).resolve() for top in tops if (site_dir / top).exists()]
        installed.append(f"{name}=={dist.version}")
    return _Platform(tuple(paths), tuple(installed))


def _env_name(digest: str, interp: Interpreter, platform: _Platform) -> str:
    text = "\n".join([str(interp.executable), interp.version_text, interp.abiflags, *platform.installed])
    key = hashlib.sha256(text.encode()).hexdigest()
    return f"{digest[:16]}-{interp.abi}-{key[:8]}"


def _load(final: Path) -> AppEnvironment | None:
    try:
        record = json.loads((final / _RECORD).read_text())
        python = final / record["python"]
        base = Path(record["base_prefix"])
        platform = [Path(p) for p in record["platform"]]
        if not (python.exists() and base.is_dir() and all(p.exists() for p in platform)):
            return None  # the base interpreter (or panoflow's numpy) was removed or moved
        return AppEnvironment(python, _minimal_mounts([final, base, *platform]), dict(BASE_ENV),
                              tuple(record["installed"]), str(record["python_version"]),
                              final / record["site_packages"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cached(final: Path, node_id: str) -> AppEnvironment | None:
    if (final / DONE_MARKER).is_file():
        cached = _load(final)
        if cached is not None:
            log.debug("app_env_cached", node_id=node_id, env=str(final))
            return cached
    return None


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """One builder per environment across processes (two instances of one app starting together)."""
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _asset_environment(wheels: Sequence[Path], envs_dir: Path, digest: str, interp: Interpreter,
                       node_id: str) -> AppEnvironment:
    parsed = []
    for wheel in sorted(wheels):
        name = parse_wheel_name(wheel.name)
        if name is None:
            raise NodeError(f"code asset: {wheel.name} is not a wheel file name", node_id=node_id)
        parsed.append(name)
    platform = _platform({n for n, _ in parsed}, interp, node_id)
    final = envs_dir / _env_name(digest, interp, platform)
    cached = _cached(final, node_id)
    if cached is not None:
        return cached
    for wheel in wheels:
        _check_wheel(wheel, node_id)
    envs_dir.mkdir(parents=True, exist_ok=True)
    with _locked(envs_dir / f".{final.name}.lock"):
        cached = _cached(final, node_id)  # built by another process while this one waited
        if cached is not None:
            return cached
        _build(wheels, parsed, platform, final, digest, interp, node_id)
    env = _load(final)
    if env is None:
        raise NodeError(f"the application environment {final} is unreadable", node_id=node_id)
    log.info("app_env_created", node_id=node_id, env=str(final), python=interp.describe(),
             installed=list(env.installed))
    return env


def _build(wheels: Sequence[Path], parsed: list[tuple[str, str]], platform: _Platform, final: Path,
           digest: str, interp: Interpreter, node_id: str) -> None:
    """Make the environment in a temporary folder beside ``final`` and publish it with one rename."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=final.parent))
    try:
        _run([str(interp.executable), "-I", "-m", "venv", "--without-pip", str(tmp)], node_id,
             f"cannot create a virtual environment with {interp.describe()}")
        python = tmp / "bin" / "python"
        site_dir = Path(
            _run(
                [str(python), "-I", "-c", ("import sysconfig; print(sysconfig.get_path('purelib'))")],
                node_id,
                f"the new environment's python ({interp.describe()}) does not start",
            ).strip()
        )
        site_dir.mkdir(parents=True, exist_ok=True)
        if wheels:
            _pip_install(sorted(wheels), site_dir, interp, node_id)
            relative = site_dir.relative_to(tmp)
            _run([str(python), "-I", "-m", "compileall", "-q", "-j", "0", "-d", str(final / relative),
                  str(site_dir)], node_id, "", check=False)
        if platform.paths:  # after the asset's own packages on sys.path: links, mounted at the same paths
            (tmp / "platform").mkdir()
            for path in platform.paths:
                (tmp / "platform" / path.name).symlink_to(path)
            (site_dir / "_panoflow_platform.pth").write_text(f"{final / 'platform'}\n")
        record = {"python": "bin/python", "base_prefix": str(interp.prefix),
                  "python_version": interp.version_text, "interpreter": str(interp.executable),
                  "site_packages": site_dir.relative_to(tmp).as_posix(),
                  "installed": sorted([f"{n}=={v}" for n, v in parsed] + list(platform.installed)),
                  "platform": [str(p) for p in platform.paths], "asset": digest}
        (tmp / _RECORD).write_text(json.dumps(record, indent=2) + "\n")
        readable_by_all(tmp)
        publish_folder(tmp, final, digest)  # replaces only an unusable leftover: the lock is held
        readable_by_all(final / DONE_MARKER)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prune_environments(envs_dir: Path, keep: Iterable[AppEnvironment]) -> list[Path]:
    """Remove the environments under ``envs_dir`` that none of ``keep`` uses (what earlier code assets left);
    unfinished work (``.*``) stays. Returns what was removed."""
    kept = {Path(os.path.abspath(m)) for env in keep for m in env.mounts}
    removed = []
    try:
        entries = list(envs_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.is_dir() and not entry.name.startswith(".") and Path(os.path.abspath(entry)) not in kept:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _check_wheel(wheel: Path, node_id: str) -> None:
    """A damaged wheel gets a clear error before pip says something obscure."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        bad = f"({exc})"
    if bad is not None:
        raise NodeError(f"code asset wheel {wheel.name} is damaged (not a readable zip file: {bad}); rebuild "
                        "the code asset with panoflow build-container", node_id=node_id)


def _clean_env() -> dict[str, str]:
    """This process's environment without pip's and Python's settings (pip's configuration files are
    ignored)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _run(cmd: list[str], node_id: str, failure: str, *, check: bool = True) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return ""
        raise NodeError(f"{failure}: {exc}", node_id=node_id) from None
    if proc.returncode != 0:
        if not check:
            log.warning("app_env_step_failed", node_id=node_id, command=cmd[:4], output=proc.stderr[-2000:])
            return ""
        text = "\n".join(f"    {line}" for line in (proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise NodeError(f"{failure}:\n{text}", node_id=node_id)
    return proc.stdout


def _pip_install(wheels: Sequence[Path], target: Path, interp: Interpreter, node_id: str) -> None:
    """Install ``wheels`` into ``target`` for ``interp`` with panoflow's pip: offline, no dependencies
    resolved (the asset ships them all, pinned), wheel tags and Requires-Python checked against ``interp``."""
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps", "--no-compile",
           "--target", str(target), "--python-version", interp.version_text, "--implementation", "cp",
           "--abi", interp.abi, "--disable-pip-version-check", "--no-input", "--no-warn-script-location",
           "--progress-bar", "off", *map(str, wheels)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), check=False, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeError(f"cannot install the code asset's wheels: {exc}", node_id=node_id) from None
    if proc.returncode == 0:
        return
    text = (proc.stderr or proc.stdout).strip()
    if "No module named pip" in text:
        raise NodeError(f"installing a code asset's requirements needs pip in panoflow's environment "
                        f"({sys.executable} -m pip)", node_id=node_id)
    rebuild = f"panoflow build-container --python-version {interp.short_version}"
    unsupported = re.search(r"(\S+\.whl) is not a supported wheel", text)
    if unsupported:
        raise NodeError(f"code asset wheel {Path(unsupported.group(1)).name} does not fit "
                        f"{interp.describe()} on this machine: rebuild the code asset for it ({rebuild}, "
                        "plus --platform for another machine), or install the Python it was built "
                        "for", node_id=node_id)
    other_python = re.search(r"Package '([^']+)' requires a different Python: (.*)", text)
    if other_python:
        raise NodeError(f"code asset requirement {other_python.group(1)} does not support "
                        f"{interp.describe()} ({other_python.group(2).strip()}): rebuild the code asset for "
                        f"it ({rebuild}), which picks a version that does", node_id=node_id)
    lines = "\n".join(f"    {line}" for line in text.splitlines()[-15:])
    raise NodeError(f"installing the code asset's wheels for {interp.describe()} failed:\n{lines}",
                    node_id=node_id)
