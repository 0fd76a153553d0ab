"""Device jobs: REBOOT and OTA (docs/device-protocol.md section 5).

Both end with the daemon re-executing itself (same argv), so a job's progress lives on disk,
``STATE_DIR/cloud-jobs.json``: a job is recorded IN_PROGRESS before anything happens, marked ``restarting`` just
before the re-exec, and resolved by the next daemon (REBOOT: SUCCEEDED; OTA: SUCCEEDED when it runs the version
asked for). Final statuses are reported until a sync carried them, then forgotten; a job id seen once is never run
twice.

OTA installs ``panoflow==V`` with ``python -m pip install --target STATE_DIR/ota/panoflow-V --no-deps`` (pip reads
its options from the usual ``PIP_*`` environment: ``PIP_FIND_LINKS``, ``PIP_INDEX_URL``, ``PIP_NO_INDEX``...),
then runs ``python -m panoflow --version`` with that folder first on ``PYTHONPATH``: it must print V. On success the
folder is recorded as active in ``STATE_DIR/cloud-ota.json`` and the daemon re-executes with it on ``PYTHONPATH``
(and does so again at every later start: :func:`ota_environment`); on failure the folder is deleted and the job is
FAILED with pip's (or the self-test's) last lines.
"""

from __future__ import annotations

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

__all__ = ["JOBS_FILE", "OTA_FILE", "Jobs", "ota_environment"]

log = structlog.get_logger("panoflow.cloud")

JOBS_FILE = "cloud-jobs.json"
OTA_FILE = "cloud-ota.json"
OTA_ENV = "PANOFLOW_OTA_DIR"  # set in the environment of a daemon started on an OTA folder
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")
PIP_TIMEOUT_S = 900.0
REASON_CHARS = 1500


def _last_lines(text: str, n: int = 12) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return redact_text("\n".join(lines[-n:]))[-REASON_CHARS:]


def ota_environment(state_dir: Path, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute a starting daemon with, so that it runs its OTA-installed version; ``None``
    when it already does (or there is none)."""
    try:
        active = read_json(state_dir / OTA_FILE).get("active")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(active, str) or not Path(active, "panoflow").is_dir() or environ.get(OTA_ENV) == active:
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

    ``restart(env)`` re-executes the daemon; ``report_now()`` sends a sync at once (best effort) so the control
    plane sees IN_PROGRESS before the device goes away."""

    def __init__(self, state_dir: Path, restart: Callable[[Mapping[str, str] | None], None],
                 report_now: Callable[[], Awaitable[None]], *, version: str = __version__):
        self.state_dir = state_dir
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
                else:
                    job.update(Status="FAILED", Reason=f"the daemon restarted on panoflow {self.version}, not {want}")
            elif job.get("Stage") == "restarting":
                job.update(Status="SUCCEEDED", Reason="restarted")
            else:
                job.update(Status="FAILED", Reason="the daemon stopped before the reboot began")
            job["Reported"] = False
            log.info("cloud_job_finished", job_id=job_id, job_type=job.get("JobType"), status=job["Status"])
        if self.jobs:
            self._save()

    def statuses(self) -> list[dict[str, str]]:
        """``Jobs`` of the next sync: every job not yet reported final."""
        return [{"JobId": job_id, "Status": job["Status"], **({"Reason": job["Reason"]} if job.get("Reason") else {})}
                for job_id, job in self.jobs.items() if not job.get("Reported")]

    def reported(self, sent: list[dict[str, str]]) -> None:
        """A sync carrying ``sent`` succeeded: final statuses in it need not be sent again."""
        changed = False
        for item in sent:
            job = self.jobs.get(item["JobId"])
            if job is not None and item["Status"] in ("SUCCEEDED", "FAILED") and job["Status"] == item["Status"]:
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
                  Stage="starting")
        log.info("cloud_job_started", job_id=job_id, job_type=job_type, image_version=job.get("ImageVersion"))
        return True

    async def run(self, job_id: str) -> None:
        job = self.jobs[job_id]
        await self.report_now()
        if job["JobType"] == "REBOOT":
            self._set(job_id, Stage="restarting")
            log.info("cloud_reboot", job_id=job_id)
            self.restart(None)
            return
        await self._ota(job_id, str(job.get("ImageVersion") or ""))

    def _fail(self, job_id: str, reason: str) -> None:
        self._set(job_id, Status="FAILED", Reason=reason, Stage="done")
        log.error("cloud_job_failed", job_id=job_id, reason=reason)

    async def _ota(self, job_id: str, version: str) -> None:
        if not _VERSION.match(version):
            self._fail(job_id, f"ImageVersion {version!r} is not a panoflow version")
            return
        side = self.state_dir / "ota" / f"panoflow-{version}"
        shutil.rmtree(side, ignore_errors=True)
        side.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps",
               "--target", str(side), f"panoflow=={version}"]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", OTA_ENV)}
        ok, output = await _run(cmd, env, PIP_TIMEOUT_S)
        if ok:
            env_test = _with_side_dir(os.environ, str(side))
            ok, output = await _run([sys.executable, "-m", "panoflow", "--version"], env_test, 120.0)
            if ok and output.strip() != f"panoflow {version}":
                ok, output = False, f"the self-test printed {output.strip()!r}, not 'panoflow {version}'"
            what = "self-test (python -m panoflow --version)"
        else:
            what = "pip install"
        if not ok:
            shutil.rmtree(side, ignore_errors=True)
            self._fail(job_id, f"{what} failed; panoflow {self.version} keeps running:\n{_last_lines(output)}")
            await self.report_now()
            return
        previous = None
        try:
            previous = read_json(self.state_dir / OTA_FILE).get("active")
        except (OSError, ValueError, AttributeError):
            pass
        atomic_write_json(self.state_dir / OTA_FILE, {"active": str(side), "version": version,
                                                       "previous": previous})
        self._set(job_id, Stage="restarting")
        log.info("cloud_ota_installed", job_id=job_id, version=version, folder=str(side))
        self.restart(_with_side_dir(os.environ, str(side)))


async def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[bool, str]:
    try:
        with anyio.fail_after(timeout):
            proc = await anyio.run_process(cmd, env=env, check=False, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT)
    except TimeoutError:
        return False, f"{cmd[2]} did not finish within {timeout:.0f} s"
    except OSError as exc:
        return False, f"cannot run {cmd[0]}: {exc}"
    return proc.returncode == 0, proc.stdout.decode("utf-8", "replace")
