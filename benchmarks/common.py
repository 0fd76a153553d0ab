"""Shared pieces of the benchmarks: the machine line, /proc readings of a process, and ``panoflow run``
commands.

Only the standard library and what panoflow already depends on: the benchmarks measure real ``panoflow run``
processes from the outside (CPU seconds, RSS and open descriptors from ``/proc``) the way an operator would.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

#: A pass-through Panorama app: every frame straight to the (unwatched) output.
PASS_THROUGH = """
class App(panoramasdk.node):
    def __init__(self):
        pass

app = App()
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""


def machine_line() -> str:
    """CPU model, cores, memory, GPU (nvidia-smi) and the versions the figures depend on."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"],
                             capture_output=True, text=True, check=False).stdout.strip()
        gpu = f"GPU: {out}" if out else gpu
    versions = [f"Python {platform.python_version()}"]
    try:
        import av

        versions.append(f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    except ImportError:  # pragma: no cover
        pass
    for name, label in (("onnxruntime", "ONNX Runtime"), ("numpy", "numpy"), ("panoflow", "panoflow")):
        try:
            from importlib.metadata import version

            versions.append(f"{label} {version(name)}")
        except Exception:  # noqa: BLE001, S110 - a missing package is just not listed
            pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {gpu}; {', '.join(versions)}; "
            f"{platform.system()} {platform.release()}; load average {load} at "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except OSError:
        return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def panoflow_cmd(app: Path, cameras: list[str], *, state: Path, duration: float | None = None,
                 log_level: str = "warning", extra: list[str] | None = None) -> list[str]:
    """``python -m panoflow run APP --camera camera_node=URI ...`` with JSON logs."""
    cmd = [sys.executable, "-m", "panoflow", "--log-format", "json", "--log-level", log_level, "run",
           str(app), "--state-dir", str(state)]
    if duration is not None:
        cmd += ["--duration", f"{duration:g}"]
    for uri in cameras:
        cmd += ["--camera", f"camera_node={uri}"]
    return cmd + (extra or [])


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]
