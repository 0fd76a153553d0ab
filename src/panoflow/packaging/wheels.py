"""The Python requirements of a code package, as wheels, so that a device installs them with no network.

:func:`pip_requests` turns the Dockerfile's ``RUN pip install ...`` argument lists into one request
(requirement files resolved inside the staged image, as ``docker build`` would find them; index options kept;
options that only make sense for an image dropped). :func:`collect_wheels` runs pip with this interpreter:
``pip wheel`` for this machine (sdists are built into wheels), or ``pip download --only-binary=:all:`` for
another target (``--platform``/``--python-version``). pip uses the registries this machine is configured for
(pip.conf), plus the ``--index-url``/``--find-links`` given. Its progress lines are passed on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from panoflow.packaging.project import PackagingError

__all__ = ["PipOptions", "PipRequest", "Wheel", "collect_wheels", "parse_wheel_name", "pip_requests"]

#: options of ``pip install`` that take a value
_VALUED = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url",
    "-f", "--find-links", "--trusted-host", "-t", "--target", "--prefix", "--root", "--src",
    "--upgrade-strategy",
    "--progress-bar", "--timeout", "--retries", "--cache-dir", "--log", "--proxy", "--platform",
    "--python-version", "--implementation", "--abi", "--only-binary", "--no-binary", "--global-option",
    "--config-settings", "-C", "--report", "--cert", "--client-cert", "--exists-action", "--python",
    "--root-user-action", "--keyring-provider", "--use-feature", "--use-deprecated", "--install-option",
}
#: ... of which these are passed on to pip wheel / pip download
_PASSED_VALUED = {"-i": "--index-url", "--index-url": "--index-url", "--extra-index-url": "--extra-index-url",
                  "-f": "--find-links", "--find-links": "--find-links", "--trusted-host": "--trusted-host",
                  "--only-binary": "--only-binary", "--no-binary": "--no-binary"}
_PASSED_FLAGS = {"--pre", "--no-deps", "--no-index"}
#: pip's own tooling: installing it into an image says nothing about what the app imports
_TOOLING = {"pip"}
_PROGRESS = ("Collecting", "Building wheel", "Created wheel", "Saved", "Downloading", "Processing",
             "Successfully", "File was already", "Looking in", "ERROR", "WARNING", "Obtaining")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                    r"-(?P<plat>[^-]+)\.whl$")


@dataclass
class PipRequest:
    """What to fetch: requirement files (host paths), requirement specifiers and pip options."""

    files: list[Path] = field(default_factory=list)
    constraints: list[Path] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)  # the install arguments as the Dockerfile wrote them

    def __bool__(self) -> bool:
        return bool(self.files or self.specs)


@dataclass(frozen=True)
class PipOptions:
    """Command-line choices of ``build-container`` for pip."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False
    platforms: tuple[str, ...] = ()
    python_version: str | None = None

    def arguments(self) -> list[str]:
        args = []
        for link in self.find_links:
            args += ["--find-links", link]
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        if self.no_index:
            args.append("--no-index")
        return args


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # normalised distribution name
    version: str


def parse_wheel_name(filename: str) -> tuple[str, str] | None:
    """(normalised distribution name, version) of a wheel file name, or None."""
    match = _WHEEL.match(filename)
    if not match:
        return None
    return re.sub(r"[-_.]+", "-", match["name"]).lower(), match["version"]


def _in_image(root: Path, workdir: str, file: str) -> Path:
    posix = PurePosixPath(workdir) / file if not file.startswith("/") else PurePosixPath(file)
    parts = [p for p in posix.parts if p not in ("/", ".")]
    if ".." in parts:
        raise PackagingError(f"RUN pip install -r {file}: paths with '..' are not supported")
    return root.joinpath(*parts)


def pip_requests(installs: Sequence[Sequence[str]], root: Path, workdir: str) -> PipRequest:
    """One request from the Dockerfile's ``pip install`` argument lists; ``root`` is the staged image and
    ``workdir`` its final WORKDIR (relative requirement files are looked up there)."""
    request = PipRequest()
    for given in installs:
        request.requested.append(" ".join(given))
        args: list[str] = []
        for word in given:  # -rrequirements.txt -> -r requirements.txt
            short = len(word) > 2 and word[0] == "-" and word[1] in "rcefi" and word[1] != "-"
            args += [word[:2], word[2:]] if short else [word]
        i = 0
        while i < len(args):
            word = args[i]
            option, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
            if option in _VALUED:
                value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
                i += 1 if eq else 2
                if option in ("-r", "--requirement", "-c", "--constraint"):
                    path = _in_image(root, workdir, value)
                    if not path.is_file():
                        raise PackagingError(
                            f"the Dockerfile runs pip install {option} {value}, but {value} is not in the "
                            f"image (looked for {PurePosixPath('/', *path.relative_to(root).parts)}); COPY "
                            "it before the RUN line")
                    (request.files if option in ("-r", "--requirement") else request.constraints).append(path)
                elif option in ("-e", "--editable"):
                    raise PackagingError(f"pip install -e {value}: editable installs cannot be shipped as "
                                         "wheels; install the project normally")
                elif option in _PASSED_VALUED:
                    request.options += [_PASSED_VALUED[option], value]
                continue
            if word in _PASSED_FLAGS:
                request.options.append(word)
            elif not word.startswith("-"):
                name = re.split(r"[<>=!~\[;@ ]", word, maxsplit=1)[0].lower()
                if name not in _TOOLING:
                    request.specs.append(word)
            i += 1
    return request


def collect_wheels(request: PipRequest, dest: Path, options: PipOptions, *, cwd: Path,
                   progress: Callable[[str], None]) -> list[Wheel]:
    """Fetch (and build) the wheels ``request`` needs, dependencies included, into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cross = bool(options.platforms or options.python_version)
    if cross:
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)]
        for platform in options.platforms:
            cmd += ["--platform", platform]
        if options.python_version:
            cmd += ["--python-version", options.python_version, "--implementation", "cp"]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(dest)]
    cmd += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    cmd += request.options + options.arguments()
    for path in request.files:
        cmd += ["--requirement", str(path)]
    for path in request.constraints:
        cmd += ["--constraint", str(path)]
    cmd += request.specs
    env = {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "315532800"),
           "PYTHONUNBUFFERED": "1"}
    progress(f"collecting wheels with pip {'download' if cross else 'wheel'} "
             f"({len(request.files)} requirement file(s), {len(request.specs)} requirement(s))")
    tail: list[str] = []
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
    except OSError as exc:
        raise PackagingError(f"cannot run pip ({sys.executable} -m pip): {exc.strerror or exc}") from None
    assert proc.stdout is not None
    with proc.stdout:
        for raw in proc.stdout:
            line = raw.rstrip()
            tail = [*tail[-39:], line]
            if line.lstrip().startswith(_PROGRESS):
                progress(f"  pip: {line.strip()}")
    if proc.wait() != 0:
        if any("No module named pip" in line for line in tail):
            raise PackagingError(f"build-container needs pip in panoflow's environment ({sys.executable} -m "
                                 "pip)")
        details = "\n".join(f"    {line}" for line in tail if line.strip())
        raise PackagingError("pip could not collect the requirements (exit status "
                             f"{proc.returncode}):\n{details}")
    wheels = []
    for path in sorted(dest.iterdir()):
        parsed = parse_wheel_name(path.name)
        if parsed is None:
            raise PackagingError(f"pip left {path.name}, which is not a wheel; only wheels can be installed "
                                 "offline")
        wheels.append(Wheel(path, *parsed))
    return wheels
