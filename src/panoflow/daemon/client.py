"""A small synchronous client of the daemon's HTTP API (standard library only), for the CLI commands."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from panoflow.exceptions import PanoflowError

__all__ = [
    "DEFAULT_URL",
    "DaemonClient",
    "DaemonError",
    "DaemonUnavailable",
    "default_state_dir",
    "find_daemon",
]

DEFAULT_URL = "http://127.0.0.1:7700"
FINAL_STATUSES = ("DEPLOYMENT_SUCCEEDED", "DEPLOYMENT_FAILED")


def default_state_dir() -> Path:
    """Where ``panoflow serve`` keeps its state unless told otherwise."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "panoflow" / "daemon"


def find_daemon(url: str | None, token_file: Path | None) -> tuple[str, Path]:
    """The daemon's URL and token file: as given, else the ``daemon.json`` beside the token file (which the
    daemon writes once it listens), else the defaults."""
    token_file = token_file or default_state_dir() / "token"
    if not url:
        try:
            url = str(json.loads((token_file.parent / "daemon.json").read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            url = DEFAULT_URL
    return url.rstrip("/"), token_file


class DaemonError(PanoflowError):
    """The daemon answered with an error. ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class DaemonUnavailable(PanoflowError, ConnectionError):
    """No daemon answers at the URL."""


class DaemonClient:
    def __init__(self, url: str, token: str, timeout_s: float = 60.0):
        self.url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    @classmethod
    def from_token_file(cls, url: str, token_file: Path) -> DaemonClient:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PanoflowError(f"cannot read the daemon's token from {token_file}: {exc.strerror}; pass "
                                "--token-file (or set PANOFLOW_TOKEN_FILE) to the token file of panoflow "
                                "serve's state directory") from None
        return cls(url, token)

    def _open(self, method: str, path: str, *, body: bytes | IO[bytes] | None = None,
              headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self._token}", **(headers or {})})
        try:
            return urllib.request.urlopen(req, timeout=timeout if timeout is not None else self.timeout_s)
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text.strip() or exc.reason
            raise DaemonError(exc.code, str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnavailable(f"cannot reach the panoflow daemon at {self.url}: {reason} (is panoflow "
                                    "serve running? --daemon or PANOFLOW_DAEMON say where)") from None

    def call(self, method: str, path: str, payload: Any = None, timeout: float | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        with self._open(method, path, body=body, headers=headers, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    # ------------------------------------------------------------------ operations
    def upload_archive(self, archive: IO[bytes], size: int, sha256: str) -> dict[str, Any]:
        try:
            return dict(self.call("GET", f"/archives/{sha256}"))
        except DaemonError as exc:
            if exc.status != 404:
                raise
        archive.seek(0)
        headers = {"Content-Type": "application/gzip", "Content-Length": str(size)}
        with self._open("POST", "/archives", body=archive, headers=headers,
                        timeout=max(self.timeout_s, 600)) as resp:
            return dict(json.loads(resp.read()))

    def deploy(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/instances", dict(request)))

    def instance(self, ref: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/instances/{_q(ref)}"))

    def instances(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/instances")["instances"])

    def wait_deployed(self, instance_id: str, timeout_s: float, poll_s: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            inst = self.instance(instance_id)
            if inst["status"] in FINAL_STATUSES or time.monotonic() > deadline:
                return inst
            time.sleep(poll_s)

    def remove(self, ref: str) -> list[dict[str, Any]]:
        return list(self.call("DELETE", f"/instances/{_q(ref)}", timeout=max(self.timeout_s, 120))["removed"])

    def signal(self, ref: str, node: str, signal: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/instances/{_q(ref)}/nodes/{_q(node)}/signal", {"signal": signal}))

    def logs(self, ref: str, *, node: str | None = None, tail: int = 100,
             follow: bool = False) -> Iterator[str]:
        query = {"tail": str(tail), "follow": "true" if follow else "false"}
        if node:
            query["node"] = node
        path = f"/instances/{_q(ref)}/logs?{urllib.parse.urlencode(query)}"
        with self._open("GET", path, timeout=None if follow else self.timeout_s) as resp:
            for raw in resp:
                yield raw.decode("utf-8", "replace").rstrip("\n")


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")
