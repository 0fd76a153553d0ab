"""The ``panoramasdk`` code runner: runs an unmodified Panorama application's entry script.

The script (``runtimeDescriptor.entry``, e.g. ``python3 /panorama/app.py``) runs as a process of its own, in
its own Python environment and a sandbox, talking to the runtime through the thin ``panoramasdk`` client: see
:mod:`panoflow.plugins.appproc.runner`. (Native asyncio nodes installed as plugins run in-process instead:
:mod:`panoflow.plugins.native_runner`.)
"""

from __future__ import annotations

from typing import Any

from panoflow.core.bases import CodeRunner
from panoflow.core.hookspecs import hookimpl
from panoflow.plugins.appproc.runner import run_app_process

__all__ = ["PanoramaSdkRunner"]


class PanoramaSdkRunner(CodeRunner):
    name = "panoramasdk"

    async def run(self, context: Any) -> None:
        await run_app_process(context)


@hookimpl
def panoflow_code_runners() -> list[type[CodeRunner]]:
    return [PanoramaSdkRunner]
