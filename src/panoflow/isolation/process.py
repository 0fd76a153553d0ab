"""Starting a sandbox and handling it afterwards: :func:`start`, :func:`unsafe_start`,
:class:`SandboxedProcess`.

:func:`start` checks the host (:func:`~panoflow.isolation.host.host_problems`), creates the cgroups for the
limits, writes the generated /etc files to unlinked temporary files, and spawns ``[pasta --] bwrap ... --
argv``. The child, before it execs, joins the cgroups and (when the launcher is root) drops to the sandbox's
uid/gid with no supplementary groups, so pasta, bubblewrap and the app never hold root. The environment is
exactly ``spec.env``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import structlog

from panoflow.exceptions import SandboxError
from panoflow.isolation.cgroups import CgroupSet, create_cgroups
from panoflow.isolation.host import drop_privileges, find_tools, host_problems, sandbox_ids
from panoflow.isolation.layout import command, etc_files, levels_to_app, needs_dns_forward
from panoflow.isolation.spec import SandboxSpec

__all__ = ["SandboxedProcess", "start", "unsafe_start"]

log = structlog.get_logger(__name__)

_File = int | IO[Any] | None
_PR_SET_PDEATHSIG = 1


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


class SandboxedProcess:
    """A running sandbox, used like :class:`subprocess.Popen`.

    ``pid`` is the launched process (pasta, or bwrap with network 'none'); :meth:`app_pid` is the app's own
    host pid. Signals go to the app (its pid 1 is bubblewrap's reaper, which would only pass them on as
    SIGKILL). The exit status is the app's; an app ended by signal N shows as 128 + N, as in a shell.
    :meth:`close` kills what is left and removes the cgroups: call it (or use ``with``) once the process is
    done.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], spec: SandboxSpec, cgroups: CgroupSet | None, levels: int
    ):
        self._popen = popen
        self.spec = spec
        self._cgroups = cgroups
        self._levels = levels
        self.unsafe = levels == 0
        self._oom_killed = False
        self.stdin = popen.stdin
        self.stdout = popen.stdout
        self.stderr = popen.stderr

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def app_pid(self) -> int | None:
        """The app's host pid, or None before it has started or after it has gone."""
        pid = self.pid
        for _ in range(self._levels):
            children = _children(pid)
            if not children:
                return None
            pid = children[0]
        return pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the app (to the launched process while the app is not there yet)."""
        if self._popen.poll() is not None:
            return
        target = self.app_pid() or self.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole sandbox: every process in its cgroup, the app, and the launched process."""
        if self._cgroups is not None:
            self._cgroups.kill_all()
        app = self.app_pid()
        if app is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(app, signal.SIGKILL)
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process of this sandbox (always False without a memory limit);
        still answers after :meth:`close`."""
        if self._cgroups is not None:
            self._oom_killed = self._oom_killed or self._cgroups.oom_killed()
        return self._oom_killed

    def close(self) -> None:
        """Kill what is still running, reap it, and remove the sandbox's cgroups. Safe to call twice."""
        if self._popen.poll() is None:
            self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(10)
        if self._cgroups is not None:
            self.oom_killed()
            self._cgroups.remove()
            self._cgroups = None

    def __enter__(self) -> SandboxedProcess:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "unsafe, no sandbox" if self.unsafe else f"network={self.spec.network}"
        return f"<SandboxedProcess {self.spec.name!r} pid={self.pid} {mode} returncode={self.returncode}>"


@contextlib.contextmanager
def _data_files(files: dict[str, bytes]) -> Iterator[dict[str, int]]:
    with contextlib.ExitStack() as stack:
        fds = {}
        for name, content in files.items():
            handle = stack.enter_context(tempfile.TemporaryFile())
            handle.write(content)
            handle.flush()
            handle.seek(0)
            fds[name] = handle.fileno()
        yield fds


