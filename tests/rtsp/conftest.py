"""Fixtures for the RTSP tests: the clips the servers stream (the servers themselves:
:mod:`tests.support.rtsp`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import make_clip


@pytest.fixture(scope="session")
def rtsp_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("rtsp-clips")
    return {
        "small": make_clip(d / "small.mp4", frames=90, size=(320, 240), seed=11),
        "long": make_clip(d / "long.mp4", frames=600, size=(320, 240), seed=12),
        "other": make_clip(d / "other.mp4", frames=90, size=(352, 288), seed=13),
    }


@pytest.fixture(scope="session")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2560x1440 (3.7 megapixels): the appliance would scale it to 1920x1080."""
    return make_clip(tmp_path_factory.mktemp("rtsp-big") / "big.mp4", frames=20, size=(2560, 1440), seed=15)
