"""package-application: a clear message until the control plane lands, and the upload plan behind it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tests.packaging.conftest import Result
from tests.packaging.projects import CODE, build, code_package, new_project


def test_needs_a_control_plane(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    r = cli("package-application", cwd=app)
    assert r.code == 1 and "needs --control-plane URL" in r.err and "lands later" in r.err
    assert "Traceback" not in r.err
    r = cli("package-application", "--control-plane", "https://cp.example", cwd=app)
    assert r.code == 1 and "lands with the control plane" in r.err


def test_dry_run_lists_the_upload(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    r = cli("package-application", "--dry-run", "--packages-path", f"packages/{CODE}", cwd=app)
    assert r.code == 0, r.err
    patch = hashlib.sha256((pkg / "package.json").read_bytes()).hexdigest()
    assert r.out.splitlines()[0] == f"CODE 1.0 (patch {patch[:12]}): 2 file(s) + package.json"
    assets = sorted(p.name for p in (app / "assets").iterdir())
    assert sorted(line.strip().removeprefix("assets/") for line in r.out.splitlines()[1:]) == assets
    next(p for p in (app / "assets").iterdir() if p.suffix == ".json").write_text("{}")
    r = cli("package-application", "--dry-run", cwd=app)
    assert r.code == 1 and "does not match the SHA-256 in its name" in r.err
