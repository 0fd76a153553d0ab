"""Each application's own Python environment: real pip, real wheels (opencv 4.6 with numpy 1.x, fetched once
from PyPI into .cache/wheels), real interpreters (pyenv's 3.8 where this machine has it)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from panoflow.exceptions import NodeError
from panoflow.packaging.codeasset import prepare_code_asset
from panoflow.packaging.interpreters import (
    choose_interpreter,
    default_interpreter,
    find_interpreter,
    requested_version,
)
from panoflow.packaging.pyenv import (
    AppEnvironment,
    app_environment,
    device_default_environment,
    prune_environments,
)
from tests.packaging.code_assets import code_asset_file, run_python
from tests.packaging.commands import Result
from tests.packaging.projects import build, code_package, new_project, package_json
from tests.packaging.wheelfactory import make_wheel
from tests.support.wheels import PINNED, WHEEL_CACHE, fetch_wheels

PY38 = find_interpreter("python3.8")
needs_py38 = pytest.mark.skipif(PY38 is None, reason="no python3.8 on this machine (pyenv install 3.8 adds "
                                                     "one)")


@pytest.fixture(scope="session")
def numpy38() -> Path:
    """numpy 1.24's wheel for CPython 3.8 (compiled, from PyPI)."""
    fetch_wheels(WHEEL_CACHE, "3.8", ["numpy==1.24.4"])
    return next(WHEEL_CACHE.glob("numpy-1.24.4-cp38-cp38-*.whl"))


def _fake_numpy(folder: Path) -> Path:
    """A tiny pure-Python stand-in named numpy, where only the fact that the asset ships one matters."""
    return make_wheel(folder, "numpy", "1.0", {"numpy/__init__.py": "__version__ = '1.0'\n"})


def _pinned_app(cli: Callable[..., Result], root: Path, wheels: Path, entry_path: str = "python3") -> Path:
    """A code package whose requirements.txt pins the sample's libraries, built with build-container."""
    app = new_project(cli, root)
    pkg = code_package(cli, app, app_py="import cv2\nprint(cv2.__version__)\n")
    (pkg / "src" / "requirements.txt").write_text("\n".join(PINNED) + "\n")
    desc = json.loads((pkg / "descriptor.json").read_text())
    desc["runtimeDescriptor"]["entry"]["path"] = entry_path
    (pkg / "descriptor.json").write_text(json.dumps(desc))
    r = build(cli, app, wheels)
    assert r.code == 0, r.err
    return app / "assets" / package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]


@pytest.mark.slow
# 80 MB of real wheels built, extracted, installed and byte-compiled on a shared machine
@pytest.mark.timeout(360)
def test_pinned_opencv_and_numpy1_beside_panoflows_numpy2(cli: Callable[..., Result], tmp_path: Path,
                                                         pinned_wheels: Path) -> None:
    archive = _pinned_app(cli, tmp_path, pinned_wheels)
    asset = prepare_code_asset(archive, tmp_path / "state" / "code-assets")
    envs = tmp_path / "state" / "envs"
    with structlog.testing.capture_logs() as logs:
        env = app_environment(asset, envs_dir=envs, requested="python3", node_id="code_node")
    assert [e["event"] for e in logs if e["event"] == "app_env_created"] == ["app_env_created"]
    assert importlib.metadata.version("numpy").startswith("2.")  # panoflow's own numpy
    out = run_python(env, "import cv2, numpy, boto3, sys; print(cv2.__version__, numpy.__version__, "
                       "boto3.__version__, sys.prefix, numpy.__file__)")
    cv2_version, numpy_version, boto3_version, prefix, numpy_file = out.split()
    assert cv2_version == "4.6.0" and numpy_version.startswith("1.") and boto3_version.startswith("1.24.")
    assert Path(prefix).parent == envs and Path(numpy_file).is_relative_to(prefix)
    assert "opencv-python-headless==4.6.0.66" in env.installed and f"numpy=={numpy_version}" in env.installed
    assert env.python_version == default_interpreter().version_text
    assert set(env.mounts) == {Path(prefix), default_interpreter().prefix}
    assert env.env["PYTHONNOUSERSITE"] == "1" and "PYTHONPATH" not in env.env
    # the second start creates nothing
    marker = Path(prefix) / ".complete"
    stamp = marker.stat().st_mtime_ns
    with structlog.testing.capture_logs() as logs:
        again = app_environment(asset, envs_dir=envs, requested=None, node_id="code_node")
    assert again == env and marker.stat().st_mtime_ns == stamp
    assert "app_env_created" not in [e["event"] for e in logs]
    assert sorted(p.name for p in envs.iterdir() if p.suffix != ".lock") == [Path(prefix).name]


