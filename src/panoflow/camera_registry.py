"""The device's camera registry: named cameras (URL, username, password) in one JSON file with mode 0600.

Graph overrides and ``panoflow run --camera NODE=NAME`` refer to cameras by name, so passwords live in one
private file instead of command lines, manifests and shell history. :meth:`Camera.uri` embeds the credentials
for the source plugin only; everything shown to people goes through :meth:`Camera.redacted`.

The file is rewritten atomically (temporary file in the same folder, ``fsync``, ``os.replace``) under an
``flock``, so concurrent ``panoflow cameras add`` calls never lose an entry or leave a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from panoflow.core.redact import redact_url, with_credentials
from panoflow.exceptions import PanoflowError

__all__ = [
    "Camera",
    "CameraNotFound",
    "CameraRegistry",
    "RegistryError",
    "camera_uri_for",
    "default_registry_path",
    "registry_lookup",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_FORMAT = 1


class RegistryError(PanoflowError, ValueError):
    """The registry file is unreadable, or a camera definition is invalid."""


class CameraNotFound(PanoflowError, KeyError):
    """No camera of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def default_registry_path(environ: Mapping[str, str]) -> Path:
    """``$PANOFLOW_CAMERAS``, else ``$XDG_STATE_HOME/panoflow/cameras.json`` (``~/.local/state`` by default).
    Callers (the CLI, the daemon) pass their environment: library code reads none."""
    if environ.get("PANOFLOW_CAMERAS"):
        return Path(environ["PANOFLOW_CAMERAS"]).expanduser()
    base = Path(
        environ.get("XDG_STATE_HOME") or Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    )
    return base / "panoflow" / "cameras.json"


@dataclass(frozen=True)
class Camera:
    """A named camera. ``url`` never holds credentials (they are split off when a camera is added)."""

    name: str
    url: str
    username: str | None = None
    password: str | None = None

    def uri(self) -> str:
        """The URL with the credentials embedded (percent-encoded): for the source plugin only, never log
        it."""
        return with_credentials(self.url, self.username, self.password)

    def redacted(self) -> str:
        """The URL with the user name and ``***`` for the password: safe for logs and status output."""
        return redact_url(self.uri())

    def public(self) -> dict[str, Any]:
        """What ``panoflow cameras list --json`` shows: never the password."""
        return {"name": self.name, "url": self.redacted(), "username": self.username,
                "has_password": self.password is not None}

    def __repr__(self) -> str:
        return f"Camera(name={self.name!r}, url={self.redacted()!r})"


def _split_credentials(url: str, username: str | None,
                       password: str | None) -> tuple[str, str | None, str | None]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise RegistryError(f"invalid camera URL {redact_url(url)}: {exc}") from None
    if "://" not in url or not parts.hostname:
        raise RegistryError(f"invalid camera URL {redact_url(url)}: expected scheme://host[:port]/path")
    if parts.username is not None:
        if username is not None and username != unquote(parts.username):
            raise RegistryError("the URL and --username name different users")
        username = unquote(parts.username)
        if parts.password is not None:
            password = unquote(parts.password) if password is None else password
        netloc = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if password is not None and username is None:
        raise RegistryError("a password needs a username")
    return url, username, password


class CameraRegistry:
    """Named cameras in a JSON file (``{"version": 1, "cameras": {name: {...}}}``), mode 0600."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # ---- reading
    def _load(self) -> dict[str, Camera]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegistryError(f"cannot read camera registry {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
            entries = doc["cameras"]
            return {name: Camera(name, e["url"], e.get("username"), e.get("password")) for name,
                    e in entries.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RegistryError(f"camera registry {self.path} is not a valid registry file") from None

    def list(self) -> list[Camera]:
        """Every camera, sorted by name."""
        return sorted(self._load().values(), key=lambda c: c.name)

    def get(self, name: str) -> Camera:
        cameras = self._load()
        if name not in cameras:
            known = ", ".join(sorted(cameras)) or "none registered"
            raise CameraNotFound(f"no camera named {name!r} in {self.path} (cameras: {known})")
        return cameras[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._load()

    # ---- writing
    def add(self, name: str, url: str, username: str | None = None, password: str | None = None, *,
            replace: bool = False) -> Camera:
        """Register ``name``. Credentials in ``url`` are moved to ``username``/``password``."""
        if not _NAME.match(name):
            raise RegistryError(f"invalid camera name {name!r}: use letters, digits, '_', '.', '-' (max 64)")
        url, username, password = _split_credentials(url, username, password)
        camera = Camera(name, url, username, password)
        with self._locked():
            cameras = self._load()
            if name in cameras and not replace:
                raise RegistryError(f"camera {name!r} already exists (remove it first, or replace it)")
            cameras[name] = camera
            self._write(cameras)
        return camera

    def remove(self, name: str) -> None:
        with self._locked():
            cameras = self._load()
            if name not in cameras:
                raise CameraNotFound(f"no camera named {name!r} in {self.path}")
            del cameras[name]
            self._write(cameras)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.parent / f".{self.path.name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, cameras: Mapping[str, Camera]) -> None:
        doc = {"version": _FORMAT, "cameras": {
            c.name: {k: v for k, v in (("url", c.url), ("username", c.username), ("password", c.password))
                     if v is not None}
            for c in sorted(cameras.values(), key=lambda c: c.name)
        }}
        # created with mode 0600
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(doc, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def camera_uri_for(value: str, registry: CameraRegistry | None, *, exists: Any = os.path.exists) -> str:
    """What ``--camera NODE=VALUE`` binds: a URI or path as given, or the registered camera named ``VALUE``
    (``camera:NAME`` always means the registry). A path that exists wins over a camera of the same name."""
    if value.startswith("camera:"):
        if registry is None:
            raise CameraNotFound(f"{value}: no camera registry")
        return registry.get(value.removeprefix("camera:")).uri()
    if "://" in value or registry is None or exists(value) or not _NAME.match(value):
        return value
    if value in registry:
        return registry.get(value).uri()
    return value


def registry_lookup(registry: CameraRegistry) -> Callable[[str], str | None]:
    """For graph resolution: a camera node (or its camera package) named like a registered camera streams from
    it. Returns the URI with credentials, or None when no camera has that name."""

    def lookup(name: str) -> str | None:
        try:
            return registry.get(name).uri()
        except CameraNotFound:
            return None

    return lookup
