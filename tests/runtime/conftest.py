from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_panoflow(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """``panoflow ...`` in a child process (the sandbox needs a process of its own), JSON logs on stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "panoflow", "--log-format", "json", *args],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,  # type: ignore[call-overload]
    )


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.media import make_clip

    d = tmp_path_factory.mktemp("clips")
    return {
        "a": make_clip(d / "a.mp4", frames=40, size=(320, 240), seed=1),
        "b": make_clip(d / "b.mkv", frames=25, size=(320, 240), container="mkv", seed=2),
    }
