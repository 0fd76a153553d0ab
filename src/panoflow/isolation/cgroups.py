"""Per-sandbox cgroups for memory and CPU limits, on cgroup v2 or v1 (whichever holds each controller here).

Each sandbox gets its own cgroup named ``panoflow/<name>-<random>``:

- **v2** (``cgroup2`` with the controller in ``cgroup.controllers``): as root under the hierarchy's root
  (``/sys/fs/cgroup/panoflow/...``); otherwise under the highest ancestor of this process's cgroup that this
  user may write (a delegated subtree, e.g. ``systemd-run --user --scope -p Delegate=yes``). Limits:
  ``memory.max`` (and ``memory.swap.max`` = 0, ``memory.oom.group`` = 1), ``cpu.max``.
- **v1** (a ``cgroup`` mount per controller, e.g. ``/sys/fs/cgroup/memory``): under this process's own cgroup
  in that hierarchy, so limits the host already puts on panoflow still hold. Limits: ``memory.limit_in_bytes``
  (and ``memory.memsw.limit_in_bytes`` where swap accounting exists),
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``.

The launcher opens each group's ``cgroup.procs`` beforehand and the child writes ``0`` (itself) to it before
it execs, so every process of the sandbox starts inside the limits. ``oom_killed`` reads ``memory.events``
(v2) or ``memory.oom_control`` (v1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from panoflow.isolation.spec import Limits

__all__ = ["CgroupSet", "cgroup_problems", "create_cgroups", "delegate"]

log = structlog.get_logger(__name__)

_PERIOD_US = 100_000


@dataclass(frozen=True)
class _Hierarchy:
    """Where one controller lives: the cgroup version and the directory new groups are created in."""

    controller: str
    version: int
    base: Path  # the parent of ``panoflow/``


def _mountinfo() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of every cgroup mount."""
    mounts = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            mount_point = fields[4].replace("\\040", " ")
            mounts.append((fields[3], mount_point, rfields[0], set(rfields[2].split(","))))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per hierarchy: controller names (v1) or "" (v2) -> path."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for controller in parts[1].split(",") if parts[1] else [""]:
                    own[controller] = parts[2]
    return own


def _inside(mount_root: str, mount_point: str, path: str) -> Path:
    rel = path[len(mount_root) :] if mount_root != "/" and path.startswith(mount_root) else path
    return Path(mount_point) / rel.lstrip("/")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK) and os.access(path / "cgroup.procs", os.W_OK)


def _v2_base(mount_root: str, mount_point: str, own: str) -> Path | None:
    top = Path(mount_point)
    if os.geteuid() == 0:
        return top if _writable(top) else None
    current = _inside(mount_root, mount_point, own)
    best = None
    while current != top and current.is_relative_to(top):
        if _writable(current):
            best = current
        current = current.parent
    return best


def _v2_internal_processes(base: Path, controller: str) -> str:
    """Why ``controller`` cannot be enabled below ``base`` (cgroup v2's no-internal-processes rule), or ""."""
    try:
        enabled = (base / "cgroup.subtree_control").read_text().split()
        procs = (base / "cgroup.procs").read_text().split()
    except OSError:
        return ""
    if controller in enabled or not procs or not (base / "cgroup.type").exists():  # the true root is exempt
        return ""
    return (
        f"cgroup v2: {base} holds processes ({len(procs)}), so its children cannot get the {controller} "
        "controller: start panoflow in a leaf cgroup of its own (systemd: a unit with Delegate=yes; a "
        "container: move its processes into a child group, e.g. mkdir /sys/fs/cgroup/init && for p in $(cat "
        "/sys/fs/cgroup/cgroup.procs); do echo $p > /sys/fs/cgroup/init/cgroup.procs; done)"
    )


