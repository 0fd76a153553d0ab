"""The daemon's state on disk: one directory, plain files, atomic writes.

::

    DIR/token                          bearer token (0600), created at first start
    DIR/daemon.json                    where the running daemon listens (url, pid), for local clients
    DIR/logs/daemon.log[.1]            the device log (JSON lines)
    DIR/archives/<sha256>/             content-addressed application folders (graphs/, packages/, assets/)
    DIR/apps/<name>/storage/           the app's /opt/aws/panorama/storage: kept across restarts and
                                       replacements
    DIR/apps/<name>/logs/              instance.log[.1] and <node>/console_output[.1]: kept across
                                       restarts and replacements, rotated at 10 MiB with one backup
    DIR/instances/<id>/instance.json   one application instance: what was deployed, its status, its
                                       desired state
    DIR/instances/<id>/overrides.json  the deployment's overrides, as given
    DIR/instances/<id>/state/          the instance's ``panoflow run --state-dir`` (code/, logs/, root/)
    DIR/instances/<id>/tmp/            its TMPDIR, emptied at every start
    DIR/cameras.json                   a camera registry (:mod:`panoflow.camera_registry`) when none is
                                       configured (``panoflow serve`` defaults to the one
                                       ``panoflow cameras`` edits)

Every JSON file is written to a temporary file in the same directory, fsynced and renamed over the old one, so
a crash leaves either the old or the new document, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["StatePaths", "atomic_write_json", "ensure_token", "read_json"]

TOKEN_BYTES = 32


def atomic_write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write ``data`` as JSON to ``path`` atomically (readable by the owner only, by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def ensure_token(path: Path) -> str:
    """The daemon's bearer token: read it, or create it (mode 0600, never world-readable, not even
    briefly)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            os.chmod(path, 0o600)
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".token.", dir=path.parent)  # mkstemp creates it 0600
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


class StatePaths:
    """Where everything lives under the daemon's state directory."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def create(self) -> None:
        for d in (self.root, self.logs, self.archives, self.apps, self.instances):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def daemon_file(self) -> Path:
        return self.root / "daemon.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def device_log(self) -> Path:
        return self.logs / "daemon.log"

    @property
    def archives(self) -> Path:
        return self.root / "archives"

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    @property
    def cameras(self) -> Path:
        return self.root / "cameras.json"

    def archive(self, sha256: str) -> Path:
        return self.archives / sha256

    def app(self, name: str) -> Path:
        return self.apps / name

    def storage(self, name: str) -> Path:
        return self.app(name) / "storage"

    def app_logs(self, name: str) -> Path:
        return self.app(name) / "logs"

    def instance(self, instance_id: str) -> Path:
        return self.instances / instance_id

    def remove_instance(self, instance_id: str) -> None:
        shutil.rmtree(self.instance(instance_id), ignore_errors=True)

    def remove_app(self, name: str) -> None:
        shutil.rmtree(self.app(name), ignore_errors=True)
