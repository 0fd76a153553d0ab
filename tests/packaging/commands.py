"""What the packaging tests' in-process ``panoflow`` commands return (:class:`Result`), and a stand-in for the
docker CLI that records its calls (:class:`FakeDocker`, its script :data:`FAKE_DOCKER`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """Exit code, stdout and stderr of one in-process command."""

    code: int
    out: str
    err: str


FAKE_DOCKER = '''#!{python}
"""A stand-in for the docker CLI: logs every call; ``version`` fails unless FAKE_DOCKER_ENGINE=1; ``export``
writes a small image with absolute links, as a real root filesystem has."""
import io, json, os, sys, tarfile
log = os.environ["FAKE_DOCKER_LOG"]
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
cmd = sys.argv[1]
if cmd == "version":
    if os.environ.get("FAKE_DOCKER_ENGINE") != "1":
        print("Cannot connect to the Docker daemon", file=sys.stderr)
        sys.exit(1)
    print("99.0-fake")
elif cmd == "build":
    with open(log + ".context", "w") as f:
        f.write(sys.argv[-1])
    print("Step 1/4 : FROM public.ecr.aws/panorama/panorama-application")
elif cmd == "create":
    print("fake-container-id")
elif cmd == "export":
    out = [a for a in sys.argv if a.startswith("--output=")][0].split("=", 1)[1]
    context = open(log + ".context").read()
    app = open(os.path.join(context, "src", "app.py"), "rb").read()
    with tarfile.open(out, "w") as tar:
        for name, data in ((".dockerenv", b""), ("usr/bin/dash", b"ELF"), ("panorama/app.py", app),
                           ("usr/lib/libfake.so", b"ELF")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
        for name, target in (("bin/sh", "/usr/bin/dash"), ("usr/lib/libfake.so.1", "/usr/lib/libfake.so")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
elif cmd == "rm":
    pass
else:
    sys.exit(2)
'''


@dataclass
class FakeDocker:
    """The fake docker's call log."""

    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]
