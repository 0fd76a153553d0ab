"""unsafe_start (--unsafe-no-sandbox): the same environment, working directory and descriptors, and no
isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from panoflow.isolation import Mount, SandboxSpec, unsafe_start

PROBE = (
    "import json, os\n"
    "os.write(int(os.environ['FD']), b'through fd')\n"
    "print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd(), 'uid': os.getuid(),"
    " 'pids': len([p for p in os.listdir('/proc') if p.isdigit()])}))\n"
)


def test_unsafe_start_is_a_plain_process(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)
    read_end, write_end = os.pipe()
    spec = SandboxSpec(
        argv=[sys.executable, "/panorama/probe.py"],
        mounts=[Mount(code, "/panorama")],
        cwd="/panorama",
        env={"FD": str(write_end), "ONLY": "this"},
        pass_fds=[write_end],
    )
    proc = unsafe_start(spec, stdout=subprocess.PIPE)
    try:
        os.close(write_end)
        assert proc.stdout is not None
        result = json.loads(proc.stdout.read())
        assert proc.wait(30) == 0
        assert os.read(read_end, 100) == b"through fd"
    finally:
        os.close(read_end)
        proc.close()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.unsafe and "unsafe, no sandbox" in repr(proc)
    assert set(result["env"]) - {"LC_CTYPE"} == {"FD", "ONLY"}
    assert result["cwd"] == str(code)  # the mount target is rewritten to its host source
    assert result["uid"] == os.getuid()  # no privilege drop ...
    assert result["pids"] > 3  # ... and the host's processes in view: no isolation at all
