"""Device jobs: REBOOT and OTA (docs/device-protocol.md section 5).

Both end with the daemon re-executing itself (same argv), so a job's progress lives on disk,
``STATE_DIR/cloud-jobs.json``: a job is recorded IN_PROGRESS before anything happens, marked ``restarting``
just before the re-exec, and resolved by the next daemon (REBOOT: SUCCEEDED; OTA: SUCCEEDED when it runs the
version asked for). Final statuses are reported until a sync carried them, then forgotten; a job id seen once
is never run twice.

OTA installs only a pinned wheel (docs/security.md): the job names the wheel's SHA-256 and either its key in
the control plane's asset store (downloaded and checked against that digest) or panoflow ``V`` on the package
index. ``python -m pip install --target STATE_DIR/ota/panoflow-V --no-deps --only-binary :all:
--require-hashes -r REQ`` (REQ: ``panoflow @ file://WHEEL --hash=sha256:H`` or ``panoflow==V
--hash=sha256:H``) refuses any other file and any source distribution before running anything; a job without a
digest is FAILED. pip reads its other options from the usual ``PIP_*`` environment (``PIP_FIND_LINKS``,
``PIP_INDEX_URL``, ``PIP_NO_INDEX``...), then self-tests it with that folder first on ``PYTHONPATH``
(:data:`SELF_TEST`): ``python -m panoflow --version`` must print V, ``python -m panoflow plugins --json`` must
load every plugin (the built-in ones at version V), and the daemon's own modules must import. On success the
folder is recorded as active in ``STATE_DIR/cloud-ota.json``, on trial, and the daemon re-executes with it on
``PYTHONPATH`` (and does so again at every later start:
:func:`ota_environment`); the new daemon confirms it once it is up (:meth:`Jobs._resolve_after_restart`). A
start that finds the trial unconfirmed (the new version died before it got that far, and something started the
daemon again) goes back to the previous version. On failure the folder is deleted and the job is FAILED with
pip's (or the self-test's) last lines; the running version never stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import structlog

from panoflow import __version__
from panoflow.core.redact import redact_text
from panoflow.daemon.store import atomic_write_json, read_json
from panoflow.exceptions import CloudError

__all__ = ["JOBS_FILE", "OTA_FILE", "SELF_TEST", "Download", "Jobs", "ota_environment", "self_test"]

log = structlog.get_logger("panoflow.cloud")

JOBS_FILE = "cloud-jobs.json"
OTA_FILE = "cloud-ota.json"
OTA_ENV = "PANOFLOW_OTA_DIR"  # set in the environment of a daemon started on an OTA folder
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_WHEEL = re.compile(
    r"panoflow-[0-9A-Za-z.+!_]{1,64}-[0-9A-Za-z._]{1,64}-[0-9A-Za-z._]{1,64}-[0-9A-Za-z._]{1,64}\.whl"
)
#: ``download(key, dest, sha256, size)``: an asset of the control plane into ``dest``, verified (the cloud
#: client's)
Download = Callable[[str, Path, str, "int | None"], Awaitable[Path]]
PIP_TIMEOUT_S = 900.0
REASON_CHARS = 1500


def _last_lines(text: str, n: int = 12) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return redact_text("\n".join(lines[-n:]))[-REASON_CHARS:]


def ota_environment(state_dir: Path, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute a starting daemon with, so that it runs its OTA-installed version;
    ``None`` when it already does (or there is none).

    An OTA version on trial that was started once and never confirmed itself (it died on the way up) is given
    up here: ``cloud-ota.json`` goes back to the previous version (or none: the installed one) and the job
    resolves FAILED in the daemon that starts."""
    path = state_dir / OTA_FILE
    try:
        doc = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("cloud_ota_state_unreadable", path=str(path), error=str(exc))
        return None
    if not isinstance(doc, dict):
        return None
    active = doc.get("active")
    if not isinstance(active, str) or environ.get(OTA_ENV) == active:
        return None
    if doc.get("trial"):
        previous = doc.get("previous")
        previous = previous if isinstance(previous, str) and Path(previous, "panoflow").is_dir() else None
        log.error("cloud_ota_rolled_back", version=doc.get("version"), folder=active,
                  back_to=doc.get("previous_version"),
                  why="the new version was started but never came up; running the previous version again")
        atomic_write_json(path, {"active": previous, "version": doc.get("previous_version"), "previous": None,
                                 "rolled_back": {"version": doc.get("version"), "folder": active}})
        shutil.rmtree(active, ignore_errors=True)
        active = previous
        if active is None or environ.get(OTA_ENV) == active:
            return None
    if not Path(active, "panoflow").is_dir():
        return None
    return _with_side_dir(environ, active)


