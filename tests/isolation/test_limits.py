"""Memory and CPU limits: the sandbox lives in its own cgroup from its first instruction, the memory limit
kills it (and says so), the CPU quota holds it back, and close() removes the group."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panoflow.isolation import Limits, SandboxedProcess, SandboxSpec, host_problems, start, unsafe_start
from tests.isolation.probes import interpreter, require, run_probe

HOG = r"""
import json, sys
print(json.dumps({"started": True}), flush=True)
chunks = []
for _ in range(64):  # up to 512 MiB, touched page by page
    chunks.append(bytearray(8 << 20))
print("survived", flush=True)
"""


def test_memory_limit_kills_and_reports(scratch: Path) -> None:
    rc, result, proc = run_probe(HOG, scratch, limits=Limits(memory_bytes=96 << 20), network="none")
    assert result == {"started": True}
    assert rc != 0
    assert proc.oom_killed()


def test_no_oom_without_pressure(scratch: Path) -> None:
    rc, result, proc = run_probe(
        "import json; print(json.dumps({'small': len(bytearray(8 << 20))}), flush=True)\n",
        scratch,
        limits=Limits(memory_bytes=96 << 20),
    )
    assert rc == 0 and result == {"small": 8 << 20}
    assert not proc.oom_killed()


CPU = r"""
import json, sys, time
end = time.monotonic() + 1.0
while time.monotonic() < end:
    pass
print(json.dumps({"cpu": time.process_time()}), flush=True)
sys.stdin.read()
"""


def test_cpu_quota_holds_a_busy_loop_back(scratch: Path) -> None:
    stats: dict[str, int] = {}

    def read_cpu_stat(proc: SandboxedProcess) -> None:
        assert proc._cgroups is not None
        for group in proc._cgroups.paths:
            if (group / "cpu.stat").exists():
                for line in (group / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    stats[key] = int(value)

    rc, result, _ = run_probe(CPU, scratch, stdin_hold=read_cpu_stat, limits=Limits(cpus=0.2), network="none")
    assert rc == 0
    # one second of wall time at a fifth of a core: ~0.2 s of CPU, and the kernel throttled it to get there
    assert result["cpu"] < 0.45, result
    assert stats.get("nr_throttled", 0) > 0, stats


def test_placed_in_its_cgroup_before_exec_and_removed_on_close(scratch: Path) -> None:
    python, mounts = interpreter()
    spec = SandboxSpec(
        argv=[python, "-c", "import sys; sys.stdin.read()"],
        mounts=mounts,
        limits=Limits(memory_bytes=128 << 20, cpus=1.0),
        network="none",
        name="placement",
    )
    require(spec)
    proc = start(spec, stdin=subprocess.PIPE)
    try:
        assert proc._cgroups is not None
        groups = proc._cgroups.paths
        assert groups and all(g.is_dir() and g.parent.name == "panoflow" for g in groups)
        assert all(g.name.startswith("placement-") for g in groups)
        members = proc._cgroups.pids()
        assert proc.pid in members  # the launched process joined before it exec'd bwrap ...
        deadline = time.monotonic() + 5
        while proc.app_pid() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        app = proc.app_pid()
        assert app is not None and app in proc._cgroups.pids()  # ... so everything it started is inside
        memory = next(g for g in groups if "memory" in str(g) or (g / "memory.max").exists())
        limit_file = memory / ("memory.max" if (memory / "memory.max").exists() else "memory.limit_in_bytes")
        assert int(limit_file.read_text()) == 128 << 20
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        proc.close()
    assert not any(g.exists() for g in groups)


def test_limits_unavailable_without_root_or_delegation() -> None:
    """An unprivileged launcher with no delegated cgroup is told the limits are unavailable and how to
    delegate."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the check as another, unprivileged uid")
    script = (
        "from panoflow.isolation import Limits, SandboxSpec, host_problems\nspec = "
        "SandboxSpec(argv=['/usr/bin/true'], network='none', limits=Limits(memory_bytes=64 << 20, "
        "cpus=1))\nprint('\\n'.join(host_problems(spec)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd="/",
        user=64001,
        group=64001,
        extra_groups=[],
        check=False,
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"panoflow's interpreter is not usable by uid 64001: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("memory limit unavailable") and "delegat" in line for line in lines), lines
    assert any(line.startswith("cpu limit unavailable") for line in lines), lines


def test_unsafe_start_keeps_the_memory_limit(tmp_path: Path) -> None:
    """--unsafe-no-sandbox drops isolation, not the limits (where the host has cgroups)."""
    spec = SandboxSpec(argv=[sys.executable, "-c", HOG], limits=Limits(memory_bytes=96 << 20), network="none")
    problems = host_problems(spec)
    if any("limit unavailable" in p for p in problems):
        pytest.skip("; ".join(problems))
    proc = unsafe_start(spec, stdout=subprocess.DEVNULL)
    try:
        assert proc.wait(30) != 0
    finally:
        proc.close()
    assert proc.oom_killed()
