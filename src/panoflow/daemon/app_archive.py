"""Application archives: how ``panoflow deploy`` ships an application folder to the daemon.

The client packs ``graphs/``, ``packages/`` and ``assets/`` into a deterministic ``tar.gz`` (sorted names,
zero times and owners: :class:`panoflow.packaging.archive.TreeArchive`, the writer every archive panoflow
makes goes through), so the same folder always gives the same bytes and the daemon's content-addressed
store (keyed by the archive's sha256) keeps one copy. The daemon extracts only what is safe: regular files,
directories and links that stay inside the folder; no absolute names, no ``..``, no devices or fifos, bounded
sizes (:mod:`panoflow.archives`, the extractor every archive goes through).
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from panoflow.exceptions import PanoflowError
from panoflow.packaging.archive import TreeArchive

__all__ = ["APP_FOLDERS", "ArchiveError", "extract_archive", "pack_app"]

#: the parts of an application folder that are deployed
APP_FOLDERS = ("graphs", "packages", "assets")
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 16 * 1024**3


class ArchiveError(PanoflowError, ValueError):
    """An uploaded archive is not a safe, readable application folder."""


def pack_app(app_dir: Path, out: BinaryIO) -> str:
    """Write ``app_dir``'s deployable folders to ``out`` as a deterministic tar.gz (panoflow's one
    deterministic writer, :class:`panoflow.packaging.archive.TreeArchive`); return its sha256 (hex). A link
    leaving the folder, or anything but files, folders and links, is refused here
    (:class:`~panoflow.packaging.project.PackagingError`) rather than by the daemon."""
    app_dir = app_dir.resolve()
    present = [name for name in APP_FOLDERS if (app_dir / name).is_dir()]
    if "graphs" not in present or "packages" not in present:
        raise ArchiveError(f"{app_dir} is not a Panorama application folder (it needs graphs/ and packages/)")
    archive = TreeArchive()
    for top in present:
        archive.add_tree(top, app_dir / top)
    return archive.write(out)


def _safe_name(name: str) -> str:
    if not name or "\x00" in name or name.startswith("/") or "\\" in name:
        raise ArchiveError(f"unsafe name in archive: {name!r}")
    norm = posixpath.normpath(name)
    if norm == "." or norm.startswith("../") or norm == ".." or "/../" in f"/{name}/":
        raise ArchiveError(f"unsafe name in archive: {name!r}")
    top = norm.split("/", 1)[0]
    if top not in APP_FOLDERS:
        raise ArchiveError(f"unexpected entry {name!r}: an application archive holds only "
                           f"{', '.join(APP_FOLDERS)}")
    return norm


def _check_member(info: tarfile.TarInfo) -> None:
    """What an application archive may hold besides what any archive may (``panoflow.archives``): names under
    graphs/, packages/ and assets/ only."""
    _safe_name(info.name)
    if info.islnk():
        _safe_name(info.linkname)


def extract_archive(archive: Path, dest: Path) -> int:
    """Check ``archive`` (tar.gz) and extract it into the new folder ``dest`` (created atomically: a temporary
    sibling renamed into place) with panoflow's one safe extractor (:func:`panoflow.archives.safe_extract`).
    Returns the number of entries. Raises :class:`ArchiveError` when unsafe or unreadable; ``dest`` is then
    not created."""
    from panoflow import archives

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        try:
            names = archives.safe_extract(archive, tmp, max_members=MAX_MEMBERS, max_bytes=MAX_UNPACKED_BYTES,
                                          check=_check_member)
        except ArchiveError:
            raise
        except archives.ArchiveError as exc:
            raise ArchiveError(f"unsafe archive: {exc}") from None
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, UnicodeError, ValueError) as exc:
            raise ArchiveError(f"not a readable tar.gz archive: {exc}") from None
        if not any(name.split("/", 1)[0] == "graphs" for name in names):
            raise ArchiveError("archive has no graphs/ folder")
        os.chmod(tmp, 0o755)  # readable by the unprivileged uid the instances run as (mkdtemp made it 0700)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # else: the same archive was extracted meanwhile (same bytes, same content)
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(names)
