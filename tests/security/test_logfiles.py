"""The daemon's per-node log files (issue #16): an app printing 20,000 distinct ``[name]`` prefixes used to
make the daemon open (and keep open) one file per prefix until it ran out of descriptors; ``[..]`` wrote one
folder up. The real :class:`OutputRouter` and real files; descriptors counted in /proc."""

from __future__ import annotations

import json
import os
from pathlib import Path

from panoflow.daemon.logfiles import MAX_NODE_LOGS, MAX_OPEN_FILES, OutputRouter, RotatingWriter


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_20000_prefixes_keep_descriptors_and_files_bounded(tmp_path: Path) -> None:
    logs = tmp_path / "apps" / "people" / "logs"
    writers: dict[Path, RotatingWriter] = {}
    router = OutputRouter(logs, writers)  # no node list: the daemon's fallback rules
    before = _open_fds()
    peak = 0
    for i in range(20_000):
        router.route(f"[p{i}] line {i}", "stdout")
        if i % 500 == 0:
            peak = max(peak, _open_fds() - before)
    peak = max(peak, _open_fds() - before)
    assert peak <= MAX_OPEN_FILES, peak
    assert len(writers) <= MAX_NODE_LOGS + 1  # the node files and instance.log
    assert len(_files(logs)) <= MAX_NODE_LOGS + 1
    assert (logs / "p0" / "console_output").read_text() == "line 0\n"
    # nothing is lost: the lines past the cap are in instance.log
    events = [json.loads(line) for line in (logs / "instance.log").read_text().splitlines()]
    assert {"text": "[p19999] line 19999"}.items() <= events[-1].items()
    for writer in writers.values():
        writer.close()
    assert _open_fds() <= before


def test_only_graph_nodes_get_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    writers: dict[Path, RotatingWriter] = {}
    router = OutputRouter(logs, writers, nodes={"code_node", "camera_node"})
    for i in range(1000):
        router.route(f"[fake{i}] x", "stdout")
    router.route("[code_node] hello", "stdout")
    for writer in writers.values():
        writer.close()
    assert sorted(p.relative_to(logs).as_posix() for p in _files(logs)) == ["code_node/console_output",
                                                                            "instance.log"]


def test_dot_dot_and_odd_names_write_nothing_outside(tmp_path: Path) -> None:
    logs = tmp_path / "app" / "logs"
    logs.mkdir(parents=True)
    writers: dict[Path, RotatingWriter] = {}
    router = OutputRouter(logs, writers)
    for name in ("..", ".", "../..", "a/../..", "code_node\n", "x\ny", "a/b", ".hidden"):
        router.route(f"[{name}] escaped", "stdout")
    router.route("[code_node\n] escaped", "stdout")
    for writer in writers.values():
        writer.close()
    assert not (tmp_path / "app" / "console_output").exists()
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()} == {
        "app/logs/instance.log"
    }
