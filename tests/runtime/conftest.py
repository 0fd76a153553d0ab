"""Fixtures for the runtime tests: two real clips (``panoflow run`` itself:
:func:`tests.support.cli.run_panoflow`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``a``: 40 frames of 320x240 H.264 in MP4; ``b``: 25 frames in Matroska."""
    from tests.media import make_clip

    d = tmp_path_factory.mktemp("clips")
    return {
        "a": make_clip(d / "a.mp4", frames=40, size=(320, 240), seed=1),
        "b": make_clip(d / "b.mkv", frames=25, size=(320, 240), container="mkv", seed=2),
    }
