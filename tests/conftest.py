"""Suite-wide fixtures, and the shared fixture plugins of :mod:`tests.support` registered once for every
folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

if TYPE_CHECKING:
    from tests.support.tempdirs import TraversableTemp

# before anything imports tests.support: plain asserts in the helpers report their values, as in test modules
pytest.register_assert_rewrite("tests.support")

#: fixtures shared across folders (pytest allows ``pytest_plugins`` only in this, the rootdir's conftest)
pytest_plugins = [
    "tests.support.control_plane",
    "tests.support.daemons",
    "tests.support.rtsp",
    "tests.support.wheels",
]


@pytest.fixture(autouse=True)
def _default_structlog() -> None:
    """In-process CLI tests configure structlog onto a stream pytest captures and later closes: start every
    test from structlog's defaults so no log call writes to a closed file."""
    structlog.reset_defaults()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tmp_path_factory(tmp_path_factory: pytest.TempPathFactory) -> TraversableTemp:
    """pytest's, its folders passable by the sandbox uid (:class:`tests.support.tempdirs.TraversableTemp`)."""
    from tests.support.tempdirs import TraversableTemp

    return TraversableTemp(tmp_path_factory)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's, passable by the sandbox uid."""
    from tests.support.tempdirs import TraversableTemp

    return TraversableTemp.open_for_sandbox(tmp_path)
