"""Client of an instance's control API (served by ``panoflow run --control unix:PATH``): status, metrics,
signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["ControlClient", "ControlError"]


class ControlError(Exception):
    """The instance did not answer (not listening yet, gone, or too slow)."""


class ControlClient:
    """One instance's control socket. Create it, use it, :meth:`close` it (one aiohttp session per
    instance)."""

    def __init__(self, socket_path: Path, timeout_s: float = 3.0):
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)), timeout=self._timeout
            )
        return self._session

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if not self.socket_path.exists():
            raise ControlError("control socket not listening")
        try:
            async with self._client().request(method, f"http://instance{path}", json=body) as resp:
                if resp.content_type == "application/json":
                    return resp.status, await resp.json()
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ControlError(f"{type(exc).__name__}: {exc}") from None

    async def status(self) -> dict[str, Any]:
        code, body = await self._call("GET", "/status")
        if code != 200 or not isinstance(body, dict):
            raise ControlError(f"/status answered {code}")
        return body

    async def metrics(self) -> str:
        code, body = await self._call("GET", "/metrics")
        if code != 200 or not isinstance(body, str):
            raise ControlError(f"/metrics answered {code}")
        return body

    async def signal(self, node: str, signal: str) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)`` of ``POST /nodes/{node}/signal``: 200, 404 (no such camera node) or 400."""
        from urllib.parse import quote

        code, body = await self._call("POST", f"/nodes/{quote(node, safe='')}/signal", {"signal": signal})
        return code, body if isinstance(body, dict) else {"error": str(body)}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
