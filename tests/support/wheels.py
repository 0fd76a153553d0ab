"""The wheels aws-panorama-sample's requirements pin (opencv 4.6, numpy 1.x, boto3 1.24), fetched once from
PyPI into the shared cache ``.cache/wheels/app-env`` (fixture: ``pinned_wheels``), and :func:`fetch_wheels`
for other requirements into the same cache."""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_CACHE = REPO / ".cache" / "wheels" / "app-env"
#: what the developer guide's sample pins, plus what opencv 4.6 needs (its wheels are built against numpy 1.x)
PINNED = ["opencv-python-headless==4.6.0.66", "numpy<2", "boto3==1.24.*"]


def fetch_wheels(dest: Path, python: str, requirements: list[str]) -> None:
    """``pip download`` ``requirements`` for ``python`` into the shared cache once (a lock keeps parallel runs
    from fetching twice); skips the test where PyPI cannot be reached."""
    dest.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    done = dest / f".done-{python}-{key}"
    with open(dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                               "-d", str(dest), *requirements], capture_output=True, text=True, timeout=600,
                              check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot fetch {requirements} from PyPI: {proc.stderr.strip()[-400:]}")
        done.write_text("\n".join(requirements))


@pytest.fixture(scope="session")
def pinned_wheels() -> Path:
    """The folder holding the sample's pinned wheels for the default application interpreter."""
    from panoflow.packaging.interpreters import default_interpreter

    fetch_wheels(WHEEL_CACHE, default_interpreter().short_version, PINNED)
    return WHEEL_CACHE