def _with_side_dir(environ: Mapping[str, str], side: str) -> dict[str, str]:
    env = dict(environ)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != env.get(OTA_ENV)]
    env["PYTHONPATH"] = os.pathsep.join([side, *rest])
    env[OTA_ENV] = side
    return env


class Jobs:
    """The device's jobs: what to report, and running new ones.

    ``restart(env)`` re-executes the daemon; ``report_now()`` sends a sync at once (best effort) so the
    control plane sees IN_PROGRESS before the device goes away."""

    def __init__(self, state_dir: Path, restart: Callable[[Mapping[str, str] | None], None],
                 report_now: Callable[[], Awaitable[object]], *, version: str = __version__,
                 download: Download | None = None):
        self.state_dir = state_dir
        self.download = download
        self.path = state_dir / JOBS_FILE
        self.restart = restart
        self.report_now = report_now
        self.version = version
        self.jobs: dict[str, dict[str, Any]] = self._load()
        self._resolve_after_restart()

    # ------------------------------------------------------------------ state
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = read_json(self.path)
            return {k: v for k, v in doc.get("jobs", {}).items() if isinstance(v, dict)}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            log.error("cloud_jobs_unreadable", path=str(self.path), error=str(exc))
            return {}

    def _save(self) -> None:
        atomic_write_json(self.path, {"jobs": self.jobs})

    def _set(self, job_id: str, **fields: Any) -> None:
        self.jobs.setdefault(job_id, {}).update(fields)
        self._save()

    def _resolve_after_restart(self) -> None:
        for job_id, job in self.jobs.items():
            if job.get("Status") != "IN_PROGRESS":
                continue
            if job.get("JobType") == "OTA":
                want = job.get("ImageVersion")
                if job.get("Stage") == "restarting" and want == self.version:
                    job.update(Status="SUCCEEDED", Reason=f"running panoflow {self.version}")
                    self._confirm_ota()
                elif self._rolled_back_from() == want:
                    job.update(Status="FAILED", Reason=f"panoflow {want} was started but never came up; "
                                                       f"rolled back to panoflow {self.version}")
                else:
                    job.update(Status="FAILED", Reason=f"the daemon restarted on panoflow {self.version}, "
                                                       f"not {want}")
            elif job.get("Stage") == "restarting":
                job.update(Status="SUCCEEDED", Reason="restarted")
            else:
                job.update(Status="FAILED", Reason="the daemon stopped before the reboot began")
            job["Reported"] = False
            log.info("cloud_job_finished", job_id=job_id, job_type=job.get("JobType"), status=job["Status"])
        if self.jobs:
            self._save()

    def _ota_doc(self) -> dict[str, Any]:
        try:
            doc = read_json(self.state_dir / OTA_FILE)
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _confirm_ota(self) -> None:
        """This daemon runs the OTA version on trial: it is up, the trial is over."""
        doc = self._ota_doc()
        if doc.get("trial") and doc.get("active") == os.environ.get(OTA_ENV):
            doc["trial"] = False
            atomic_write_json(self.state_dir / OTA_FILE, doc)

    def _rolled_back_from(self) -> Any:
        rolled = self._ota_doc().get("rolled_back")
        return rolled.get("version") if isinstance(rolled, dict) else None

    def statuses(self) -> list[dict[str, str]]:
        """``Jobs`` of the next sync: every job not yet reported final."""
        return [{"JobId": job_id, "Status": job["Status"],
                 **({"Reason": job["Reason"]} if job.get("Reason") else {})}
                for job_id, job in self.jobs.items() if not job.get("Reported")]

    def reported(self, sent: list[dict[str, str]]) -> None:
        """A sync carrying ``sent`` succeeded: final statuses in it need not be sent again."""
        changed = False
        for item in sent:
            job = self.jobs.get(item["JobId"])
            if job is not None and item["Status"] in ("SUCCEEDED",
                                                      "FAILED") and job["Status"] == item["Status"]:
                job["Reported"] = True
                changed = True
        if changed:
            # forget the oldest reported ones beyond a short history (a job id seen once is never run again)
            done = [k for k, v in self.jobs.items() if v.get("Reported")]
            for k in done[:-100]:
                del self.jobs[k]
            self._save()

    # ------------------------------------------------------------------ running
    def take(self, job: dict[str, Any]) -> bool:
        """Record a job from a sync answer; ``True`` when it is new and must be run (:meth:`run`)."""
        job_id = str(job.get("JobId") or "")
        if not job_id or job_id in self.jobs:
            return False
        job_type = job.get("JobType")
        if job_type not in ("REBOOT", "OTA"):
            self._set(job_id, JobType=str(job_type), Status="FAILED",
                      Reason=f"this device does not know job type {job_type!r}")
            return False
        self._set(job_id, JobType=job_type, ImageVersion=job.get("ImageVersion"), Status="IN_PROGRESS",
                  Stage="starting", **({"Ota": job["Ota"]} if isinstance(job.get("Ota"), dict) else {}))
        log.info("cloud_job_started", job_id=job_id, job_type=job_type, image_version=job.get("ImageVersion"))
        return True

    async def _report(self) -> None:
        """Send a sync now, best effort: the sync loop retries (and says so) when this one does not get
        through."""
        try:
            await self.report_now()
        except CloudError as exc:  # offline, or refused: the sync loop notices on its own
            log.warning("cloud_job_report_deferred", error=str(exc))

    async def run(self, job_id: str) -> None:
        job = self.jobs[job_id]
        await self._report()
        if job["JobType"] == "REBOOT":
            self._set(job_id, Stage="restarting")
            log.info("cloud_reboot", job_id=job_id)
            self.restart(None)
            return
        await self._ota(job_id, str(job.get("ImageVersion") or ""), job.get("Ota"))

    def _fail(self, job_id: str, reason: str) -> None:
        self._set(job_id, Status="FAILED", Reason=reason, Stage="done")
        log.error("cloud_job_failed", job_id=job_id, reason=reason)

    async def _requirement(self, job_id: str, version: str, pin: Any, folder: Path) -> str | None:
        """The pinned pip requirement line of an OTA job (the wheel downloaded first when the control plane
        holds it), or None after failing the job with the reason."""
        sha = str((pin or {}).get("Sha256") or "") if isinstance(pin, dict) else ""
        if not _HEX64.fullmatch(sha):
            self._fail(job_id, "the OTA job names no SHA-256 of the wheel: this device installs only pinned "
                               "wheels (create the job on a control plane that records one)")
            return None
        key = str(pin.get("Key") or "")
        if not key:
            return f"panoflow=={version} --hash=sha256:{sha}"
        name = str(pin.get("FileName") or "")
        if not _WHEEL.fullmatch(name) or self.download is None:
            self._fail(job_id, f"the OTA job's wheel {name[:100]!r} cannot be downloaded by this device")
            return None
        try:
            size = pin.get("Size")
            wheel = await self.download(key, folder / name, sha, size if isinstance(size, int) else None)
        except CloudError as exc:  # VerificationError (not the pinned bytes), offline, refused
            self._fail(job_id, f"downloading the OTA wheel failed; panoflow {self.version} keeps running: "
                               f"{exc}")
            return None
        return f"panoflow @ {wheel.resolve().as_uri()} --hash=sha256:{sha}"

    async def _ota(self, job_id: str, version: str, pin: Any = None) -> None:
        if not _VERSION.match(version):
            self._fail(job_id, f"ImageVersion {version!r} is not a panoflow version")
            return
        if version == self.version:
            self._set(job_id, Status="SUCCEEDED", Reason=f"already running panoflow {version}", Stage="done")
            log.info("cloud_job_finished", job_id=job_id, job_type="OTA", status="SUCCEEDED")
            await self._report()
            return
        ota = self.state_dir / "ota"
        side = ota / f"panoflow-{version}"
        running = os.environ.get(OTA_ENV)
        # never the running version's folder: that one is self.version's
        shutil.rmtree(side, ignore_errors=True)
        ota.mkdir(parents=True, exist_ok=True)
        wheels = ota / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        wheels.mkdir()
        requirement = await self._requirement(job_id, version, pin, wheels)
        if requirement is None:
            await self._report()
            return
        (wheels / "requirements.txt").write_text(requirement + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--no-deps",
               "--only-binary", ":all:", "--require-hashes", "--target", str(side),
               "-r", str(wheels / "requirements.txt")]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", OTA_ENV)}
        log.info("cloud_ota_installing", job_id=job_id, version=version, folder=str(side))
        ok, output, _ = await _run(cmd, env, PIP_TIMEOUT_S)
        what = "pip install"
        if ok:
            ok, what, output = await self_test(side, version)
        shutil.rmtree(wheels, ignore_errors=True)
        if not ok:
            shutil.rmtree(side, ignore_errors=True)
            self._fail(
                job_id, f"{what} failed; panoflow {self.version} keeps running:\n{_last_lines(output)}"
            )
            await self._report()
            return
        atomic_write_json(self.state_dir / OTA_FILE, {"active": str(side), "version": version, "trial": True,
                                                       "previous": running, "previous_version": self.version})
        for old in ota.glob("panoflow-*"):  # earlier versions, except the one running until the restart
            if old != side and str(old) != running:
                shutil.rmtree(old, ignore_errors=True)
        self._set(job_id, Stage="restarting")
        log.info("cloud_ota_installed", job_id=job_id, version=version, folder=str(side))
        self.restart(_with_side_dir(os.environ, str(side)))