def _hierarchy(controller: str) -> tuple[_Hierarchy | None, str]:
    """Where ``controller`` lives and can be used by this process, or None and why not."""
    mounts = _mountinfo()
    own = _own_cgroups()
    for root, point, fstype, options in mounts:
        if fstype != "cgroup2":
            continue
        try:
            available = Path(point, "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if controller in available:
            base = _v2_base(root, point, own.get("", "/"))
            if base is None:
                return None, (
                    f"cgroup v2 ({point}) is not writable by uid {os.geteuid()}: run panoflow as root, or "
                    "under a delegated cgroup (systemd-run --user --scope -p Delegate=yes panoflow ...)"
                )
            busy = _v2_internal_processes(base, controller)
            if busy:
                return None, busy
            return _Hierarchy(controller, 2, base), ""
    for root, point, fstype, options in mounts:
        if fstype == "cgroup" and controller in options:
            base = _inside(root, point, own.get(controller, "/"))
            if not (_writable(base) or _writable(base / "panoflow")):
                return None, (
                    f"the {controller} cgroup {base} is not writable by uid {os.geteuid()}: run panoflow as "
                    f"root, or delegate a subtree (as root: mkdir {base}/panoflow && chown -R {os.geteuid()} "
                    f"{base}/panoflow)"
                )
            return _Hierarchy(controller, 1, base), ""
    return None, (
        f"this kernel has no {controller} cgroup controller mounted: mount cgroup v2 on /sys/fs/cgroup "
        f"(systemd.unified_cgroup_hierarchy=1) or the v1 {controller} controller"
    )


def _wanted(limits: Limits) -> list[str]:
    return [c for c, v in (("memory", limits.memory_bytes), ("cpu", limits.cpus)) if v is not None]


def cgroup_problems(limits: Limits) -> list[str]:
    """What stops this process from applying ``limits`` here (empty when nothing does or nothing is asked)."""
    problems = []
    for controller in _wanted(limits):
        hierarchy, why = _hierarchy(controller)
        if hierarchy is None:
            problems.append(f"{controller} limit unavailable: {why}")
    return problems


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class CgroupSet:
    """The cgroups (one per hierarchy) holding one sandbox's processes."""

    def __init__(self, groups: list[tuple[_Hierarchy, Path]]):
        self._groups = groups

    @property
    def paths(self) -> list[Path]:
        return [path for _, path in self._groups]

    def open_procs(self) -> list[int]:
        """File descriptors of each group's ``cgroup.procs``, opened now for the child to write ``0`` into."""
        return [os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for _, path in self._groups]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for _, path in self._groups:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def oom_killed(self) -> bool:
        for hierarchy, path in self._groups:
            if hierarchy.controller != "memory":
                continue
            name = "memory.events" if hierarchy.version == 2 else "memory.oom_control"
            with contextlib.suppress(OSError):
                for line in (path / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def kill_all(self) -> None:
        """SIGKILL every process still in the groups (v2: ``cgroup.kill`` where the kernel has it)."""
        for hierarchy, path in self._groups:
            if hierarchy.version == 2 and (path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    _write(path / "cgroup.kill", "1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the groups (they are empty a moment after their processes are
        reaped)."""
        self.kill_all()
        deadline = time.monotonic() + timeout
        for _, path in self._groups:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        break
                    self.kill_all()
                    time.sleep(0.02)


def _enable(parent: Path, controller: str) -> None:
    control = parent / "cgroup.subtree_control"
    if controller not in control.read_text().split():
        _write(control, f"+{controller}")


def create_cgroups(name: str, limits: Limits) -> CgroupSet | None:
    """Create and configure the groups for ``limits`` (None when no limit is set). Raises OSError with the
    reason."""
    wanted = _wanted(limits)
    if not wanted:
        return None
    suffix = f"{name}-{secrets.token_hex(4)}"
    groups: list[tuple[_Hierarchy, Path]] = []
    made: dict[Path, Path] = {}
    try:
        for controller in wanted:
            hierarchy, why = _hierarchy(controller)
            if hierarchy is None:
                raise OSError(errno.EPERM, f"{controller} limit unavailable: {why}")
            top = hierarchy.base / "panoflow"
            if hierarchy.version == 2:
                _enable(hierarchy.base, controller)
            top.mkdir(exist_ok=True)
            if hierarchy.version == 2:
                _enable(top, controller)
            group = made.get(top)
            if group is None:
                group = top / suffix
                group.mkdir()
                made[top] = group
                groups.append((hierarchy, group))
            _configure(hierarchy, group, limits)
    except OSError:
        CgroupSet(groups).remove(timeout=0.5)
        raise
    return CgroupSet(groups)


def _configure(hierarchy: _Hierarchy, group: Path, limits: Limits) -> None:
    if hierarchy.controller == "memory" and limits.memory_bytes is not None:
        if hierarchy.version == 2:
            _write(group / "memory.max", str(limits.memory_bytes))
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if (group / name).exists():
                    _write(group / name, value)
        else:
            _write(group / "memory.limit_in_bytes", str(limits.memory_bytes))
            if (group / "memory.memsw.limit_in_bytes").exists():
                _write(group / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
    if hierarchy.controller == "cpu" and limits.cpus is not None:
        quota = max(1000, round(limits.cpus * _PERIOD_US))
        if hierarchy.version == 2:
            _write(group / "cpu.max", f"{quota} {_PERIOD_US}")
        else:
            _write(group / "cpu.cfs_period_us", str(_PERIOD_US))
            _write(group / "cpu.cfs_quota_us", str(quota))


def delegate(uid: int, gid: int) -> list[Path]:
    """As root: hand ``uid`` a ``panoflow/`` subtree below this process's own cgroup for the memory and cpu
    controllers, so the unprivileged processes it starts (a root daemon's instances) can give their sandboxes
    limits. Returns the folders delegated; a hierarchy where that is not possible is left out (the instance's
    limits then report why). cgroup v1 hierarchies only: on v2, a root daemon's instances are placed by a
    delegated systemd unit instead (docs/isolation.md)."""
    if os.geteuid() != 0:
        return []
    own = _own_cgroups()
    done: list[Path] = []
    for root, point, fstype, options in _mountinfo():
        for controller in ("memory", "cpu"):
            if fstype != "cgroup" or controller not in options:
                continue
            subtree = _inside(root, point, own.get(controller, "/")) / "panoflow"
            try:
                subtree.mkdir(exist_ok=True)
                for path, dirs, files in os.walk(subtree):
                    os.chown(path, uid, gid)
                    for name in files:  # the group's own control files (cgroup.procs, tasks ...)
                        os.chown(os.path.join(path, name), uid, gid)
            except OSError as exc:
                log.warning("cgroup_not_delegated", controller=controller, path=str(subtree), error=str(exc))
                continue
            if subtree not in done:
                done.append(subtree)
    return done
