"""The converter environments: one isolated virtual environment per source framework, created on demand with
pip.

A converter never runs in panoflow's environment or the application's: ``torch``, ``mxnet`` (which needs
numpy < 1.24) and ``tensorflow-cpu`` + ``tf2onnx`` would each fight panoflow's own pins. Each environment
lives under ``<converters dir>/<framework>-<key>/`` where the key digests its pinned requirements and the
Python version, so an upgrade of the pins makes a new environment and CI on the same machine reuses the old
one. An environment is built in a temporary folder and appears with one rename (a half-built one is never
used); a lock file keeps two processes from building the same one. Offline devices pass a wheelhouse
(``--find-links DIR``, with ``no_index``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from panoflow.exceptions import ModelError

__all__ = ["ENVIRONMENTS", "ConverterEnvError", "EnvSpec", "PipSource", "default_cache_dir",
           "ensure_environment"]

_DONE = ".complete"


class ConverterEnvError(ModelError):
    """A converter environment could not be created (no network, no wheelhouse, a pip failure)."""


@dataclass(frozen=True)
class EnvSpec:
    """A converter environment: the framework it converts, its pinned requirements and its worker script."""

    framework: str
    requirements: tuple[str, ...]
    worker: str

    @property
    def key(self) -> str:
        """A digest of the requirements and this Python's version: the environment folder's suffix."""
        text = "\n".join((*self.requirements, f"python {sys.version_info.major}.{sys.version_info.minor}"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.framework.lower()}-{self.key}"


#: Pinned so that a converter gives the same ONNX file everywhere. mxnet 1.9.1 needs numpy < 1.24, and its
#: ONNX exporter the protobuf 3 generation of onnx; torch 2.13's exporter needs the onnx package.
ENVIRONMENTS: dict[str, EnvSpec] = {
    "PYTORCH": EnvSpec("PYTORCH", ("torch==2.13.0", "onnx==1.23.2", "numpy==2.4.6"), "pytorch_worker.py"),
    "MXNET": EnvSpec("MXNET", ("mxnet==1.9.1", "numpy==1.23.5", "onnx==1.14.1", "protobuf==3.20.3"),
                     "mxnet_worker.py"),
    "TENSORFLOW": EnvSpec("TENSORFLOW", ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "onnx==1.23.2",
                                         "numpy==2.4.6"), "tensorflow_worker.py"),
}


@dataclass(frozen=True)
class PipSource:
    """Where pip finds the converters' wheels: ``find_links`` folders or URLs (a wheelhouse), ``no_index`` for
    an offline device that has only those."""

    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @classmethod
    def from_environment(cls, environ: dict[str, str] | os._Environ[str] | None = None) -> PipSource:
        """``$PANOFLOW_CONVERTER_FIND_LINKS`` (colon-separated) and ``$PANOFLOW_CONVERTER_NO_INDEX=1``: how
        ``panoflow run``/``serve`` on an offline device find the converters' wheels."""
        env = os.environ if environ is None else environ
        links = tuple(x for x in env.get("PANOFLOW_CONVERTER_FIND_LINKS", "").split(":") if x)
        return cls(links, env.get("PANOFLOW_CONVERTER_NO_INDEX", "") == "1")

    def arguments(self) -> list[str]:
        args: list[str] = []
        for link in self.find_links:
            args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        return args


def default_cache_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$PANOFLOW_CACHE``, else ``$XDG_CACHE_HOME/panoflow``, else ``~/.cache/panoflow``."""
    env = os.environ if environ is None else environ
    if env.get("PANOFLOW_CACHE"):
        return Path(env["PANOFLOW_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "panoflow"


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created) for the block: one process at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    return " | ".join(kept[-lines:])


def ensure_environment(spec: EnvSpec, converters_dir: Path, pip: PipSource,
                       progress: Callable[[str], None]) -> Path:
    """The folder of ``spec``'s environment under ``converters_dir``, created first when missing.

    Raises :class:`ConverterEnvError` naming the requirements, pip's last words and what to do offline."""
    final = converters_dir / spec.name
    if (final / _DONE).is_file():
        return final
    with locked(converters_dir / f".{spec.name}.lock"):
        if (final / _DONE).is_file():  # built by another process while we waited
            return final
        for stale in converters_dir.glob(f".{spec.name}-*"):  # left by a process killed while building it
            shutil.rmtree(stale, ignore_errors=True)
        reqs = " ".join(spec.requirements)
        progress(f"creating the {spec.framework} converter environment {final} (pip install {reqs}); this "
                 "happens once per machine and can take minutes")
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=converters_dir))
        try:
            made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(tmp)], check=False,
                                  capture_output=True,
                                  text=True)
            if made.returncode != 0:
                raise ConverterEnvError(f"cannot create the {spec.framework} converter environment in {tmp}: "
                                        f"{_tail(made.stderr)}")
            cmd = [str(python_of(tmp)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   *pip.arguments(), *spec.requirements]
            done = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if done.returncode != 0:
                where = (
                    f"the wheelhouse {', '.join(pip.find_links)}"
                    if pip.no_index
                    else "the package index" + (f" and {', '.join(pip.find_links)}" if pip.find_links else "")
                )
                raise ConverterEnvError(
                    f"creating the {spec.framework} converter environment failed: pip install {reqs} from "
                    f"{where} said: {_tail(done.stderr or done.stdout)}. On a device without the index, give "
                    f"a wheelhouse (pip download -d WHEELHOUSE {reqs}, then --find-links WHEELHOUSE "
                    "--no-index or PANOFLOW_CONVERTER_FIND_LINKS=WHEELHOUSE), or deploy through a control "
                    "plane, which compiles the model at RegisterPackageVersion")
            (tmp / _DONE).write_text(reqs + "\n")
            if final.exists():  # a stale, unfinished one
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # bin/python finds pyvenv.cfg beside it: a moved venv runs as is
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress(f"created the {spec.framework} converter environment in {time.monotonic() - started:.0f} s")
        return final