#: the self-test of a new version: (what, arguments to ``python``); every one must exit 0 with the new
#: version's folder first on ``PYTHONPATH`` (log lines off: a failure's reason is its ``panoflow: error:``
#: line)
SELF_TEST: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("python -m panoflow --version", ("-m", "panoflow", "--version")),
    ("python -m panoflow plugins --json",
     ("-m", "panoflow", "--log-format", "json", "--log-level", "critical", "plugins", "--json")),
    ("import of the daemon's modules", ("-c", ("import panoflow.cli.serve, panoflow.daemon.server, "
                                               "panoflow.cloud_client.sync, panoflow.cloud_client.jobs"))),
)


async def self_test(side: Path, version: str) -> tuple[bool, str, str]:
    """Start the version installed in ``side`` as the daemon would: ``(ok, which check, its output)``."""
    env = _with_side_dir(os.environ, str(side))
    for what, args in SELF_TEST:
        ok, output, stdout = await _run([sys.executable, *args], env, 120.0, cwd=side)
        what = f"self-test ({what})"
        if not ok:
            return False, what, output
        if args[-1] == "--version" and stdout.strip() != f"panoflow {version}":
            return False, what, f"it printed {stdout.strip()[:200]!r}, not 'panoflow {version}'"
        if args[-1] == "--json":
            try:
                builtins = [p for p in json.loads(stdout)["plugins"] if p.get("builtin")]
            except (ValueError, KeyError, TypeError, AttributeError):
                return False, what, f"its output is not the plugin list: {stdout.strip()[-300:]}"
            stale = sorted(p.get("name", "?") for p in builtins if p.get("version") != version)
            if not builtins or stale:
                return False, what, (f"built-in plugins not at version {version}: {', '.join(stale)}" if stale
                                     else "it lists no built-in plugin")
    return True, "self-test", ""


async def _run(cmd: list[str], env: dict[str, str], timeout: float,
               cwd: Path | None = None) -> tuple[bool, str, str]:
    """``(exit status 0, stdout and then stderr, stdout)``."""
    try:
        with anyio.fail_after(timeout):
            proc = await anyio.run_process(cmd, env=env, check=False, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, cwd=cwd)
    except TimeoutError:
        return False, f"{' '.join(cmd[1:4])} did not finish within {timeout:.0f} s", ""
    except OSError as exc:
        return False, f"cannot run {cmd[0]}: {exc}", ""
    stdout = proc.stdout.decode("utf-8", "replace")
    return proc.returncode == 0, stdout + proc.stderr.decode("utf-8", "replace"), stdout
