"""The cgroup v2 half of the limits, on whatever cgroup2 hierarchy this host mounts (on a v1 host, the hybrid
``/sys/fs/cgroup/unified`` one): placement before exec, listing, cgroup.kill, removal, and the
no-internal-processes check. The v1 half and the v2 limits on a unified host run in test_limits.py."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from panoflow.isolation.cgroups import CgroupSet, _Hierarchy, _mountinfo, _v2_internal_processes


@pytest.fixture
def v2_group() -> Iterator[tuple[_Hierarchy, Path]]:
    points = [point for _, point, fstype, _ in _mountinfo() if fstype == "cgroup2"]
    if not points or not os.access(points[0], os.W_OK):
        pytest.skip("no writable cgroup2 hierarchy here")
    top = Path(points[0])
    controllers = (top / "cgroup.controllers").read_text().split()
    parent = top / f"pf-test-{secrets.token_hex(3)}"
    parent.mkdir()
    try:
        yield _Hierarchy(controllers[0] if controllers else "", 2, parent), parent
    finally:
        for child in parent.iterdir():
            if child.is_dir():
                child.rmdir()
        parent.rmdir()


def test_placement_kill_and_removal(v2_group: tuple[_Hierarchy, Path]) -> None:
    hierarchy, parent = v2_group
    group = parent / "sandbox"
    group.mkdir()
    cgroups = CgroupSet([(hierarchy, group)])
    fds = cgroups.open_procs()

    def join() -> None:
        for fd in fds:
            os.write(fd, b"0")

    child = subprocess.Popen(["sleep", "30"], preexec_fn=join)  # noqa: PLW1509 - what the launcher does
    try:
        for fd in fds:
            os.close(fd)
        assert cgroups.pids() == {child.pid}
        assert f"{group.relative_to(parent.parent)}" in Path(f"/proc/{child.pid}/cgroup").read_text()
        cgroups.kill_all()
        assert child.wait(10) == -9
        cgroups.remove()
        assert not group.exists()
        assert not cgroups.oom_killed()
    finally:
        child.kill()
        child.wait(10)


def test_internal_processes_block_controllers(v2_group: tuple[_Hierarchy, Path]) -> None:
    hierarchy, parent = v2_group
    if not hierarchy.controller:
        pytest.skip("this cgroup2 hierarchy has no controller to try")
    assert _v2_internal_processes(parent, hierarchy.controller) == ""  # empty: fine
    holder = subprocess.Popen(["sleep", "30"])
    try:
        (parent / "cgroup.procs").write_text(str(holder.pid))
        why = _v2_internal_processes(parent, hierarchy.controller)
        assert f"{parent} holds processes (1)" in why and "leaf cgroup" in why
    finally:
        holder.kill()
        holder.wait(10)