def _asset(tmp_path: Path, wheels: Path) -> Path:
    return code_asset_file(tmp_path / "assets", {"panorama/app.py": b"print('hi')\n"},
                           sorted(wheels.glob("*.whl")))


def test_damaged_wheel_gives_a_clear_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2",
                       {"pf_test_dep.py": "WORD = 'x' * 1000\n" * 50})
    data = bytearray(wheel.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the first member's compressed bytes: the zip opens, its CRC fails
    wheel.write_bytes(bytes(data))
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    envs = tmp_path / "state" / "envs"
    with pytest.raises(NodeError, match=r"node code_node: code asset wheel "
                                        r"pf_test_dep-0\.2-py3-none-any\.whl is damaged .*rebuild the code "
                                        r"asset with panoflow build-container"):
        app_environment(asset, envs_dir=envs, requested=None, node_id="code_node")
    wheel.write_bytes(b"not a zip")
    asset = prepare_code_asset(_asset(tmp_path / "b", tmp_path / "wheels"),
                               tmp_path / "state" / "code-assets")
    with pytest.raises(NodeError, match="pf_test_dep-0.2-py3-none-any.whl is damaged"):
        app_environment(asset, envs_dir=envs, requested=None, node_id="code_node")
    assert not envs.exists() or list(envs.iterdir()) == []  # nothing half-made is left


@needs_py38
def test_requested_python38_runs_on_python38(tmp_path: Path, numpy38: Path) -> None:
    assert PY38 is not None
    make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"})
    (tmp_path / "wheels" / numpy38.name).symlink_to(numpy38)
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    with structlog.testing.capture_logs() as logs:
        env = app_environment(asset, envs_dir=tmp_path / "envs", requested="python3.8", node_id="code_node")
    assert not [e for e in logs if e["log_level"] == "warning"]
    assert env.python_version.startswith("3.8.") and PY38.prefix in env.mounts
    out = run_python(env, "import sys, numpy, pf_test_dep; print(sys.version_info[:2], numpy.__version__, "
                          "numpy.zeros(3).sum(), pf_test_dep.__file__)")
    assert out.startswith("(3, 8) 1.24.4 0.0 ") and "/lib/python3.8/site-packages/pf_test_dep.py" in out
    # bytecode made by 3.8 at creation (the sandbox mounts the environment read-only)
    assert list(env.site_packages.glob("__pycache__/pf_test_dep.cpython-38.pyc"))  # type: ignore[union-attr]
    with pytest.raises(NodeError, match=rf"numpy-1\.24\.4-cp38-cp38-.*\.whl does not fit Python "
                                        rf"{re.escape(default_interpreter().version_text)} "):
        app_environment(asset, envs_dir=tmp_path / "envs", requested="python3", node_id="code_node")
    assert prune_environments(tmp_path / "envs", [env]) == []
    assert prune_environments(tmp_path / "envs", []) == [env.python.parent.parent]


@needs_py38
def test_wheels_for_another_python_name_wheel_interpreter_and_fix(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "pf-test-ext", "1.0", {"pf_test_ext.py": ""})
    wheel.rename(wheel.with_name("pf_test_ext-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"))
    _fake_numpy(tmp_path / "w")
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "w"), tmp_path / "state" / "code-assets")
    with pytest.raises(NodeError) as info:
        app_environment(asset, envs_dir=tmp_path / "envs", requested="python3.8", node_id="code_node")
    message = str(info.value)
    assert "pf_test_ext-1.0-cp311-cp311-manylinux_2_17_x86_64.whl does not fit Python 3.8." in message
    assert "panoflow build-container --python-version 3.8" in message and "Traceback" not in message
    assert [p.name for p in (tmp_path / "envs").iterdir() if p.suffix != ".lock"] == []  # nothing half-made


