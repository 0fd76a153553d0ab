"""Projects for the packaging tests, built with the packaging commands themselves, in the Dockerfile styles
the published Panorama samples use."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.packaging.commands import Result

ACCOUNT = "123456789012"
CODE = f"{ACCOUNT}-CODE-1.0"

#: style -> (Dockerfile, where the code lives in the package, where requirements.txt lives)
STYLES: dict[str, tuple[str, str, str | None]] = {
    # the panorama-cli template and most samples
    "copy-src": (("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n"
                 "RUN pip3 install -r /panorama/requirements.txt\n"), "src", "src"),
    # the developer guide's samples
    "workdir-copy-dot": (("FROM public.ecr.aws/panorama/panorama-application:1.2.0-py3.8\nWORKDIR /panorama\n"
                         "COPY . .\nRUN pip install --no-cache-dir -r requirements.txt\n"), ".", "."),
    # requirements named on the RUN line, with pip's own upgrade (which is not shipped)
    "run-pip-install": (("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\nRUN python3 "
                        "-m pip install --upgrade pip && \\\n    pip3 install pf-test-greeting==1.0\n"),
                        "src", None),
}

APP = """import json
import panoramasdk
import pf_greeting

print("greeting:", pf_greeting.GREETING, flush=True)
"""


def new_project(cli: Callable[..., Result], root: Path, name: str = "app") -> Path:
    r = cli("init-project", "--name", name, cwd=root)
    assert r.code == 0, r.err
    return root / name


def code_package(cli: Callable[..., Result], app: Path, style: str = "copy-src", app_py: str = APP) -> Path:
    """A Container package CODE in ``style``, its code printing a greeting from a requirement."""
    r = cli("create-package", "--type", "Container", "--name", "CODE", "--account", ACCOUNT, cwd=app)
    assert r.code == 0, r.err
    pkg = app / "packages" / CODE
    dockerfile, code_dir, req_dir = STYLES[style]
    (pkg / "Dockerfile").write_text(dockerfile)
    if code_dir == ".":
        (pkg / "src" / "app.py").unlink()
        (pkg / "src").rmdir()
    (pkg / code_dir / "app.py").write_text(app_py)
    (pkg / code_dir / "labels.txt").write_text("person\ncar\n")
    if req_dir is not None:
        (pkg / req_dir / "requirements.txt").write_text("pf-test-greeting==1.0\n")
    return pkg


def package_json(pkg: Path) -> dict[str, Any]:
    return json.loads((pkg / "package.json").read_text())["nodePackage"]


def build(cli: Callable[..., Result], app: Path, wheelhouse: Path, *extra: str, pkg: str = CODE,
          asset: str = "code_asset") -> Result:
    return cli("build-container", "--container-asset-name", asset, "--package-path", f"packages/{pkg}",
               "--no-index", "--find-links", wheelhouse, *extra, cwd=app)
