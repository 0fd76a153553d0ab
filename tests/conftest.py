"""Suite-wide fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import structlog


@pytest.fixture(autouse=True)
def _default_structlog() -> None:
    """In-process CLI tests configure structlog onto a stream pytest captures and later closes: start every test
    from structlog's defaults so no log call writes to a closed file."""
    structlog.reset_defaults()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _TraversableTemp:
    """pytest's temporary folders, passable (o+x, never listable) by the unprivileged uid that application
    sandboxes and a root daemon's instances run as. pytest makes them 0700; a device's state folder
    (/var/lib/panoflow) is reachable the same way."""

    def __init__(self, factory: pytest.TempPathFactory):
        self._factory = factory

    def __getattr__(self, name: str) -> object:
        return getattr(self._factory, name)

    @staticmethod
    def _open(path: Path) -> Path:
        if os.geteuid() == 0:
            for folder in (path, *path.parents):
                if folder == Path(tempfile.gettempdir()) or folder == folder.parent:
                    break
                mode = folder.stat().st_mode & 0o777
                if not mode & 0o001:
                    os.chmod(folder, mode | 0o011)
        return path

    def getbasetemp(self) -> Path:
        return self._open(self._factory.getbasetemp())

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        return self._open(self._factory.mktemp(basename, numbered))


@pytest.fixture(scope="session")
def tmp_path_factory(tmp_path_factory: pytest.TempPathFactory) -> _TraversableTemp:
    return _TraversableTemp(tmp_path_factory)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    return _TraversableTemp._open(tmp_path)