@pytest.mark.parametrize("requested", ["python3.99", "python3.6", "/nonexistent/bin/python3.8"])
def test_absent_python_falls_back_to_the_default_with_a_warning(tmp_path: Path, requested: str) -> None:
    make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"})
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    with structlog.testing.capture_logs() as logs:
        env = app_environment(asset, envs_dir=tmp_path / "envs", requested=requested, node_id="code_node")
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    default = default_interpreter()
    assert warning["event"] == "requested_python_not_found" and warning["requested"] == requested
    assert warning["using"] == default.describe() and warning["node_id"] == "code_node"
    assert env.python_version == default.version_text
    assert run_python(env, "import sys; print('%d.%d.%d' % sys.version_info[:3])") == default.version_text


def test_device_default_environment_without_a_code_asset(tmp_path: Path) -> None:
    env = app_environment(None, envs_dir=tmp_path / "envs", requested="python3", node_id="code_node")
    assert env == device_default_environment()
    default = default_interpreter()
    assert env.python == default.executable and Path(sys.base_prefix) in env.mounts
    # not panoflow's venv python
    assert not env.python.is_relative_to(sys.prefix) or sys.prefix == sys.base_prefix
    src = Path(__import__("panoflow").__file__).resolve().parents[1]
    assert not any(src.is_relative_to(m) for m in env.mounts)  # not panoflow's source tree
    assert "numpy==" + importlib.metadata.version("numpy") in env.installed
    out = run_python(env, "import importlib.util, numpy, sys; print(numpy.__version__, "
                       "importlib.util.find_spec('panoflow') is None, sys.flags.no_user_site)")
    assert out == f"{importlib.metadata.version('numpy')} True 1"
    assert not list(tmp_path.glob("envs"))  # creates nothing


@needs_py38
@pytest.mark.skipif(Path("/usr/bin/python3.8").exists() or Path("/usr/local/bin/python3.8").exists(),
                    reason="a python3.8 in /usr/bin is found whatever PATH says")
def test_interpreter_lookup_skips_shims_and_resolves_links_and_venvs(tmp_path: Path) -> None:
    assert PY38 is not None
    for folder in ("shims", "bin"):  # a version manager's shim dispatches through the manager: not used
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "python3.8").write_text(f'#!/bin/sh\nexec {PY38.executable} "$@"\n')
        (tmp_path / folder / "python3.8").chmod(0o755)
    assert find_interpreter("python3.8", search_path=str(tmp_path / "shims"), pyenv_roots=()) is None
    assert find_interpreter("python3.8", search_path=str(tmp_path / "bin"), pyenv_roots=()) == PY38
    # pyenv's versions folders are searched; a link resolves to the interpreter it points at
    (tmp_path / "pyenv" / "versions" / "3.8.99" / "bin").mkdir(parents=True)
    (tmp_path / "pyenv" / "versions" / "3.8.99" / "bin" / "python3.8").symlink_to(PY38.executable)
    assert find_interpreter("python3.8", search_path="", pyenv_roots=[tmp_path / "pyenv"]) == PY38
    # a venv's python (panoflow's own) is its base interpreter
    assert find_interpreter(sys.executable) == default_interpreter()
    with structlog.testing.capture_logs() as logs:
        chosen = choose_interpreter("python3.8", search_path="", pyenv_roots=())
    assert chosen == default_interpreter() and [e["event"] for e in logs] == ["requested_python_not_found"]


def test_environments_are_readable_by_the_sandboxed_uid(tmp_path: Path) -> None:
    make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"})
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    old = os.umask(0o077)
    try:
        env = app_environment(asset, envs_dir=tmp_path / "envs", requested=None, node_id="code_node")
    finally:
        os.umask(old)
    root = env.python.parent.parent
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o004, path
            if path.is_dir():
                assert path.stat().st_mode & 0o001, path


@given(st.sampled_from(["", "/usr/bin/", "/root/.pyenv/versions/3.8.18/bin/"]), st.integers(2, 3),
       st.integers(0, 40), st.sampled_from(["", " -u", " -X dev"]))
def test_requested_version(folder: str, major: int, minor: int, args: str) -> None:
    assert requested_version(f"{folder}python{major}.{minor}{args}") == f"{major}.{minor}"
    assert requested_version(f"{folder}python{major}{args}") is None


