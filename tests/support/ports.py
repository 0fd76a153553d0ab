"""Free TCP ports for the servers a test starts: one the kernel picks (:func:`free_port`), or the first free
one in a range (:func:`free_port_in`, for host ports that must fall in one)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now (the kernel's choice); ``"::"`` asks for one free on
    every address, IPv4 and IPv6."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_in(lo: int, hi: int, host: str = "0.0.0.0") -> int:
    """The first TCP port in ``[lo, hi)`` that can be bound on ``host`` now."""
    for port in range(lo, hi):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in {lo}..{hi - 1}")
