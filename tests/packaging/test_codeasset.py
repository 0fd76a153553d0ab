"""Running a built code asset: verified extraction, and its own Python environment, apart from panoflow's."""

from __future__ import annotations

import hashlib
import io
import os
import sysconfig
import tarfile
from pathlib import Path

import pytest

from panoflow.exceptions import NodeError
from panoflow.packaging.codeasset import prepare_code_asset, stale_sources
from panoflow.packaging.pyenv import app_environment
from tests.packaging.code_assets import code_asset_file, run_python
from tests.packaging.wheelfactory import make_wheel


def test_requirements_install_beside_panoflow_never_into_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    own = [make_wheel(wheels, "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"}),
           # panoflow has pluggy
           make_wheel(wheels, "pluggy", "0.0.1", {"pluggy/__init__.py": "PINNED = True\n"})]
    archive = code_asset_file(tmp_path / "assets", {"panorama/app.py": b"print('hi')\n"}, own)
    cache = tmp_path / "state"
    asset = prepare_code_asset(archive, cache / "code-assets", node_id="code_node")
    assert [w.name for w in asset.wheels] == sorted(w.name for w in own)
    assert not (cache / "envs").exists()  # preparing extracts; the environment is made for the chosen Python
    env = app_environment(asset, envs_dir=cache / "envs", requested=None, node_id="code_node")
    assert {"pf-test-dep==0.2", "pluggy==0.0.1"} <= set(env.installed)  # every requirement, with its own pin
    panoflow_site = Path(sysconfig.get_paths()["purelib"])
    assert not list(panoflow_site.glob("pf_test_dep*"))  # panoflow's environment is untouched
    root = env.python.parent.parent
    assert (root / "pyvenv.cfg").is_file()  # a real virtual environment
    assert run_python(
        env, "import pf_test_dep, pluggy; print(pf_test_dep.__file__, pluggy.PINNED)"
    ).split() == [str(env.site_packages / "pf_test_dep.py"), "True"]  # type: ignore[operator]
    assert run_python(env, "import importlib.util; print(importlib.util.find_spec('panoflow'))") == "None"
    # cached: a second run reuses the extraction and the environment
    marker = root / ".complete"
    stamp = marker.stat().st_mtime_ns
    again = prepare_code_asset(archive, cache / "code-assets")
    assert app_environment(again, envs_dir=cache / "envs", requested=None, node_id="code_node") == env
    assert marker.stat().st_mtime_ns == stamp


def test_only_what_a_run_needs_is_extracted(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # a docker export: absolute links, devices, /etc
        for name, data in (("./panorama/app.py", b"x"), ("./etc/passwd", b"root"),
                           ("./panorama/sub/m.py", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "/usr/bin/dash"
        tar.addfile(link)
        dev = tarfile.TarInfo("./dev/null")
        dev.type = tarfile.CHRTYPE
        tar.addfile(dev)
    archive = tmp_path / (hashlib.sha256(buf.getvalue()).hexdigest() + ".tar.gz")
    archive.write_bytes(buf.getvalue())
    asset = prepare_code_asset(archive, tmp_path / "cache")
    assert sorted(p.relative_to(asset.root).as_posix() for p in asset.root.rglob("*")) == [
        "panorama", "panorama/app.py", "panorama/sub", "panorama/sub/m.py"]
    assert asset.workdir == "/panorama" and asset.wheels == []


def test_unsafe_or_altered_assets_are_refused(tmp_path: Path) -> None:
    good = code_asset_file(tmp_path / "a", {"panorama/app.py": b"x"})
    altered = tmp_path / "b" / good.name
    altered.parent.mkdir()
    altered.write_bytes(good.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(NodeError, match="does not match the SHA-256 in its name"):
        prepare_code_asset(altered, tmp_path / "cache")
    empty = code_asset_file(tmp_path / "c", {"other/file": b"x"})
    with pytest.raises(NodeError, match="has no panorama/ folder"):
        prepare_code_asset(empty, tmp_path / "cache")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("panorama/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tar.addfile(link)
    evil = tmp_path / (hashlib.sha256(buf.getvalue()).hexdigest() + ".tar.gz")
    evil.write_bytes(buf.getvalue())
    with pytest.raises(NodeError, match="link leaving the archive"):
        prepare_code_asset(evil, tmp_path / "cache")


def test_wheels_for_another_machine_say_how_to_rebuild(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "pf-test-arm", "1.0", {"pf_test_arm.py": ""})
    foreign = wheel.with_name("pf_test_arm-1.0-cp27-cp27mu-linux_armv7l.whl")
    wheel.rename(foreign)
    asset = prepare_code_asset(code_asset_file(tmp_path / "a", {"panorama/app.py": b""}, [foreign]),
                               tmp_path / "cache")
    with pytest.raises(NodeError, match=r"pf_test_arm-1\.0-cp27-cp27mu-linux_armv7l\.whl does not fit Python "
                                        r"3\.\d+\.\d+ .* rebuild the code asset for it \(panoflow "
                                        r"build-container --python-version"):
        app_environment(asset, envs_dir=tmp_path / "envs", requested=None, node_id="code_node")
    # nothing half-made is left
    assert [p.name for p in (tmp_path / "envs").iterdir() if p.suffix != ".lock"] == []


def test_stale_sources(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "src").mkdir(parents=True)
    (pkg / "src" / "app.py").write_text("x")
    archive = tmp_path / "asset.tar.gz"
    archive.write_bytes(b"")
    os.utime(pkg / "src" / "app.py", (1, 1))
    assert stale_sources(pkg, archive) == []
    (pkg / "package.json").write_text("{}")  # build-container itself writes package.json afterwards
    (pkg / "src" / "new.py").write_text("y")
    os.utime(archive, (100, 100))
    assert stale_sources(pkg, archive) == ["src/new.py"]
