"""Whether another uid (the sandbox's) may read, write or traverse a host path, judged from its mode bits.

The launcher runs as root and the sandbox as an unprivileged uid with no supplementary groups, so
``os.access`` (which asks about the caller) cannot answer; these helpers apply the owner/group/other bits for
that uid and gid (POSIX ACLs are not consulted). With ``uid=None`` they ask about the caller itself.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["blocking_ancestor", "can_access"]


def can_access(path: Path, uid: int | None, gid: int | None, mode: int) -> bool:
    """Whether ``uid``/``gid`` may access ``path`` with ``mode`` (``os.R_OK | os.W_OK | os.X_OK`` bits)."""
    if uid is None:
        return os.access(path, mode)
    try:
        st = path.stat()
    except OSError:
        return False
    if uid == 0:
        return True
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 7
    elif gid is not None and st.st_gid == gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return (bits & mode) == mode


def blocking_ancestor(path: Path, uid: int | None, gid: int | None, *, write: bool = False) -> Path | None:
    """The first directory on the way to ``path`` (or ``path`` itself) that stops ``uid`` from using it, or
    None.

    Every ancestor needs search (x) permission; ``path`` needs read (plus search for a directory), and write
    when ``write`` is set.
    """
    path = Path(os.path.realpath(path))
    for ancestor in reversed(path.parents):
        if not can_access(ancestor, uid, gid, os.X_OK):
            return ancestor
    need = os.R_OK | (os.W_OK if write else 0)
    if path.is_dir():
        need |= os.X_OK
    return None if can_access(path, uid, gid, need) else path
