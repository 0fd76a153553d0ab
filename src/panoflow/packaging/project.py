"""A Panorama project folder on disk (``graphs/``, ``packages/``, ``assets/``) as the packaging commands edit
it.

Everything here writes atomically (a temporary file in the same folder, fsynced, renamed over the old one),
reads JSON strictly (duplicate keys, NaN and bad UTF-8 are errors with positions) and checks names against
Panorama's character rules before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from panoflow.core.manifest.jsonio import loads_strict, read_manifest_bytes
from panoflow.exceptions import PanoflowError

__all__ = [
    "DEFAULT_ACCOUNT",
    "PackageFolder",
    "PackagingError",
    "Project",
    "check_name",
    "dump_json",
    "write_bytes_atomic",
]

#: the account id the published samples use, for projects that have none yet
DEFAULT_ACCOUNT = "123456789012"
BUILTIN_ACCOUNT = "panorama"

#: Panorama's character rules (from its JSON schemas), by what is named
_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "account": (re.compile(r"^[A-Za-z0-9_$]+$"), 64, ("letters, digits, '_' and '$' (AWS account ids are 12 "
                                                      "digits)")),
    "package": (re.compile(r"^[A-Za-z0-9_\-]+$"), 128, "letters, digits, '_' and '-'"),
    "version": (re.compile(r"^[0-9]+\.[0-9]+$"), 255, "<major>.<minor>, e.g. 1.0"),
    "asset": (re.compile(r"^[A-Za-z0-9_$\-]+$"), 255, "letters, digits, '_', '-' and '$'"),
    "node": (re.compile(r"^[A-Za-z0-9_$\-]+$"), 255, "letters, digits, '_', '-' and '$'"),
    "interface": (re.compile(r"^[A-Za-z0-9_\-]+$"), 128, "letters, digits, '_' and '-'"),
    "project": (re.compile(r"^[A-Za-z0-9_\-]+$"), 255, "letters, digits, '_' and '-'"),
}

_FOLDER = re.compile(r"^(?P<account>[^-]+)-(?P<name>.+)-(?P<version>[0-9]+\.[0-9]+)$")


class PackagingError(PanoflowError, ValueError):
    """A packaging command cannot do what it was asked (bad name, missing file, not a project...)."""


def check_name(kind: str, value: str, flag: str = "") -> str:
    """``value`` when it is a valid Panorama ``kind`` name, else :class:`PackagingError` naming the rule."""
    pattern, longest, rule = _RULES[kind]
    where = f"{flag} " if flag else ""
    if not value or not pattern.match(value) or len(value) > longest:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise PackagingError(f"{where}{shown!r} is not a valid {kind} name: use {rule}, at most {longest} "
                             "characters")
    if kind == "account" and value == BUILTIN_ACCOUNT:
        raise PackagingError(
            f"{where}'panorama' is the account of Panorama's stock packages; choose your own"
        )
    return value


def dump_json(doc: Any) -> bytes:
    """JSON as panorama-cli writes it (4-space indent), with a final newline."""
    return (json.dumps(doc, indent=4, ensure_ascii=False) + "\n").encode("utf-8")


#: marker written last into a cached folder: a folder without it is unfinished and is rebuilt
DONE_MARKER = ".complete"


def publish_folder(tmp: Path, final: Path, marker_text: str) -> None:
    """Mark the freshly built ``tmp`` complete and move it to ``final`` in one rename. If another process
    published ``final`` first (rename fails), its complete copy is kept."""
    (tmp / DONE_MARKER).write_text(marker_text + "\n")
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / DONE_MARKER).is_file():
            raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class PackageFolder:
    """``packages/<account>-<name>-<version>/``."""

    path: Path
    account: str
    name: str
    version: str

    @property
    def package_json(self) -> Path:
        return self.path / "package.json"

    @property
    def qualified(self) -> str:
        return f"{self.account}::{self.name}"

    @classmethod
    def parse(cls, path: Path) -> PackageFolder | None:
        match = _FOLDER.match(path.name)
        if not match:
            return None
        return cls(path, match["account"], match["name"], match["version"])


class Project:
    """The project folder ``root``. Open one with :meth:`open` (which checks it is a project)."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def open(cls, path: Path | None = None, *, need: tuple[str, ...] = ("graphs", "packages")) -> Project:
        root = Path(path) if path is not None else Path.cwd()
        if not root.is_dir():
            raise PackagingError(f"project folder {str(root)!r} does not exist")
        missing = [d for d in need if not (root / d).is_dir()]
        if missing:
            raise PackagingError(
                f"{root.resolve()} is not a Panorama project (it has no "
                f"{', '.join(d + '/' for d in missing)}): run the command in the project folder or pass "
                "--project-dir DIR (panoflow init-project --name NAME creates one)")
        return cls(root.resolve())

    # -- files -----------------------------------------------------------------------------------------------
    @property
    def assets(self) -> Path:
        return self.root / "assets"

    def display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def read_json(self, path: Path) -> Any:
        """The JSON document at ``path`` (strict); :class:`~panoflow.exceptions.ManifestError` says what is
        wrong."""
        file = self.display(path)
        return loads_strict(read_manifest_bytes(path, file), file)

    def write_json(self, path: Path, doc: Any) -> None:
        write_bytes_atomic(path, dump_json(doc))

    def graph_files(self) -> list[Path]:
        return sorted(p for p in (self.root / "graphs").glob("*/graph.json") if p.is_file())

    def graph_file(self) -> Path:
        """The project's one ``graphs/*/graph.json``."""
        found = self.graph_files()
        if len(found) == 1:
            return found[0]
        if not found:
            raise PackagingError(f"no graphs/<app>/graph.json in {self.root}; panoflow init-project creates "
                                 "one")
        names = ", ".join(self.display(p) for p in found)
        raise PackagingError(f"several application graphs ({names}); keep one per project")

    def package_folders(self) -> list[PackageFolder]:
        out = []
        for path in sorted((self.root / "packages").iterdir()):
            folder = PackageFolder.parse(path) if path.is_dir() else None
            if folder is not None:
                out.append(folder)
        return out

    def package_folder(self, text: str | os.PathLike[str]) -> PackageFolder:
        """A package folder given as a path (relative to the working directory or to the project) or a folder
        name under ``packages/``."""
        given = Path(text)
        for candidate in (given, self.root / given, self.root / "packages" / given):
            if candidate.is_dir():
                folder = PackageFolder.parse(candidate.resolve())
                if folder is None:
                    raise PackagingError(f"{candidate}: a package folder is named "
                                         "<account>-<name>-<version>, e.g. "
                                         "packages/123456789012-MY_CODE-1.0")
                if not folder.package_json.is_file():
                    raise PackagingError(f"{self.display(folder.path)} has no package.json")
                return folder
        raise PackagingError(f"package folder {str(text)!r} not found (looked in the working directory, "
                             f"{self.root} and its packages/)")

    def accounts(self) -> list[str]:
        """Accounts the project already uses (graph packages first, then package folders), in order seen."""
        seen: dict[str, None] = {}
        for graph in self.graph_files():
            try:
                doc = self.read_json(graph)
                refs = doc["nodeGraph"]["packages"]
                for ref in refs:
                    account = str(ref["name"]).partition("::")[0]
                    if account and account != BUILTIN_ACCOUNT:
                        seen.setdefault(account)
            except (PanoflowError, KeyError, TypeError):
                continue
        for folder in self.package_folders():
            seen.setdefault(folder.account)
        return list(seen)

    def default_account(self) -> str:
        found = self.accounts()
        return found[0] if found else DEFAULT_ACCOUNT

    # -- assets ----------------------------------------------------------------------------------------------
    def add_asset_bytes(self, data: bytes, suffix: str) -> str:
        """Store ``data`` as ``assets/<sha256><suffix>``; return that file name."""
        name = hashlib.sha256(data).hexdigest() + suffix
        target = self.assets / name
        if not (target.is_file() and _same_size(target, len(data))):
            write_bytes_atomic(target, data)
        return name

    def add_asset_file(self, source: Path, suffix: str) -> str:
        """Copy ``source`` into ``assets/`` as ``<sha256><suffix>`` (hashed while copied); return the name."""
        with open(source, "rb") as fh:
            return self.add_asset_stream(fh, suffix)

    def add_asset_stream(self, stream: BinaryIO, suffix: str) -> str:
        self.assets.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=".asset.", suffix=".tmp", dir=self.assets)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            name = digest.hexdigest() + suffix
            os.replace(tmp, self.assets / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name

    def write_asset(self, write: Callable[[BinaryIO], object], suffix: str) -> tuple[str, int]:
        """Let ``write`` fill a new file in ``assets/``, then name it ``<sha256><suffix>``; return (name,
        size)."""
        self.assets.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".asset.", suffix=".tmp", dir=self.assets)
        try:
            with os.fdopen(fd, "wb") as raw:
                sink = _HashingWriter(raw)
                # a raw binary file (io.RawIOBase), which typing.BinaryIO does not describe
                write(cast(BinaryIO, sink))
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, 0o644)
            name = sink.digest.hexdigest() + suffix
            os.replace(tmp, self.assets / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name, sink.size

    def asset_references(self) -> Iterator[tuple[PackageFolder, str]]:
        """Every (package, file name) that a package.json's assets refer to in ``assets/``."""
        for folder in self.package_folders():
            try:
                doc = self.read_json(folder.package_json)
                assets = doc["nodePackage"].get("assets", [])
            except (PanoflowError, KeyError, TypeError, AttributeError):
                continue
            for asset in assets if isinstance(assets, list) else ():
                for impl in asset.get("implementations", []) if isinstance(asset, dict) else ():
                    if isinstance(impl, dict) and impl.get("type") != "system":
                        for key in ("assetUri", "descriptorUri"):
                            if isinstance(impl.get(key), str):
                                yield folder, impl[key]

    def remove_unreferenced(self, names: list[str]) -> list[str]:
        """Delete the ``assets/`` files in ``names`` that no package refers to any more; return those
        deleted."""
        used = {name for _, name in self.asset_references()}
        removed = []
        for name in dict.fromkeys(names):
            path = self.assets / name
            if name and "/" not in name and name not in used and path.is_file():
                path.unlink()
                removed.append(name)
        return removed


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what goes through it."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.out.write(data)
        self.size += len(data)
        return len(data)


def _same_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False
