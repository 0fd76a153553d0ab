"""Log read positions across daemon restarts (real files, the daemon's own RotatingWriter), and one
integration test: a real control plane, a real ``panoflow serve`` stopped and started again, lines written
meanwhile arrive once."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panoflow.cloud_client.sync import DAEMON_NODE
from panoflow.cloud_client.telemetry import OFFSETS_FILE, LogBuffer, LogTailer, Source
from panoflow.daemon.logfiles import RotatingWriter
from tests.support.daemons import Daemon
from tests.support.fleet import ControlPlaneServer, join, publish_app, wait


def _upload(buf: LogBuffer, sent: list[str], max_lines: int = 500) -> None:
    """What the telemetry loop does with a reachable control plane: send a batch, then forget it."""
    upto, batch = buf.batch(max_lines=max_lines)
    sent += [e["Line"] for e in batch]
    buf.commit(upto)


def _run(state: Path, src: list[Source], sent: list[str],
         max_lines: int = 500) -> tuple[LogTailer, LogBuffer]:
    """One daemon run's telemetry: a tailer over the saved positions, one poll, one upload, positions
    saved."""
    tailer, buf = LogTailer(state / OFFSETS_FILE), LogBuffer()
    tailer.poll(src, buf)
    _upload(buf, sent, max_lines)
    tailer.save(buf)
    return tailer, buf


def test_positions_survive_a_restart_and_a_rotation_while_down(tmp_path: Path) -> None:
    log_file = tmp_path / "apps" / "a" / "logs" / "instance.log"
    writer = RotatingWriter(log_file, max_bytes=300)  # rotates once below
    writer.write_line("history before the first start")
    src = [Source(log_file, "applicationInstance-1", "")]
    sent: list[str] = []
    tailer, buf = _run(tmp_path, src, sent)
    assert sent == []  # the device's first start: its history stays on the device
    saved = json.loads((tmp_path / OFFSETS_FILE).read_text())
    assert list(saved["files"]) == ["apps/a/logs/instance.log"]  # relative to STATE_DIR
    assert (tmp_path / OFFSETS_FILE).stat().st_mode & 0o777 == 0o600

    writer.write_line("one rtsp://admin:pw@cam/x")
    tailer.poll(src, buf)
    _upload(buf, sent)
    assert tailer.save(buf) and not tailer.save(buf)  # written only when a position moved
    # the daemon stops; the instance's file rotates while it is down (its rest is in the backup), then more
    # lines
    lines = [f"while down {i:02d} " + "x" * 30 for i in range(8)]
    for line in lines:
        writer.write_line(line)
    assert (log_file.with_name("instance.log.1")).exists()
    _run(tmp_path, src, sent)
    assert sent == ["one rtsp://admin:***@cam/x", *lines]  # nothing lost, nothing twice, redacted

    # a second restart with nothing new sends nothing
    writer.write_line("after")
    _run(tmp_path, src, sent)
    _run(tmp_path, src, sent)
    assert sent[-2:] == [lines[-1], "after"] and sent.count("after") == 1
    writer.close()


def test_unsent_and_partial_lines_are_read_again_after_a_restart(tmp_path: Path) -> None:
    log_file = tmp_path / "console_output"
    log_file.write_text("")
    src = [Source(log_file, "applicationInstance-1", "code_node")]
    sent: list[str] = []
    _run(tmp_path, src, sent)
    with open(log_file, "a") as f:
        f.write("l1\nl2\n\nl3\nl4\nhalf a li")
    _run(tmp_path, src, sent, max_lines=2)  # stopped with l3, l4 still in the buffer (and an unfinished line)
    assert sent == ["l1", "l2"]
    with open(log_file, "a") as f:
        f.write("ne\nl5\n")
    _run(tmp_path, src, sent)
    assert sent == ["l1", "l2", "l3", "l4", "half a line", "l5"]


def test_truncation_and_a_double_rotation_while_down(tmp_path: Path) -> None:
    log_file = tmp_path / "daemon.log"
    log_file.write_text("")
    src = [Source(log_file, "", DAEMON_NODE)]
    sent: list[str] = []
    _run(tmp_path, src, sent)
    log_file.write_text("a long first line that is sent\nanother\n")
    _run(tmp_path, src, sent)
    # truncated while down (same inode, shorter than the saved offset): what is there now is new
    with open(log_file, "r+") as f:
        f.truncate(0)
        f.write("after truncation\n")
    _run(tmp_path, src, sent)
    assert sent == ["a long first line that is sent", "another", "after truncation"]

    # rotated twice while down: the saved file is gone; the backup (newer than the save) and the new file are
    # read
    writer = RotatingWriter(log_file, max_bytes=60)
    time.sleep(0.1)  # the backup's mtime must be after the save (file clocks are coarse)
    for i in range(6):
        writer.write_line(f"down {i} " + "y" * 20)
    writer.close()
    backup = log_file.with_name("daemon.log.1")
    backup_lines = backup.read_text().splitlines()
    current_lines = log_file.read_text().splitlines()
    sent.clear()
    _run(tmp_path, src, sent)
    assert sent == backup_lines + current_lines  # the first rotated-away file is lost (it is gone from disk)

    # a stale backup (older than the saved positions) is not sent again when the file is replaced while down
    os.utime(backup, ns=(1, 1))
    log_file.unlink()
    log_file.write_text("replaced\n")
    sent.clear()
    _run(tmp_path, src, sent)
    assert sent == ["replaced"]


def test_dropped_lines_and_new_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    sent: list[str] = []
    _run(tmp_path, [Source(a, "i", "")], sent)
    # offline: the buffer keeps the newest 3 lines, the others are dropped (counted) and not read again later
    tailer, buf = LogTailer(tmp_path / OFFSETS_FILE), LogBuffer(max_lines=3)
    a.write_text("".join(f"a{i}\n" for i in range(6)))
    tailer.poll([Source(a, "i", "")], buf)
    assert buf.dropped == 3
    tailer.save(buf)  # stopped while offline
    # a file the saved positions do not list (created while the daemon was down) is read from its start
    b.write_text("b0\n")
    _run(tmp_path, [Source(a, "i", ""), Source(b, "i", "n")], sent)
    assert sent == ["a3", "a4", "a5", "b0"]
    # a damaged positions file: said so, and the files are read from their start (at least once)
    (tmp_path / OFFSETS_FILE).write_text("{not json")
    sent.clear()
    _run(tmp_path, [Source(b, "i", "n")], sent)
    assert sent == ["b0"]


# ---------------------------------------------------------------------- a real control plane and device
def test_lines_written_across_a_daemon_restart_arrive_once(make_daemon: Callable[..., Daemon],
                                                          cp: ControlPlaneServer, cloud_app: dict[str, Any],
                                                          tmp_path: Path) -> None:
    publish_app(cp, cloud_app)
    daemon, device_id = join(make_daemon, cp, tmp_path)
    instance_id = str(cp.pano.create_application_instance(
        Name="people", DefaultRuntimeContextDevice=device_id,
        ManifestPayload={"PayloadData": cloud_app["graph"]})["ApplicationInstanceId"])

    def lines() -> list[dict[str, Any]]:
        return list(cp.operator_get(f"/_panoflow/devices/{device_id}/logs?limit=10000")["Lines"])

    def console(text: str) -> Callable[[], list[dict[str, Any]]]:
        return lambda: [x for x in lines() if x["Instance"] == instance_id and x["Line"].startswith(text)]

    (first,) = wait(console("start 1 "), 60, "the instance's first start in the control plane")
    assert first["Node"] == "code_node"
    # the device log arrives too, under Node "daemon" and no instance
    wait(lambda: [x for x in lines() if x["Node"] == DAEMON_NODE and '"cloud_deploying"' in x["Line"]], 20,
         "the device log's cloud_deploying line")
    daemon.stop()
    assert (daemon.state_dir / OFFSETS_FILE).exists()
    console_file = daemon.state_dir / "apps" / "people" / "logs" / "code_node" / "console_output"
    with open(console_file, "a") as f:  # a line the connector never saw before it stopped
        f.write("written while the daemon was down\n")
    daemon.start()  # the instance starts again (its "start 2") before the connector's first poll
    try:
        wait(console("start 2 "), 60, "the instance's second start in the control plane")
    except AssertionError as exc:  # say where the line stopped: not written, or written and not uploaded
        files = [daemon.state_dir / "logs" / "daemon.log", daemon.state_dir / "apps" / "people" / "logs" /
                 "instance.log", console_file, daemon.state_dir / OFFSETS_FILE]
        shown = "\n".join(f"--- {f}:\n" + (f.read_text()[-4000:] if f.exists() else "(missing)")
                          for f in files)
        raise AssertionError(f"{exc}\n{shown}") from None
    wait(lambda: [x for x in lines() if x["Node"] == DAEMON_NODE and '"daemon_stopped"' in x["Line"]], 20,
         "the device log's daemon_stopped line (written after the connector stopped)")
    time.sleep(2.5)  # two more polls: anything sent twice would be there by now
    got = lines()
    counts = Counter((x["Instance"], x["Node"], x["Line"]) for x in got)
    assert [k for k, n in counts.items() if n > 1] == []
    console_lines = [x["Line"] for x in got if x["Instance"] == instance_id]
    assert sum(x.startswith("start 1 ") for x in console_lines) == 1
    assert sum(x.startswith("start 2 ") for x in console_lines) == 1
    assert console_lines.count("written while the daemon was down") == 1
    daemon_lines = [x for x in got if x["Node"] == DAEMON_NODE]
    assert all(x["Instance"] == "" for x in daemon_lines)
    events = Counter(json.loads(x["Line"]).get("event") for x in daemon_lines)
    assert events["daemon_stopping"] == 1 and events["daemon_stopped"] == 1
    # the second start's; the first start's history stays on the device
    assert events["daemon_listening"] == 1