def _spawn(
    argv: list[str],
    spec: SandboxSpec,
    cgroups: CgroupSet | None,
    ids: tuple[int, int] | None,
    *,
    cwd: str,
    extra_fds: list[int],
    stdin: _File,
    stdout: _File,
    stderr: _File,
    die_with_parent: bool,
) -> subprocess.Popen[bytes]:
    procs = cgroups.open_procs() if cgroups is not None else []
    prctl = ctypes.CDLL(None, use_errno=True).prctl if die_with_parent else None
    parent = os.getpid()

    def in_child() -> None:
        for fd in procs:
            os.write(fd, b"0")
        if ids is not None:
            drop_privileges(*ids)
        if prctl is not None:  # after the uid change, which clears it
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)

    try:
        return subprocess.Popen(
            argv,
            env=dict(spec.env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=[*spec.pass_fds, *extra_fds],
            close_fds=True,
            start_new_session=True,
            preexec_fn=in_child,  # noqa: PLW1509 - joining the cgroup and setuid must happen in the child
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if cgroups is not None:
            cgroups.remove(timeout=0.5)
        raise SandboxError(f"could not start sandbox {spec.name!r}: {exc}") from exc
    finally:
        for fd in procs:
            os.close(fd)


def _cgroups(spec: SandboxSpec) -> CgroupSet | None:
    try:
        return create_cgroups(spec.name, spec.limits)
    except OSError as exc:
        raise SandboxError(
            f"could not set the limits of sandbox {spec.name!r}: {exc.strerror or exc} "
            "(panoflow.isolation.host_problems lists what the host lacks)"
        ) from exc


def start(
    spec: SandboxSpec,
    *,
    stdout: _File = None,
    stderr: _File = None,
    stdin: _File = subprocess.DEVNULL,
    die_with_parent: bool = False,
) -> SandboxedProcess:
    """Start ``spec.argv`` in a sandbox. ``stdout``/``stderr``/``stdin`` are as for :class:`subprocess.Popen`.

    ``die_with_parent`` kills the sandbox when the *thread* that called :func:`start` ends (Linux's
    parent-death signal follows the thread): use it only from a thread that lives as long as the sandbox
    should, such as the event loop's. Without it a sandbox outlives a launcher that dies without
    :meth:`SandboxedProcess.close`, until its app exits (the app's IPC client exits when its socket closes).

    Raises :class:`~panoflow.exceptions.SandboxError` listing every host problem (with its fix) when the host
    cannot run it, or naming what failed while starting.
    """
    problems = host_problems(spec)
    tools = find_tools()
    if problems or tools is None:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise SandboxError(f"cannot start sandbox {spec.name!r} on this host:\n{listed}")
    uid, gid = sandbox_ids(spec)
    dns_forward = needs_dns_forward(spec)
    files = etc_files(spec, uid, gid, dns_forward=dns_forward)
    cgroups = _cgroups(spec)
    try:
        with _data_files(files) as data_fds:
            argv = command(spec, tools, uid=uid, gid=gid, data_fds=data_fds, dns_forward=dns_forward)
            popen = _spawn(
                argv,
                spec,
                cgroups,
                (uid, gid) if os.geteuid() == 0 else None,
                cwd="/",
                extra_fds=list(data_fds.values()),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                die_with_parent=die_with_parent,
            )
    except BaseException:
        if cgroups is not None:
            cgroups.remove(timeout=0.5)
        raise
    log.info(
        "sandbox_started",
        sandbox=spec.name,
        pid=popen.pid,
        uid=uid,
        network=spec.network,
        inbound=[f"{h}->{c}" for c, h in spec.inbound],
        memory_bytes=spec.limits.memory_bytes,
        cpus=spec.limits.cpus,
    )
    return SandboxedProcess(popen, spec, cgroups, levels_to_app(spec))


def _host_path(path: str, spec: SandboxSpec) -> str:
    for mount in sorted(spec.mounts, key=lambda m: len(m.target), reverse=True):
        if path == mount.target or path.startswith(mount.target + "/"):
            return str(mount.source) + path[len(mount.target) :]
    return path


def unsafe_start(
    spec: SandboxSpec,
    *,
    stdout: _File = None,
    stderr: _File = None,
    stdin: _File = subprocess.DEVNULL,
    die_with_parent: bool = False,
) -> SandboxedProcess:
    """Development only (``--unsafe-no-sandbox``): run ``spec.argv`` as a plain process of the caller's uid,
    with ``spec.env``, ``spec.pass_fds`` and the limits where the host allows them, and no isolation at all.

    Paths in argv and cwd that lie under a mount target are rewritten to the mount's host source, since no
    mount exists; the app sees the host's filesystem, network, processes and the caller's privileges.
    """
    cgroups = None
    if spec.limits.any:
        try:
            cgroups = create_cgroups(spec.name, spec.limits)
        except OSError as exc:
            log.warning("sandbox_limits_unavailable", sandbox=spec.name, reason=exc.strerror or str(exc))
    argv = [_host_path(arg, spec) if arg.startswith("/") else arg for arg in spec.argv]
    popen = _spawn(
        argv,
        spec,
        cgroups,
        None,
        cwd=_host_path(spec.cwd, spec),
        extra_fds=[],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        die_with_parent=die_with_parent,
    )
    log.warning(
        "sandbox_disabled", sandbox=spec.name, pid=popen.pid, reason="--unsafe-no-sandbox (development only)"
    )
    return SandboxedProcess(popen, spec, cgroups, 0)
