"""OTA jobs for real: wheels of panoflow built by pip from this source tree with a bumped version, installed
by a real ``panoflow serve`` (pip offline: ``PIP_NO_INDEX``, ``PIP_FIND_LINKS``) on a job of a real control
plane.

GOOD is a plain bumped version; BROKEN fails its self-test (a built-in plugin does not import); DIES passes
the self-test but ``panoflow serve`` dies on the way up (rolled back at the next start)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panoflow import __version__
from panoflow.cloud_client.jobs import OTA_FILE, ota_environment
from tests.support.apps import ACCOUNT
from tests.support.daemons import Daemon
from tests.support.fleet import ControlPlaneServer, create_instance, instance_running, join, publish_app, wait

ROOT = Path(__file__).resolve().parents[2]
GOOD = "99.1.0"
BROKEN = "99.2.0"  # imports and prints its version, but a built-in plugin fails to import
DIES = "99.3.0"  # passes the self-test, but `panoflow serve` dies on the way up


def _build_wheel(work: Path, version: str, out: Path, *, broken: bool = False, dies: bool = False) -> Path:
    """A wheel of this source tree as panoflow ``version``: the files the build reads (pyproject.toml,
    README.md, src/; no .venv, .git, caches or a stale build/) copied to ``work``, the version changed where
    it is defined."""
    tree = work / f"panoflow-{version}"
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".cache"))
    for file, name in ((tree / "pyproject.toml", "version"),
                       (tree / "src" / "panoflow" / "__init__.py", "__version__")):
        text, n = re.subn(rf'^{name} = "[^"]+"$', f'{name} = "{version}"', file.read_text(), count=1,
                          flags=re.MULTILINE)
        assert n == 1, f"no version to bump in {file}"
        file.write_text(text)
    if broken:
        plugin = tree / "src" / "panoflow" / "plugins" / "tensorrt_backend.py"
        plugin.write_text(plugin.read_text() + '\nraise ImportError("this build is broken on purpose")\n')
    if dies:
        serve = tree / "src" / "panoflow" / "cli" / "serve.py"
        head = "def serve_command(args: argparse.Namespace) -> int:\n"
        assert head in serve.read_text()
        serve.write_text(serve.read_text().replace(head, head + '    raise RuntimeError("this build cannot '
                                                                'serve")\n'))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--no-input", "-q", "-w", str(out), "."],
                       cwd=tree, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.glob(f"panoflow-{version}-*.whl")
    return wheel


@pytest.fixture(scope="session")
def ota_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links folder with panoflow GOOD, BROKEN and DIES (built once per session)."""
    for module in ("setuptools", "wheel"):
        if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          check=False).returncode:
            pytest.fail(f"building test wheels needs {module} in this environment: pip install "
                        "'setuptools>=77' wheel")
    work = tmp_path_factory.mktemp("ota-build")
    out = tmp_path_factory.mktemp("ota-wheels")
    _build_wheel(work, GOOD, out)
    _build_wheel(work, BROKEN, out, broken=True)
    _build_wheel(work, DIES, out, dies=True)
    return out


def _software(cp: ControlPlaneServer, device_id: str) -> Any:
    return cp.device(device_id).get("CurrentSoftware")


def _ota(cp: ControlPlaneServer, device_id: str, version: str) -> str:
    """Upload the wheel of ``version`` where OTA jobs find it (its SHA-256 is pinned with the job), create the
    job."""
    from panoflow.controlplane.service.jobs import ota_wheel_key

    (wheel,) = Path(os.environ["PIP_FIND_LINKS"]).glob(f"panoflow-{version}-*.whl")
    with wheel.open("rb") as f:
        cp.plane.assets.put(ota_wheel_key(ACCOUNT, version), f)
    return str(cp.pano.create_job_for_devices(
        DeviceIds=[device_id], JobType="OTA",
        DeviceJobConfig={"OTAJobConfig": {"ImageVersion": version}})["Jobs"][0]["JobId"])


