"""pytest's temporary folders made passable (o+x, never listable) for the unprivileged uid that application
sandboxes and a root daemon's instances run as (tests/conftest.py overrides ``tmp_path`` and
``tmp_path_factory`` with them; benchmarks use them the same way)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


class TraversableTemp:
    """A ``tmp_path_factory`` whose folders the sandbox uid can pass through. pytest makes them 0700; a
    device's state folder (/var/lib/panoflow) is reachable the same way."""

    def __init__(self, factory: pytest.TempPathFactory):
        self._factory = factory

    def __getattr__(self, name: str) -> object:
        return getattr(self._factory, name)

    @staticmethod
    def open_for_sandbox(path: Path) -> Path:
        """``path`` and its parents up to the system's temporary folder get o+x (as root only); returns
        ``path``."""
        if os.geteuid() == 0:
            for folder in (path, *path.parents):
                if folder == Path(tempfile.gettempdir()) or folder == folder.parent:
                    break
                mode = folder.stat().st_mode & 0o777
                if not mode & 0o001:
                    os.chmod(folder, mode | 0o011)
        return path

    def getbasetemp(self) -> Path:
        return self.open_for_sandbox(self._factory.getbasetemp())

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        return self.open_for_sandbox(self._factory.mktemp(basename, numbered))
