"""Code assets for the packaging tests without build-container (:func:`code_asset_file`) and a run of an
application environment's interpreter as a sandbox would run it (:func:`run_python`)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

from panoflow.packaging.archive import TreeArchive
from panoflow.packaging.pyenv import AppEnvironment


def code_asset_file(folder: Path, files: dict[str, bytes],
                    wheels: list[Path] = ()) -> Path:  # type: ignore[assignment]
    """A code asset holding ``files`` and ``wheels``, named by its SHA-256 as build-container names them."""
    archive = TreeArchive()
    for name, data in files.items():
        archive.add_bytes(name, data)
    for wheel in wheels:
        archive.add_file(f"wheels/{wheel.name}", wheel)
    buf = io.BytesIO()
    archive.write(buf)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(buf.getvalue()).hexdigest() + ".tar.gz")
    path.write_bytes(buf.getvalue())
    return path


def run_python(env: AppEnvironment, code: str) -> str:
    """Run ``code`` with the environment's interpreter and only its environment variables, as a sandbox
    would."""
    proc = subprocess.run([str(env.python), "-c", code], env={"PATH": os.defpath, **env.env},
                          capture_output=True, text=True, timeout=60, cwd="/", check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()
