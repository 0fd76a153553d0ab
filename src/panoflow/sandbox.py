"""A private filesystem view for unmodified Panorama code: ``/panorama`` and ``/opt/aws/panorama/{logs,storage}``.

Panorama containers find their code under ``/panorama`` and write to ``/opt/aws/panorama/logs`` and ``.../storage``.
panoflow gives the running process those paths without creating anything under them on the host:

1. ``unshare(CLONE_NEWNS)`` (plus ``CLONE_NEWUSER`` when not root) gives this process its own mount table;
2. a tmpfs becomes a new root in which every top-level entry of the host's ``/`` is bind-mounted (so Python, the
   app's files and the venv stay where they are), ``/opt`` is rebuilt entry by entry so that ``/opt/aws`` can be
   added, and ``/panorama``, ``/opt/aws/panorama/logs`` and ``/opt/aws/panorama/storage`` are bind mounts of
   directories panoflow owns;
3. the process ``chroot``s into it.

The host sees only one empty directory (the tmpfs mount point, inside panoflow's state directory). Must be called
before the process starts threads when not root (user namespaces require a single-threaded caller).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import structlog

from panoflow.exceptions import SandboxError

__all__ = ["enter_sandbox", "sandbox_supported"]

log = structlog.get_logger(__name__)

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_HINT = (
    "panoflow needs a private mount namespace to show the app /panorama and /opt/aws/panorama without touching "
    "the host. Run as root, or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
    "and user.max_user_namespaces > 0); inside a container, start it with CAP_SYS_ADMIN (or --privileged)."
)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what} failed: {os.strerror(err)} ({errno.errorcode.get(err, err)}). {_HINT}")


def sandbox_supported() -> tuple[bool, str]:
    """Whether :func:`enter_sandbox` can work here (Linux only), and if not, why."""
    if not hasattr(os, "chroot") or os.uname().sysname != "Linux":
        return False, f"private mount namespaces need Linux; this is {os.uname().sysname}. {_HINT}"
    return True, ""


class _Mounter:
    def __init__(self) -> None:
        self.libc = _libc()

    def mount(self, source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        ret = self.libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
            data.encode() if data else None,
        )
        _check(ret, f"mount {source} on {target}")

    def bind(self, source: str, target: str, *, readonly: bool = False) -> None:
        self.mount(source, target, None, MS_BIND | MS_REC)
        if readonly:
            self.mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def _unshare(libc: ctypes.CDLL) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        return
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def _mirror(m: _Mounter, host_dir: Path, new_dir: Path, skip: set[str]) -> None:
    """Recreate every entry of ``host_dir`` inside ``new_dir`` (dirs and files bind-mounted, links copied)."""
    for entry in sorted(os.listdir(host_dir)):
        if entry in skip:
            continue
        src, dst = host_dir / entry, new_dir / entry
        try:
            st = os.lstat(src)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISDIR(st.st_mode):
            dst.mkdir()
            try:
                m.bind(str(src), str(dst))
            except SandboxError:
                log.debug("sandbox_bind_skipped", path=str(src))
        else:
            dst.touch()
            try:
                m.bind(str(src), str(dst))
            except SandboxError:
                log.debug("sandbox_bind_skipped", path=str(src))


def enter_sandbox(root_mount: Path, binds: Mapping[str, tuple[Path, bool]], cwd: str) -> None:
    """Enter a private root where each ``binds`` target (absolute path, e.g. ``/panorama``) shows the host
    directory given with it (``(path, readonly)``). ``root_mount`` is an empty directory panoflow owns; it is
    used as the tmpfs mount point. Afterwards the process's cwd is ``cwd`` (a path inside the new root)."""
    ok, why = sandbox_supported()
    if not ok:
        raise SandboxError(why)
    m = _Mounter()
    _unshare(m.libc)
    m.mount("none", "/", None, MS_REC | MS_PRIVATE)
    root_mount.mkdir(parents=True, exist_ok=True)
    m.mount("panoflow-root", str(root_mount), "tmpfs", 0, "mode=0755")
    tops = {Path(t).parts[1] for t in binds}
    _mirror(m, Path("/"), root_mount, skip=tops)
    for top in tops:  # rebuild /opt (or any other top-level dir a bind lives in) entry by entry
        host_top, new_top = Path("/") / top, root_mount / top
        new_top.mkdir()
        m.mount("panoflow-" + top, str(new_top), "tmpfs", 0, "mode=0755")
        if host_top.is_dir() and not host_top.is_symlink():
            _mirror(m, host_top, new_top, skip={Path(t).parts[2] for t in binds if len(Path(t).parts) > 2
                                                and Path(t).parts[1] == top})
    for target, (source, readonly) in sorted(binds.items()):
        inside = root_mount / target.lstrip("/")
        inside.mkdir(parents=True, exist_ok=True)
        source.mkdir(parents=True, exist_ok=True)
        m.bind(str(source), str(inside), readonly=readonly)
    os.chroot(root_mount)
    os.chdir(cwd)
    log.debug("sandbox_entered", binds=sorted(binds))