@needs_py38
def test_build_container_fetches_wheels_for_the_descriptors_python(cli: Callable[..., Result], tmp_path: Path,
                                                                   wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    desc = json.loads((pkg / "descriptor.json").read_text())
    desc["runtimeDescriptor"]["entry"]["path"] = "python3.8"
    (pkg / "descriptor.json").write_text(json.dumps(desc))
    (pkg / "src" / "requirements.txt").write_text("pf-test-greeting==1.0\nnumpy\n")
    r = build(cli, app, wheelhouse, "--find-links", _fake_numpy(tmp_path / "more").parent)
    assert r.code == 0, r.err
    assert "fetching wheels for Python 3.8" in r.err
    archive = app / "assets" / package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    asset = prepare_code_asset(archive, tmp_path / "state" / "code-assets")
    assert asset.python_version == "3.8"
    env = app_environment(asset, envs_dir=tmp_path / "envs", requested="python3.8", node_id="code_node")
    assert run_python(env, "import sys, pf_greeting; print(sys.version_info[:2], pf_greeting.GREETING)") == \
        "(3, 8) hello from a wheel"


def test_concurrent_starts_build_once(tmp_path: Path) -> None:
    make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"})
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    results: list[AppEnvironment] = []

    def start() -> None:
        results.append(app_environment(asset, envs_dir=tmp_path / "envs", requested=None,
                                       node_id="code_node"))

    with structlog.testing.capture_logs() as logs:
        threads = [threading.Thread(target=start) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=100)
    assert len(results) == 3 and results[0] == results[1] == results[2]
    assert [e["event"] for e in logs].count("app_env_created") == 1
    assert [p.name for p in (tmp_path / "envs").iterdir() if not p.name.startswith(".")] == [
        results[0].python.parent.parent.name]


@needs_py38
def test_the_sdk_gets_numpy_as_from_the_base_image(tmp_path: Path) -> None:
    """An asset that ships no numpy gets panoflow's (behind its own packages) where its interpreter can load
    it; elsewhere a clear error says to add numpy to its requirements."""
    make_wheel(tmp_path / "wheels", "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'x'\n"})
    asset = prepare_code_asset(_asset(tmp_path, tmp_path / "wheels"), tmp_path / "state" / "code-assets")
    env = app_environment(asset, envs_dir=tmp_path / "envs", requested="python3", node_id="code_node")
    ours = importlib.metadata.version("numpy")
    assert f"numpy=={ours}" in env.installed
    numpy_dir = Path(__import__("numpy").__file__).parent.resolve()
    assert numpy_dir in env.mounts  # numpy's own folders, not panoflow's whole environment
    out = run_python(env, "import importlib.util, numpy, sys; print(numpy.__version__, "
                          "importlib.util.find_spec('pluggy') is None, "
                          "sys.path.index(numpy.__path__[0].rsplit('/', 1)[0]) > sys.path.index([p for p in "
                          "sys.path if p.endswith('site-packages')][0]))")
    assert out == f"{ours} True True"
    with pytest.raises(NodeError, match=r"the panoramasdk client needs numpy, which the code asset does not "
                                        r"ship, and panoflow's .* does not fit Python 3\.8\.\d+ .*: add "
                                        r"numpy to the application's requirements\.txt and rebuild the code "
                                        r"asset \(panoflow build-container --python-version 3\.8\)"):
        app_environment(asset, envs_dir=tmp_path / "envs", requested="python3.8", node_id="code_node")


def test_the_warning_says_why_a_python_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    # runs, but is no 3.8+
    (tmp_path / "bin" / "python3.7").write_text("#!/bin/sh\necho 'Python 3.7.0'\nexit 1\n")
    (tmp_path / "bin" / "python3.7").chmod(0o755)
    with structlog.testing.capture_logs() as logs:
        choose_interpreter("python3.7 -u", search_path=str(tmp_path / "bin"), pyenv_roots=())
        choose_interpreter("python3.98", search_path=str(tmp_path / "bin"), pyenv_roots=())
    assert [e["reason"] for e in logs] == ["python3.7 is older than CPython 3.8 or not CPython",
                                           "no python3.98 on this device"]
    assert [e["hint"] for e in logs] == [
        "the panoramasdk client needs CPython 3.8 or newer: set entry.path to one (e.g. python3.8)",
        "install python3.98 (e.g. with pyenv) to run the application on it"]
