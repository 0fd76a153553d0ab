"""The daemon's parts on their own: log rotation, tail and follow, output routing, metrics merging, the
instance command line, atomic state files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import pytest

from panoflow.core.metrics import MetricFamily
from panoflow.daemon.logfiles import OutputRouter, RotatingWriter, follow, tail_lines
from panoflow.daemon.metrics import merge_instance_metrics
from panoflow.daemon.store import atomic_write_json, ensure_token
from panoflow.daemon.supervisor import LaunchSpec, instance_command, instance_secrets


def test_rotation_keeps_one_backup_and_tail_reads_across_it(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    writer = RotatingWriter(path, max_bytes=100)
    for i in range(30):
        writer.write_line(f"line {i:02d}")  # 8 bytes each: 12 lines per file
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log", "x.log.1"]
    assert path.stat().st_size <= 100 and (tmp_path / "x.log.1").stat().st_size <= 100
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tail_lines(path, 3) == ["line 27", "line 28", "line 29"]
    # 6 from the file, 4 from the backup
    assert tail_lines(path, 10) == [f"line {i:02d}" for i in range(20, 30)]
    assert tail_lines(path, 1000) == [f"line {i:02d}" for i in range(12, 30)]  # lines 0-11 rotated away
    assert tail_lines(tmp_path / "missing.log", 5) == []
    # a writer opened on an existing file continues its size count
    again = RotatingWriter(path, max_bytes=100)
    for i in range(30, 40):
        again.write_line(f"line {i:02d}")
    again.close()
    assert tail_lines(path, 1) == ["line 39"] and path.stat().st_size <= 100


def test_the_default_rotation_is_the_appliances() -> None:
    from panoflow.daemon.logfiles import MAX_BYTES

    assert MAX_BYTES == 10 * 1024 * 1024


def test_router_sorts_output_and_redacts(tmp_path: Path) -> None:
    writers: dict[Path, RotatingWriter] = {}
    router = OutputRouter(tmp_path, writers)
    router.route("[code_node] hello rtsp://admin:pw123@cam/stream", "stdout")
    router.route('{"event": "source_started", "level": "info"}', "stderr")
    router.route('{"event": "source_failed", "level": "error", "error": "boom"}', "stderr")
    router.route("panoflow: error: something broke", "stderr")
    router.route("", "stderr")
    for w in writers.values():
        w.close()
    assert (tmp_path / "code_node" / "console_output").read_text() == "hello rtsp://admin:***@cam/stream\n"
    lines = [json.loads(line) for line in (tmp_path / "instance.log").read_text().splitlines()]
    assert [e["event"] for e in lines] == ["source_started", "source_failed", "instance_output"]
    assert lines[2]["text"] == "panoflow: error: something broke" and lines[2]["stream"] == "stderr"
    assert list(router.recent) == ["[code_node] hello rtsp://admin:***@cam/stream",
                                   "source_failed (error=boom)", "panoflow: error: something broke"]


@pytest.mark.anyio
async def test_follow_sees_new_lines_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    writer = RotatingWriter(path, max_bytes=60)
    writer.write_line("before")
    got: list[str] = []

    async def collect() -> None:
        async for line in follow(path, poll_s=0.02):
            got.append(line)
            if len(got) == 12:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            await anyio.sleep(0.1)
            for i in range(12):
                writer.write_line(f"new {i:02d}")
                await anyio.sleep(0.03)
    writer.close()
    assert got == [f"new {i:02d}" for i in range(12)]


def test_metrics_merge_declares_each_family_once() -> None:
    one = MetricFamily("panoflow_stream_fps", "gauge", "fps").add(30, node="cam")
    text_a = "\n".join(one.lines({"instance_id": "a"})) + "\n"
    text_b = "\n".join(one.lines({"instance_id": "b"})) + ("\n# TYPE lonely counter\nlonely 3\nnaked_sample "
                                                           "1\n")
    device = [MetricFamily("panoflow_device_up", "gauge", "up").add(1)]
    out = merge_instance_metrics([({"application": "x"}, text_a), ({"application": "y"}, text_b)], device)
    assert out.count("# TYPE panoflow_stream_fps gauge") == 1
    assert 'panoflow_stream_fps{application="x",instance_id="a",node="cam"} 30' in out
    assert 'panoflow_stream_fps{application="y",instance_id="b",node="cam"} 30' in out
    assert 'lonely{application="y"} 3' in out and 'naked_sample{application="y"} 1' in out
    assert out.endswith("# HELP panoflow_device_up up\n# TYPE panoflow_device_up gauge\npanoflow_device_up "
                        "1\n")


def test_instance_command_line(tmp_path: Path) -> None:
    spec = LaunchSpec(
        instance_id="applicationInstance-x", app_dir=tmp_path / "app", state_dir=tmp_path / "s",
        storage_dir=tmp_path / "storage", tmp_dir=tmp_path / "tmp", control=tmp_path / "c.sock",
        overrides=tmp_path / "o.json", cameras={"cam": ["-odd", "file:///b.mp4"]}, params={"p": "1"},
    )
    cmd = instance_command(spec, python="python3", secrets_fd=7)
    assert cmd[:6] == ["python3", "-m", "panoflow", "--log-format", "json", "run"]
    # cameras and parameters never on the command line (readable in /proc by every local user): through the
    # pipe
    assert not any("-odd" in a or "b.mp4" in a or a.startswith("--param") for a in cmd)
    assert cmd[cmd.index("--secrets-fd") + 1] == "7"
    secrets = json.loads(instance_secrets(spec))
    assert secrets["cameras"] == {"cam": ["-odd", "file:///b.mp4"]} and secrets["params"] == {"p": "1"}
    i = cmd.index("--storage-dir")
    assert cmd[i + 1] == str(tmp_path / "storage")
    assert cmd[cmd.index("--control") + 1] == f"unix:{tmp_path / 'c.sock'}"
    assert cmd[cmd.index("--preview") + 1] == "127.0.0.1:0"


def test_state_files_are_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "d" / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["x.json"]
    token = ensure_token(tmp_path / "token")
    assert ensure_token(tmp_path / "token") == token
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
