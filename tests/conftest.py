"""Suite-wide fixtures."""

from __future__ import annotations

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
