"""Inbound ports as on the appliance: an application's own ports are unreachable unless the deployment confirms a
``networkRoutingRule``, and then only on its ``hostPort``.

A code node whose interface declares ``network.inboundPorts`` runs its Python thread (and every thread it starts)
in a network namespace of its own, with only a loopback interface: whatever it listens on is invisible to the
host. For each confirmed rule, panoflow listens on the host's ``hostPort`` and forwards each connection to
``127.0.0.1:containerPort`` inside that namespace. Network namespaces are per thread on Linux, so the rest of
panoflow (cameras, previews) keeps the host's network. The isolated app has no outbound network: on the appliance
it had, through the container runtime's NAT; that needs a veth pair and NAT rules, which panoflow does not set up.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import os
import socket
import struct
import threading
from collections.abc import Sequence

import anyio
import anyio.to_thread
import structlog

from panoflow.exceptions import NodeError, SandboxError

__all__ = ["AppNetwork", "open_host_listeners"]

log = structlog.get_logger(__name__)

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def open_host_listeners(rules: Sequence[tuple[int, int]], host: str = "0.0.0.0") -> list[socket.socket]:
    """Bind every confirmed ``hostPort`` now, so a port in use fails the start-up with a clear message."""
    out: list[socket.socket] = []
    try:
        for container_port, host_port in rules:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, host_port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise NodeError(
                        f"hostPort {host_port} (for containerPort {container_port}) is already in use on this "
                        "device; choose another hostPort (8000-9000) in the overrides' networkRoutingRules"
                    ) from None
                raise NodeError(f"cannot listen on hostPort {host_port}: {exc.strerror}") from None
            sock.listen(64)
            sock.setblocking(False)
            out.append(sock)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


class AppNetwork:
    """The app thread's private network namespace and the forwarders into it."""

    def __init__(self, rules: Sequence[tuple[int, int]], listeners: Sequence[socket.socket]):
        self.rules = list(rules)
        self.listeners = list(listeners)
        self._ns_path: str | None = None
        self._ready = threading.Event()
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    # -- in the app thread, before the app's code runs
    def isolate_current_thread(self) -> None:
        if self._libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise SandboxError(
                f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}; panoflow needs CAP_SYS_ADMIN (root) to give an "
                "application with inbound ports a network of its own"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # bring loopback up
            ifreq = struct.pack("16sH14s", b"lo", 0, b"")
            flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
        self._ns_path = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        self._ns_fd = os.open(self._ns_path, os.O_RDONLY)
        self._ready.set()
        log.info("app_network_isolated", forwarded=[{"containerPort": c, "hostPort": h} for c, h in self.rules])

    # -- on the event loop
    def _socket_in_app_namespace(self) -> socket.socket:
        """A TCP socket created in the app's namespace (a short-lived thread joins it, creates, and exits)."""
        result: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                if self._libc.setns(self._ns_fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
                result.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            except BaseException as exc:  # reported to the caller
                result.append(exc)

        t = threading.Thread(target=make, name="netns-socket")
        t.start()
        t.join()
        item = result[0]
        if isinstance(item, BaseException):
            raise item
        return item

    async def serve(self) -> None:
        """Forward every confirmed hostPort until cancelled (asyncio streams: panoflow runs anyio on asyncio)."""
        await anyio.to_thread.run_sync(self._ready.wait, abandon_on_cancel=True)
        servers = []
        try:
            for (container_port, host_port), sock in zip(self.rules, self.listeners):
                handler = functools.partial(self._forward, container_port=container_port, host_port=host_port)
                servers.append(await asyncio.start_server(handler, sock=sock))
            await anyio.sleep_forever()
        finally:
            for server in servers:
                server.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                       container_port: int, host_port: int) -> None:
        try:
            raw = await anyio.to_thread.run_sync(self._socket_in_app_namespace)
            raw.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", container_port))
            except OSError:
                raw.close()
                raise
            up_reader, up_writer = await asyncio.open_connection(sock=raw)
        except OSError as exc:
            log.info("inbound_connection_refused", hostPort=host_port, containerPort=container_port,
                     error=exc.strerror or str(exc))
            writer.close()
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, reader, up_writer)
                tg.start_soon(_pump, up_reader, writer)
        finally:
            writer.close()
            up_writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
