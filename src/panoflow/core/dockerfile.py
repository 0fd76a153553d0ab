"""Just enough Dockerfile understanding to know what a Panorama code package puts where.

Panorama code packages are built from Dockerfiles such as
``FROM public.ecr.aws/panorama/panorama-application`` + ``COPY src /panorama``, or ``WORKDIR /panorama`` +
``COPY . .``, often with ``RUN pip install -r requirements.txt``. panoflow runs them without Docker, so it
reads ``COPY``/``ADD``/``WORKDIR``/``ENV``/``RUN`` and nothing more.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

__all__ = ["Copy", "DockerfilePlan", "logical_lines", "parse_dockerfile"]


@dataclass(frozen=True)
class Copy:
    """``COPY sources... dest``: ``dest`` made absolute against the WORKDIR in force; ``dest_is_dir`` when the
    instruction names a directory target (trailing slash, several sources, or ``.``)."""

    sources: tuple[str, ...]
    dest: str
    dest_is_dir: bool
    line: int


@dataclass
class DockerfilePlan:
    base_image: str = ""
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    pip_installs: list[list[str]] = field(default_factory=list)  # argument lists of ``pip install``
    other_runs: list[str] = field(default_factory=list)  # RUN lines panoflow does not understand
    unsupported: list[str] = field(default_factory=list)  # instructions panoflow ignores (with line numbers)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, instruction)`` with continuation lines joined and comments dropped."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _pip_args(command: str) -> list[list[str]]:
    found = []
    for part in command.replace("&&", ";").split(";"):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        for i in range(len(words) - 1):
            if words[i].endswith(("pip", "pip3")) or (words[i] == "-m" and words[i + 1] == "pip"):
                j = i + 1 if words[i] != "-m" else i + 2
                if j < len(words) and words[j] == "install":
                    found.append(words[j + 1:])
                break
    return found


def parse_dockerfile(text: str) -> DockerfilePlan:
    plan = DockerfilePlan()
    for line_no, line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            plan.base_image = rest.split()[0] if rest else ""
        elif keyword == "WORKDIR":
            plan.workdir = posixpath.normpath(posixpath.join(plan.workdir, rest.strip("\"'")))
        elif keyword in ("COPY", "ADD"):
            if rest.startswith("["):
                import json

                try:
                    words = [str(w) for w in json.loads(rest)]
                except ValueError:
                    plan.unsupported.append(f"line {line_no}: {line}")
                    continue
            else:
                words = shlex.split(rest)
            words = [w for w in words if not w.startswith("--")]
            if len(words) < 2:
                plan.unsupported.append(f"line {line_no}: {line}")
                continue
            *sources, dest = words
            is_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
            absolute = posixpath.normpath(posixpath.join(plan.workdir, dest))
            plan.copies.append(Copy(tuple(sources), absolute, is_dir, line_no))
        elif keyword == "ENV":
            if "=" in rest:
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    plan.env[key] = value
            elif rest:
                key, _, value = rest.partition(" ")
                plan.env[key] = value.strip()
        elif keyword == "RUN":
            pips = _pip_args(rest)
            if pips:
                plan.pip_installs.extend(pips)
            else:
                plan.other_runs.append(f"line {line_no}: {rest}")
        elif keyword not in ("LABEL", "MAINTAINER", "ARG", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "SHELL"):
            plan.unsupported.append(f"line {line_no}: {line}")
    return plan