def _reason(cp: ControlPlaneServer, job_id: str) -> str:
    """The Reason the device reported for a job (kept by the control plane; the Panorama API shape has no
    field for it)."""
    with cp.store.transaction() as tx:
        row = tx.get("device_jobs", job_id)
    assert row is not None
    return str(row.doc.get("Reason") or "")


def _ota_dir_of(pid: int) -> str | None:
    """``PANOFLOW_OTA_DIR`` in the environment process ``pid`` started with (the OTA folder it runs from)."""
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"PANOFLOW_OTA_DIR=")]
    return found[0] if found else None


def _url(daemon: Daemon) -> None:
    """The daemon re-executed itself: its API listens on a new port."""
    daemon.url = json.loads((daemon.state_dir / "daemon.json").read_text())["url"]


def test_ota_succeeds_survives_a_restart_and_a_broken_version_is_refused(
        make_daemon: Callable[..., Daemon], cp: ControlPlaneServer, cloud_app: dict[str, Any], tmp_path: Path,
        ota_wheels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # inherited by every daemon this test starts
    monkeypatch.setenv("PIP_FIND_LINKS", str(ota_wheels))
    publish_app(cp, cloud_app)
    daemon, device_id = join(make_daemon, cp, tmp_path)
    assert daemon.proc is not None
    pid = daemon.proc.pid
    wait(lambda: _software(cp, device_id) == __version__, 20, "the device to report its version")
    instance_id = create_instance(cp, device_id, cloud_app)
    wait(instance_running(cp, instance_id), 60, "the instance to run")
    before = daemon.instance_pids()

    # OTA to GOOD: installed, self-tested, the daemon re-executes on it (same pid), the instance comes back on
    # it
    job = _ota(cp, device_id, GOOD)
    wait(lambda: cp.job(job)["Status"] == "COMPLETED", 90, f"the OTA job to {GOOD}")
    assert daemon.proc.poll() is None and daemon.proc.pid == pid
    assert _software(cp, device_id) == GOOD and _reason(cp, job) == f"running panoflow {GOOD}"
    side = str(daemon.state_dir / "ota" / f"panoflow-{GOOD}")
    assert _ota_dir_of(pid) == side
    wait(lambda: daemon.instance_pids() and daemon.instance_pids() != before, 30, "a new instance process")
    wait(instance_running(cp, instance_id), 40, "the instance to run again")
    assert all(_ota_dir_of(p) == side for p in daemon.instance_pids()), (
        "the instance does not run the new version")
    _url(daemon)
    assert daemon.get("/device")["version"] == GOOD

    # a plain restart of the daemon (no PANOFLOW_OTA_DIR in its environment) still runs GOOD
    daemon.stop()
    monkeypatch.delenv("PANOFLOW_OTA_DIR", raising=False)
    daemon.start()
    assert daemon.get("/device")["version"] == GOOD
    assert daemon.proc is not None and _ota_dir_of(daemon.proc.pid) == side
    wait(instance_running(cp, instance_id), 40, "the instance to run after the restart")
    # the control plane may still show the status from before the restart: wait for the process itself
    wait(lambda: daemon.instance_pids(), 40, "the instance process after the restart")
    assert _software(cp, device_id) == GOOD
    assert all(_ota_dir_of(p) == side for p in daemon.instance_pids())

    # OTA to BROKEN: pip installs it, the self-test refuses it; FAILED with the self-test's words, GOOD runs
    # on
    pid, running = daemon.proc.pid, daemon.instance_pids()
    job = _ota(cp, device_id, BROKEN)
    wait(lambda: cp.job(job)["Status"] == "FAILED", 90, f"the OTA job to {BROKEN} to fail")
    reason = _reason(cp, job)
    assert "self-test" in reason and "broken on purpose" in reason, reason
    assert f"panoflow {GOOD} keeps running" in reason, reason
    assert daemon.proc.poll() is None and daemon.proc.pid == pid and daemon.instance_pids() == running
    assert _ota_dir_of(pid) == side
    assert not (daemon.state_dir / "ota" / f"panoflow-{BROKEN}").exists()
    assert json.loads((daemon.state_dir / "cloud-ota.json").read_text())["active"] == side
    assert daemon.get("/device")["version"] == GOOD
    assert _software(cp, device_id) == GOOD and cp.device(device_id)["DeviceConnectionStatus"] == "ONLINE"



def test_a_version_that_dies_on_the_way_up_is_rolled_back_at_the_next_start(
        make_daemon: Callable[..., Daemon], cp: ControlPlaneServer, cloud_app: dict[str, Any], tmp_path: Path,
        ota_wheels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(ota_wheels))
    publish_app(cp, cloud_app)
    daemon, device_id = join(make_daemon, cp, tmp_path)
    instance_id = create_instance(cp, device_id, cloud_app)
    wait(instance_running(cp, instance_id), 60, "the instance to run")

    # OTA to DIES: installed and self-tested, the daemon re-executes on it and dies on the way up; started
    # again (as systemd would), the daemon finds the trial unconfirmed and goes back to the installed version
    job = _ota(cp, device_id, DIES)
    wait(lambda: daemon.proc is not None and daemon.proc.poll() is not None, 60, f"panoflow {DIES} to die")
    assert "this build cannot serve" in daemon.stderr()
    assert cp.job(job)["Status"] == "IN_PROGRESS"
    daemon.start()
    assert daemon.proc is not None
    wait(lambda: cp.job(job)["Status"] == "FAILED", 30, f"the OTA job to {DIES} to fail")
    assert _reason(cp, job) == (f"panoflow {DIES} was started but never came up; rolled back to panoflow "
                                f"{__version__}")
    assert daemon.get("/device")["version"] == __version__ and _ota_dir_of(daemon.proc.pid) is None
    wait(instance_running(cp, instance_id), 40, "the instance to run on the previous version")
    assert all(_ota_dir_of(p) is None for p in daemon.instance_pids())
    assert not (daemon.state_dir / "ota" / f"panoflow-{DIES}").exists()
    assert _software(cp, device_id) == __version__
    (line,) = [json.loads(x) for x in (daemon.state_dir / "logs" / "daemon.log").read_text().splitlines()
               if '"cloud_ota_rolled_back"' in x]
    assert line["version"] == DIES and line["back_to"] == __version__ and line["level"] == "error"
    # and later starts stay there
    daemon.stop()
    daemon.start()
    assert daemon.get("/device")["version"] == __version__


def test_an_unconfirmed_trial_goes_back_to_the_previous_ota_folder(tmp_path: Path) -> None:
    ota = tmp_path / "ota"
    old, new = ota / "panoflow-1.0", ota / "panoflow-2.0"
    for d in (old, new):
        (d / "panoflow").mkdir(parents=True)
    doc = {"active": str(new), "version": "2.0", "trial": True, "previous": str(old),
           "previous_version": "1.0"}
    (tmp_path / OTA_FILE).write_text(json.dumps(doc))
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "/elsewhere"}
    # the re-executed daemon on trial: nothing to do
    assert ota_environment(tmp_path, {**base, "PANOFLOW_OTA_DIR": str(new)}) is None
    # a later start that finds the trial unconfirmed: back to 1.0, 2.0 deleted, for good
    env = ota_environment(tmp_path, base)
    assert env is not None and env["PYTHONPATH"] == os.pathsep.join([str(old), "/elsewhere"])
    assert env["PANOFLOW_OTA_DIR"] == str(old) and not new.exists()
    saved = json.loads((tmp_path / OTA_FILE).read_text())
    assert saved["active"] == str(old) and not saved.get("trial") and saved["rolled_back"]["version"] == "2.0"
    assert ota_environment(tmp_path, env) is None
    assert ota_environment(tmp_path, base) == env
