"""The one safe tar extractor: every archive panoflow unpacks (model archives, code assets, container exports,
application archives the daemon receives) goes through :func:`safe_extract` (docs/security.md).

It does not rely on ``tarfile``'s extraction filters (absent on Python 3.10.0-3.10.11 and 3.11.0-3.11.3, and
bypassed on builds without the June 2025 fixes): it writes each member itself.

1. Every header is checked before anything is written: no absolute names, no ``..``, no NUL or backslash, only
   regular files, folders, symbolic and hard links (no devices, FIFOs or sockets), at most ``max_members``
   members and ``max_bytes`` bytes in all.
2. Folders and regular files are written first, each one's parent resolved against the real destination on
   disk (``realpath``: a link already there that leaves it is refused), files opened with ``O_NOFOLLOW``; the
   bytes copied are counted again (a header cannot lie about them); set-uid/set-gid/sticky bits are dropped.
3. Hard links, then symbolic links, come last, each resolved from its real parent folder: a link whose target
   is outside the destination is refused, and once all exist every link is resolved again (a later link cannot
   turn an earlier one outward). A 5-member chain such as ``x -> .``, ``x/x/x/x/l -> ../../../../outside``,
   ``l/pwned.txt`` writes nothing outside.

A refused archive raises :class:`ArchiveError` (a ``ValueError``) naming the member; what was written before
that is inside the destination only, which callers extract into a temporary folder and delete. A damaged
archive raises ``tarfile.TarError``.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path

from panoflow.exceptions import PanoflowError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMBERS", "ArchiveError", "safe_extract"]

DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_BYTES = 16 * 1024**3
_CHUNK = 1 << 20


class ArchiveError(PanoflowError, ValueError):
    """An archive member may not be extracted (it would leave the destination, or a limit is exceeded)."""


def _clean_name(name: str) -> str:
    """The member name, normalised; :class:`ArchiveError` when it is absolute or climbs out."""
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
    ):
        raise ArchiveError(f"refusing archive member {name!r}: absolute path (or a NUL or backslash in it)")
    if ".." in name.split("/"):
        raise ArchiveError(f"refusing archive member {name!r}: '..' in its path")
    return posixpath.normpath(name)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _real_parent(root: str, rel: str) -> str:
    """The real folder ``rel``'s parent is in, created as needed, checked to be inside ``root``."""
    parent = os.path.join(root, posixpath.dirname(rel)) if posixpath.dirname(rel) else root
    real = os.path.realpath(parent)
    if not _inside(real, root):
        raise ArchiveError(f"refusing archive member {rel!r}: its folder leads outside the destination")
    os.makedirs(real, mode=0o755, exist_ok=True)
    if not _inside(os.path.realpath(real), root):  # a link created meanwhile: never write through it
        raise ArchiveError(f"refusing archive member {rel!r}: its folder leads outside the destination")
    return real


def _check_headers(members: list[tarfile.TarInfo], max_members: int, max_bytes: int,
                   check: Callable[[tarfile.TarInfo], None] | None) -> None:
    if len(members) > max_members:
        raise ArchiveError(f"the archive has {len(members)} members; at most {max_members} are accepted")
    total = 0
    for member in members:
        member.name = _clean_name(member.name)
        if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                     or member.islnk()):
            raise ArchiveError(f"refusing archive member {member.name!r}: device or FIFO (only files, "
                               "folders and links are extracted)")
        if member.issym() and (not member.linkname or member.linkname.startswith("/")
                               or "\x00" in member.linkname):
            raise ArchiveError(f"refusing archive member {member.name!r}: link to an absolute path "
                               f"({member.linkname!r})")
        if member.islnk():
            try:
                member.linkname = _clean_name(member.linkname)
            except ArchiveError:
                raise ArchiveError(f"refusing archive member {member.name!r}: link leaving the archive "
                                   f"({member.linkname!r})") from None
        total += max(member.size, 0) if member.isfile() else 0
        if total > max_bytes:
            raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes (the limit)")
        if check is not None:
            check(member)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str, budget: list[int]) -> None:
    parent = _real_parent(root, member.name)
    path = os.path.join(parent, posixpath.basename(member.name))
    if os.path.islink(path) or os.path.isdir(path):
        raise ArchiveError(f"refusing archive member {member.name!r}: a link or folder is already there")
    if os.path.exists(path):
        os.unlink(path)  # a later member of the same name wins, as with tar
    source = tar.extractfile(member)
    if source is None:
        raise ArchiveError(f"refusing archive member {member.name!r}: no data")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ArchiveError("the archive unpacks to more bytes than its headers say (or than the "
                                   "limit)")
            out.write(chunk)
    os.chmod(path, 0o755 if member.mode & 0o111 else 0o644)


def _make_link(member: tarfile.TarInfo, root: str) -> str:
    parent = _real_parent(root, member.name)
    path = os.path.join(parent, posixpath.basename(member.name))
    if os.path.lexists(path):
        raise ArchiveError(f"refusing archive member {member.name!r}: something is already there")
    if member.islnk():
        target = os.path.realpath(os.path.join(root, member.linkname))
        if not _inside(target, root) or not os.path.isfile(target):
            raise ArchiveError(f"refusing archive member {member.name!r}: link leaving the archive (a hard "
                               f"link to {member.linkname!r}, which is not a file of it)")
        os.link(target, path)
        return path
    resolved = os.path.realpath(os.path.join(parent, member.linkname))
    if not _inside(resolved, root):
        raise ArchiveError(f"refusing archive member {member.name!r}: link leaving the archive "
                           f"({member.linkname!r})")
    os.symlink(member.linkname, path)
    return path


def safe_extract(archive: Path, dest: Path, *, max_members: int = DEFAULT_MAX_MEMBERS,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 check: Callable[[tarfile.TarInfo], None] | None = None) -> list[str]:
    """Extract the tar archive ``archive`` (any compression tarfile reads) into the folder ``dest`` (created
    if missing) as the module docstring says; ``check(member)`` may refuse more (raise :class:`ArchiveError`).
    Returns the normalised member names."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        _check_headers(members, max_members, max_bytes, check)
        budget = [max_bytes]
        for member in members:
            if member.isdir():
                if member.name != ".":
                    _real_parent(root, member.name + "/x")  # creates the folder itself, checked inside
            elif member.isfile():
                _write_file(tar, member, root, budget)
        links = [_make_link(m, root) for m in members if m.islnk()]
        links += [_make_link(m, root) for m in members if m.issym()]
    for path in links:
        if not _inside(os.path.realpath(path), root):
            raise ArchiveError(f"refusing archive: {os.path.relpath(path, root)} leads outside the "
                               "destination through another link of the archive")
    return [m.name for m in members]
