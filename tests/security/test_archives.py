"""Archive extraction (issue #16): crafted archives against the one extractor (``panoflow.archives``) and
every caller of it (model store, daemon application archives), on the interpreter in use and with
``tarfile``'s ``data_filter`` removed as on Python 3.10.0-3.10.11 and 3.11.0-3.11.3. Nothing may be written
outside."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from panoflow.archives import ArchiveError, safe_extract

Member = tuple[str, str, bytes | str]  # (name, kind: file|dir|sym|hard|fifo|char, data or link target)


def make_tar(path: Path, members: list[Member], *, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o4755 if name.endswith(".suid") else 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE}[kind]
            if kind in ("sym", "hard"):
                assert isinstance(data, str)
                info.linkname = data
            tar.addfile(info)
    return path


@pytest.fixture(params=["with data_filter", "without data_filter"])
def filter_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both interpreters: this one, and one whose tarfile has no extraction filters."""
    if request.param == "without data_filter":
        for name in ("data_filter", "tar_filter", "fully_trusted_filter"):
            monkeypatch.delattr(tarfile, name, raising=False)
    yield request.param


def _snapshot(root: Path, dest: Path) -> set[Path]:
    """Everything under ``root`` that is not under ``dest`` (links not followed)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path != dest and dest not in path.parents:
                out.add(path)
    return out


def _dest(tmp_path: Path) -> Path:
    """Deep enough that ``graphs/x/x/x/x/l -> ../../../../outside`` lands in ``tmp_path/outside``."""
    return tmp_path / "a" / "b" / "dest"


# the review's 5-member escape: x -> ., x/x/x/x/l -> ../../../../outside, then a file through l
CHAIN: list[Member] = [
    ("graphs", "dir", b""),
    ("graphs/x", "sym", "."),
    ("graphs/x/x/x/x/l", "sym", "../../../../outside"),
    ("graphs/l", "dir", b""),
    ("graphs/l/pwned.txt", "file", b"owned"),
]


@pytest.mark.parametrize("members", [
    CHAIN,
    [("graphs/x", "sym", "."), ("graphs/x/x/x/x/l", "sym", "../../../../outside"),
     ("graphs/l/pwned.txt", "file", b"owned")],
    [("a", "sym", "../outside"), ("a/pwned.txt", "file", b"owned")],
    [("a", "sym", "/tmp"), ("b", "file", b"x")],
    [("../outside/pwned.txt", "file", b"owned")],
    [("/abs/pwned.txt", "file", b"owned")],
    [("a/../../outside/pwned.txt", "file", b"owned")],
    [("h", "hard", "../outside/secret")],
    [("fifo", "fifo", b"")],
    [("dev", "char", b"")],
    # a link that is inside when made, turned outward by a later one
    [("d", "dir", b""), ("d/a", "sym", "n/../../../outside"), ("d/n", "sym", "..")],
], ids=["chain5-with-dir", "chain5", "link-then-file", "absolute-link", "dotdot-file", "absolute-file",
        "dotdot-middle", "hardlink-out", "fifo", "device", "late-redirect"])
def test_crafted_archives_write_nothing_outside(tmp_path: Path, filter_mode: str,
                                                members: list[Member]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not link me")
    archive = make_tar(tmp_path / "evil.tar.gz", members)
    dest = _dest(tmp_path)
    dest.mkdir(parents=True)
    before = _snapshot(tmp_path, dest)
    with pytest.raises(ArchiveError):
        safe_extract(archive, dest)
    assert _snapshot(tmp_path, dest) == before
    assert not (outside / "pwned.txt").exists()
    for path in dest.rglob("*"):  # whatever was written stays inside
        assert os.path.realpath(path).startswith(str(dest.resolve()) + os.sep) or path.is_symlink()


def test_a_good_archive_extracts_with_links_inside(tmp_path: Path, filter_mode: str) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", [
        ("graphs/app/graph.json", "file", b"{}"), ("assets/m.onnx", "file", b"model"),
        ("assets/latest.onnx", "sym", "m.onnx"), ("assets/copy.onnx", "hard", "assets/m.onnx"),
        ("run.sh.suid", "file", b"#!/bin/sh\n")])
    names = safe_extract(archive, tmp_path / "dest")
    assert "assets/latest.onnx" in names
    assert (tmp_path / "dest" / "assets" / "latest.onnx").read_bytes() == b"model"
    assert (tmp_path / "dest" / "assets" / "copy.onnx").read_bytes() == b"model"
    assert (tmp_path / "dest" / "run.sh.suid").stat().st_mode & 0o7777 == 0o755  # no set-uid


def test_member_count_and_size_caps(tmp_path: Path) -> None:
    many = make_tar(tmp_path / "many.tar.gz", [(f"f{i}", "file", b"x") for i in range(50)])
    with pytest.raises(ArchiveError, match="50 members; at most 10"):
        safe_extract(many, tmp_path / "d1", max_members=10)
    # a gzip bomb: 64 MiB of zeros in a few KiB
    bomb = make_tar(tmp_path / "bomb.tar.gz", [("zeros", "file", bytes(64 << 20))])
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ArchiveError, match="more than 1048576 bytes"):
        safe_extract(bomb, tmp_path / "d2", max_bytes=1 << 20)
    assert not (tmp_path / "d2" / "zeros").exists()


def test_a_link_already_in_the_destination_is_not_followed(tmp_path: Path) -> None:
    """Extracting into a folder that holds a link out (a second archive into the same folder)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").symlink_to(outside)
    with pytest.raises(ArchiveError, match="leads outside"):
        safe_extract(make_tar(tmp_path / "x.tar.gz", [("a/pwned.txt", "file", b"owned")]), dest)
    assert list(outside.iterdir()) == []


def _extractor(archive: Path, dest: Path) -> object:
    """What the model store, the compiler and packaging call (panoflow.archives, the one extractor)."""
    dest.mkdir(parents=True, exist_ok=True)
    return safe_extract(archive, dest)


def _daemon(archive: Path, dest: Path) -> object:
    from panoflow.daemon.app_archive import extract_archive

    return extract_archive(archive, dest)


@pytest.mark.parametrize("caller", [_extractor, _daemon], ids=["archives", "daemon"])
def test_every_caller_refuses_the_chain(tmp_path: Path, filter_mode: str,
                                        caller: Callable[[Path, Path], object]
                                        ) -> None:
    (tmp_path / "outside").mkdir()
    archive = make_tar(tmp_path / "evil.tar.gz", CHAIN)
    dest = _dest(tmp_path)
    dest.parent.mkdir(parents=True)
    before = _snapshot(tmp_path, dest)
    with pytest.raises(ValueError):  # ArchiveError (both callers' errors are ValueErrors)
        caller(archive, dest)
    assert {p for p in _snapshot(tmp_path, dest) if ".extract-" not in p.name} == before
    assert not (tmp_path / "outside" / "pwned.txt").exists()


def test_a_damaged_archive_is_a_tar_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(tarfile.TarError):
        safe_extract(bad, tmp_path / "d")
