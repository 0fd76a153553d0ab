"""The Docker fallback of ``build-container``, for Dockerfiles that need more than panoflow understands.

panoflow builds code assets itself from ``COPY``/``ADD``/``WORKDIR``/``ENV`` and ``RUN pip install``. A
Dockerfile that also runs other commands (``apt-get``, compilers...), copies from other stages or images, or
downloads with ``ADD URL`` needs a real image build: when a Docker engine answers, ``docker build`` + ``docker
export`` produce the root filesystem, as panorama-cli does; otherwise panoflow says which steps it left out.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from panoflow.core.dockerfile import DockerfilePlan, logical_lines
from panoflow.packaging.project import PackagingError

__all__ = ["docker_engine", "docker_export", "steps_needing_docker"]

_PANORAMA_IMAGES = ("public.ecr.aws/panorama/",)
_IGNORED = ("LABEL", "MAINTAINER", "ARG", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "SHELL", "STOPSIGNAL",
            "HEALTHCHECK", "VOLUME", "ONBUILD")


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, KEYWORD, rest) of each instruction, continuation lines joined."""
    out = []
    for start, full in logical_lines(text):
        keyword, _, rest = full.partition(" ")
        out.append((start, keyword.upper(), rest.strip()))
    return out


def steps_needing_docker(text: str, plan: DockerfilePlan) -> list[str]:
    """The Dockerfile's steps that only an image build can do (``line N: ...``); empty when panoflow can build
    the asset alone."""
    steps = list(plan.other_runs) + [s for s in plan.unsupported
                                     if s.partition(": ")[2].split(" ")[0].upper() not in _IGNORED]
    froms = 0
    for line, keyword, rest in _instructions(text):
        if keyword == "FROM":
            froms += 1
            image = rest.split()[0] if rest else ""
            if froms > 1:
                steps.append(f"line {line}: FROM {rest} (a multi-stage build)")
            elif image and not image.startswith(_PANORAMA_IMAGES):
                steps.append(f"line {line}: FROM {image} (panoflow provides the Panorama base image's "
                             "python3 and panoramasdk, not other images' files)")
        elif keyword in ("COPY", "ADD"):
            try:
                words = shlex.split(rest) if not rest.startswith("[") else []
            except ValueError:
                words = []
            if any(w.startswith("--from") for w in words):
                steps.append(f"line {line}: {keyword} {rest} (copies from another stage or image)")
            elif keyword == "ADD" and any(re.match(r"^[a-z][a-z0-9+.-]*://", w) for w in words[:-1]):
                steps.append(f"line {line}: ADD {rest} (downloads at build time)")
    return sorted(set(steps), key=lambda s: int(s.split()[1].rstrip(":")))


def docker_engine(docker: str = "docker", timeout_s: float = 10.0) -> str:
    """The Docker engine's version when one answers, else ``""``."""
    exe = shutil.which(docker)
    if exe is None:
        return ""
    try:
        proc = subprocess.run([exe, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and version else ""


def _run(cmd: list[str], progress: Callable[[str], None], what: str) -> str:
    progress(f"$ {shlex.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    assert proc.stdout is not None
    lines: list[str] = []
    with proc.stdout:
        for raw in proc.stdout:
            lines.append(raw.rstrip())
            progress(f"  docker: {raw.rstrip()}")
    if proc.wait() != 0:
        raise PackagingError(f"{what} failed (exit status {proc.returncode}); see the docker output above")
    return lines[-1].strip() if lines else ""


def docker_export(package_dir: Path, tag: str, out: Path, *, pull: bool, progress: Callable[[str], None],
                  docker: str = "docker") -> None:
    """``docker build`` the package, ``docker export`` a container of the image to the tar file ``out``."""
    exe = shutil.which(docker) or docker
    _run([exe, "build", "-t", tag, *(["--pull"] if pull else []), str(package_dir)], progress, "docker build")
    container = _run([exe, "create", tag], progress, "docker create")
    try:
        _run([exe, "export", f"--output={out}", container], progress, "docker export")
    finally:
        subprocess.run([exe, "rm", container], capture_output=True, check=False)
