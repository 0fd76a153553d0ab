"""Deterministic ``.tar.gz`` archives (same inputs, same bytes, same SHA-256) and member filtering.

:class:`TreeArchive` collects entries (folders of files, single files, bytes) under archive names and writes
them sorted by name, with every parent folder present, times and owners zeroed, modes normalised (0755 folders
and executables, 0644 the rest) and a gzip header without name or time. Symbolic links are kept only when they
stay inside the archive; anything else (devices, sockets) is refused.

:func:`filter_archive` copies the members of a tar archive that a predicate keeps into a new plain tar,
streaming, so a multi-gigabyte ``docker export`` can be cut down to ``panorama/`` before
:func:`panoflow.archives.safe_extract` extracts it.

:class:`TreeArchive` is the one deterministic tar writer: code assets, model archives, container exports and
the application archives ``panoflow deploy`` sends (:func:`panoflow.daemon.app_archive.pack_app`) are all
written by it.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from panoflow.packaging.project import PackagingError, _HashingWriter

__all__ = ["TreeArchive", "filter_archive", "member_name"]

_GZIP_LEVEL = 6


def member_name(name: str) -> str:
    """An archive member's name without ``./`` prefixes or trailing slashes (``""`` for the root)."""
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


class TreeArchive:
    """Entries to write; :meth:`write` produces the archive and returns its SHA-256."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, object]] = {}  # name -> (kind, source)

    def __len__(self) -> int:
        return sum(kind != "dir" for kind, _ in self._entries.values())

    def _put(self, name: str, kind: str, source: object) -> None:
        name = member_name(name)
        if not name or ".." in name.split("/"):
            raise PackagingError(f"invalid archive member name {name!r}")
        parts = name.split("/")
        for i in range(1, len(parts)):
            self._entries.setdefault("/".join(parts[:i]), ("dir", None))
        self._entries[name] = (kind, source)

    def add_bytes(self, name: str, data: bytes, *, executable: bool = False) -> None:
        self._put(name, "bytes-x" if executable else "bytes", data)

    def add_file(self, name: str, path: Path) -> None:
        self._put(name, "file", path)

    def merge(self, other: TreeArchive) -> None:
        """Add ``other``'s entries (they win over entries of the same name)."""
        for name, (kind, source) in other._entries.items():
            self._put(name, kind, source)

    def add_tree(self, name: str, root: Path) -> None:
        """Everything under the folder ``root`` (links not followed), under archive folder ``name`` (``""``:
        the archive's root)."""
        base = member_name(name)
        if base:
            self._put(base, "dir", None)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            here = Path(dirpath)
            for entry in sorted(dirnames + filenames):
                path = here / entry
                rel = path.relative_to(root).as_posix()
                arc = f"{base}/{rel}" if base else rel
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(path)
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(arc), target))
                    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                        raise PackagingError(f"{path} is a link leaving the archive ({target}); copy the "
                                             "file instead")
                    self._put(arc, "link", target)
                elif stat.S_ISDIR(st.st_mode):
                    self._put(arc, "dir", None)
                elif stat.S_ISREG(st.st_mode):
                    self._put(arc, "file", path)
                else:
                    raise PackagingError(f"{path} is not a regular file, folder or link; remove it from the "
                                         "package")

    def write(self, out: BinaryIO) -> str:
        """Write the gzip-compressed archive to ``out``; return its SHA-256 (hex)."""
        hashing = _HashingWriter(out)
        with gzip.GzipFile(filename="", fileobj=hashing, mode="wb", mtime=0,
                           compresslevel=_GZIP_LEVEL) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self._entries):
                kind, source = self._entries[name]
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(source), 0o777
                    tar.addfile(info)
                elif kind == "file":
                    path = Path(str(source))
                    info.size = path.stat().st_size
                    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    data = bytes(source)  # type: ignore[call-overload]
                    info.size, info.mode = len(data), 0o755 if kind == "bytes-x" else 0o644
                    tar.addfile(info, io.BytesIO(data))
        return hashing.digest.hexdigest()


def filter_archive(archive: Path, keep: Callable[[str], bool], out: BinaryIO) -> int:
    """Copy the members of ``archive`` (any compression) whose :func:`member_name` ``keep`` accepts into the
    plain tar ``out``, in one streaming pass; hard links whose target was not kept are dropped. Returns how
    many members were kept. Raises ``tarfile.TarError`` for a damaged archive."""
    kept: set[str] = set()
    with tarfile.open(archive, "r|*") as src, tarfile.open(fileobj=out, mode="w",
                                                           format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            name = member_name(member.name)
            if not name or not keep(name):
                continue
            if member.islnk() and member_name(member.linkname) not in kept:
                continue
            member.name = name
            if member.islnk():
                member.linkname = member_name(member.linkname)
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
            kept.add(name)
    return len(kept)
