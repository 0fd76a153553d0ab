"""Fixtures for the built-in plugin tests: real H.264 clips, made once per session (the helpers that drive
sources and sinks without a runtime: :mod:`tests.support.sources_and_sinks`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import make_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plugin-clips")


@pytest.fixture(scope="session")
def clips(clip_dir: Path) -> dict[str, Path]:
    """One 30-frame 320x240 clip per container (mp4, mkv, raw .264, mpegts)."""
    return {
        fmt: make_clip(clip_dir / f"c.{fmt}", frames=30, size=(320, 240), container=fmt, seed=3)
        for fmt in ("mp4", "mkv", "h264", "ts")
    }
