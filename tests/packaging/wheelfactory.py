"""Tiny, real, pure-Python wheels written by hand (zip + dist-info), so packaging tests need no network."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["make_wheel"]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, modules: Mapping[str, str], *,
               requires: Sequence[str] = ()) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into ``folder``: ``modules`` maps a module file (``pkg.py``
    or ``pkg/__init__.py``) to its source; ``requires`` become Requires-Dist lines. Deterministic bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = "Metadata-Version: 2.1\n" f"Name: {name}\n" f"Version: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files: dict[str, bytes] = {path: src.encode() for path, src in modules.items()}
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: panoflow-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path
