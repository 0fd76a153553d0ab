"""The Python interpreters an application can run on: what a descriptor's ``entry.path`` asks for, found on
this device.

A runtime descriptor names the interpreter (``"python3"``, ``"python3.8"``, ``"/usr/bin/python3.7"``). An
unversioned name (``python``, ``python3``) or none at all means the device default: panoflow's own *base*
interpreter (``sys.base_prefix``'s, never panoflow's virtual environment). A versioned name is looked up on
``PATH`` (version-manager shims skipped: they are scripts that need their manager), in ``/usr/bin`` and
``/usr/local/bin``, and in pyenv's ``versions/*/bin`` folders; an absolute path is taken as given. Each
candidate is asked what it is (:func:`probe`), so a venv's python resolves to its base interpreter and a shim
or a broken link is skipped. Only CPython 3.8 or newer qualifies (the ``panoramasdk`` client needs it). When
the request cannot be met,
:func:`choose_interpreter` logs a warning naming the request and the default it uses instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

__all__ = [
    "MIN_VERSION",
    "Interpreter",
    "choose_interpreter",
    "default_interpreter",
    "find_interpreter",
    "is_default_request",
    "probe",
    "requested_version",
]

log = structlog.get_logger(__name__)

#: the oldest Python the panoramasdk client supports
MIN_VERSION = (3, 8)
#: where interpreters live besides PATH
WELL_KNOWN_DIRS = (Path("/usr/bin"), Path("/usr/local/bin"))
#: pyenv roots whose ``versions/*/bin`` are searched
PYENV_ROOTS = (Path.home() / ".pyenv", Path("/root/.pyenv"), Path("/opt/pyenv"), Path("/usr/local/pyenv"))

_NAME = re.compile(r"^python(?P<major>\d)?(?:\.(?P<minor>\d+))?$")
_PROBE = ("import json, sys; print(json.dumps({'executable': sys.executable, 'base_prefix': sys.base_prefix, "
          "'prefix': sys.prefix, 'version': list(sys.version_info[:3]), 'abiflags': getattr(sys, 'abiflags', "
          "''), 'implementation': sys.implementation.name}))")


@dataclass(frozen=True)
class Interpreter:
    """A base (non-virtual-environment) CPython: ``executable`` runs it, ``prefix`` holds its standard library
    and shared libraries (what a sandbox must mount for it to start)."""

    executable: Path
    prefix: Path
    version: tuple[int, int, int]
    abiflags: str = ""

    @property
    def version_text(self) -> str:
        """``"3.8.18"``"""
        return ".".join(map(str, self.version))

    @property
    def short_version(self) -> str:
        """``"3.8"``"""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def abi(self) -> str:
        """The wheel ABI tag of its extension modules: ``"cp38"``, ``"cp313t"``."""
        return f"cp{self.version[0]}{self.version[1]}{self.abiflags}"

    def describe(self) -> str:
        return f"Python {self.version_text} ({self.executable})"


def _base_executable(prefix: Path, version: Sequence[int], fallback: Path) -> Path:
    for name in (f"python{version[0]}.{version[1]}", f"python{version[0]}", "python"):
        candidate = prefix / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return fallback.resolve()


def probe(executable: Path) -> Interpreter | None:
    """What ``executable`` is, asked by running it (isolated mode, 20 s at most); None when it does not run,
    is not CPython or is older than :data:`MIN_VERSION`. A virtual environment's python gives its base
    interpreter. Answers are remembered until the file changes."""
    try:
        stat = os.stat(executable)
    except OSError:
        return None
    return _probe(executable, (stat.st_ino, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _probe(executable: Path, _stamp: tuple[int, int, int]) -> Interpreter | None:
    try:
        proc = subprocess.run([str(executable), "-I", "-c", _PROBE], capture_output=True, text=True,
                              timeout=20, check=False, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"})
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if not isinstance(info, dict) or info.get("implementation") != "cpython":
        return None
    version = tuple(int(v) for v in info["version"])
    if version[:2] < MIN_VERSION:
        return None
    prefix = Path(info["base_prefix"])
    exe = _base_executable(prefix, version, Path(info["executable"] or executable))
    return Interpreter(exe, prefix, (version[0], version[1], version[2]), str(info.get("abiflags") or ""))


def default_interpreter() -> Interpreter:
    """The device default: panoflow's own base interpreter (``sys.base_prefix``), not its virtual
    environment."""
    prefix = Path(sys.base_prefix)
    v = sys.version_info
    exe = _base_executable(prefix, (v[0], v[1]), Path(getattr(sys, "_base_executable", "") or sys.executable))
    return Interpreter(exe, prefix, (v[0], v[1], v[2]), getattr(sys, "abiflags", ""))


def _is_shim(path: Path) -> bool:
    return path.parent.name == "shims"


def _candidates(name: str, search_path: str | None, pyenv_roots: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in (search_path if search_path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not folder:
            continue
        hit = shutil.which(name, path=folder)
        if hit and not _is_shim(Path(hit)):
            found.append(Path(hit))
    for known in WELL_KNOWN_DIRS:
        hit = shutil.which(name, path=str(known))
        if hit:
            found.append(Path(hit))
    for root in pyenv_roots:
        versions = root / "versions"
        try:
            entries = sorted(versions.iterdir(), key=lambda p: [int(x) if x.isdigit() else -1
                                                                for x in re.split(r"[.-]", p.name)],
                             reverse=True)
        except OSError:
            continue
        for entry in entries:
            exe = entry / "bin" / name
            if exe.is_file() and os.access(exe, os.X_OK):
                found.append(exe)
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def find_interpreter(requested: str, *, search_path: str | None = None,
                     pyenv_roots: Iterable[Path] = PYENV_ROOTS) -> Interpreter | None:
    """The interpreter ``requested`` names (``python3.8``, ``/usr/bin/python3.7``), or None when this device
    has none that qualifies. ``search_path``: the ``PATH`` to search (default: this process's)."""
    word = _first_word(requested)
    if not word:
        return None
    if "/" in word:
        path = Path(word)
        return probe(path) if path.is_absolute() and path.exists() else None
    match = _NAME.match(word)
    want = (int(match["major"]), int(match["minor"])) if match and match["major"] and match["minor"] else None
    for candidate in _candidates(word, search_path, tuple(pyenv_roots)):
        found = probe(candidate)
        if found is not None and (want is None or found.version[:2] == want):
            return found
    return None


def _first_word(requested: str | None) -> str:
    """The interpreter of an ``entry.path`` such as ``"python3.8 -u"``."""
    words = (requested or "").split()
    return words[0] if words else ""


def requested_version(requested: str | None) -> str | None:
    """``"3.8"`` for ``python3.8`` or ``/usr/bin/python3.8``; None when the request names no minor version."""
    word = _first_word(requested)
    match = _NAME.match(Path(word).name)
    return f"{match['major']}.{match['minor']}" if match and match["major"] and match["minor"] else None


def is_default_request(requested: str | None) -> bool:
    """None, ``""``, ``python`` and ``python3``: whatever Python 3 the device runs by default."""
    word = _first_word(requested)
    return word in ("", "python", "python3")


def choose_interpreter(requested: str | None, *, node_id: str = "", search_path: str | None = None,
                       pyenv_roots: Iterable[Path] = PYENV_ROOTS) -> Interpreter:
    """The interpreter for a descriptor's ``entry.path``: the one it names when this device has it, else the
    device default, with a warning naming both."""
    default = default_interpreter()
    if is_default_request(requested):
        return default
    assert requested is not None
    found = find_interpreter(requested, search_path=search_path, pyenv_roots=pyenv_roots)
    if found is not None:
        return found
    word = _first_word(requested)
    present = Path(word).exists() if "/" in word else bool(_candidates(word, search_path, tuple(pyenv_roots)))
    oldest = f"CPython {MIN_VERSION[0]}.{MIN_VERSION[1]}"
    if present:
        reason = f"{word} is older than {oldest} or not CPython"
        hint = f"the panoramasdk client needs {oldest} or newer: set entry.path to one (e.g. python3.8)"
    else:
        reason, hint = f"no {word} on this device", (f"install {word} (e.g. with pyenv) to run the "
                                                     "application on it")
    log.warning("requested_python_not_found", node_id=node_id, requested=requested, using=default.describe(),
                reason=reason, hint=hint)
    return default
