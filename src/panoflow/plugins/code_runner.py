"""The ``panoramasdk`` code runner: runs an unmodified Panorama application's entry script.

The script (``runtimeDescriptor.entry``, e.g. ``python3 /panorama/app.py``) runs as ``__main__`` in a thread of
this process, with ``panoramasdk`` bound to the node's ports, its directory first on ``sys.path`` and its
stdout/stderr captured to ``console_output`` (as on the appliance) and echoed with the node's name. The process is
expected to be inside the sandbox (:mod:`panoflow.sandbox`) so that ``/panorama`` and ``/opt/aws/panorama`` exist.
"""

from __future__ import annotations

import io
import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.from_thread
import anyio.lowlevel
import structlog

import socket

from panoflow.plugins.appproc.memory import FramePool
from panoflow.plugins.appproc.server import AppServer
from panoramasdk import _client
from panoramasdk._wire import Channel
from panoflow.core.bases import CodeRunner
from panoflow.core.hookspecs import hookimpl
from panoflow.core.ports import StreamsExhausted
from panoflow.core.runtime import CodeNodeContext
from panoflow.exceptions import NodeError

__all__ = ["PanoramaSdkRunner"]

log = structlog.get_logger(__name__)


class _ConsoleTee(io.TextIOBase):
    """Line-buffered writer: each line goes to ``console_output`` and, prefixed, to the real terminal stream."""

    def __init__(self, prefix: str, echo: TextIO, sink: TextIO):
        self._prefix, self._echo, self._sink = prefix, echo, sink
        self._buf = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._sink.write(text)
            self._buf += text
            *lines, self._buf = self._buf.split("\n")
            for line in lines:
                self._echo.write(f"{self._prefix}{line}\n")
            if lines:
                self._echo.flush()
                self._sink.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                self._echo.write(f"{self._prefix}{self._buf}\n")
                self._buf = ""
            self._echo.flush()
            self._sink.flush()


def _app_traceback(exc: BaseException, entry: str) -> str:
    """The traceback from the app's own frames on (runner and runpy frames dropped)."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = tb.stack
    for i, frame in enumerate(frames):
        if not frame.filename.startswith(("<frozen runpy>",)) and "runpy.py" not in frame.filename \
                and not frame.filename.endswith("code_runner.py"):
            tb.stack = traceback.StackSummary.from_list(frames[i:])
            break
    return "".join(tb.format())


class PanoramaSdkRunner(CodeRunner):
    name = "panoramasdk"

    async def run(self, context: Any) -> None:
        ctx: CodeNodeContext = context
        spec = ctx.spec
        if spec.runtime is None:
            raise NodeError("code package has no runtimeDescriptor (descriptor.json)", node_id=spec.node_id)
        interpreter = Path(spec.runtime.entry_path).name
        if not interpreter.startswith("python"):
            raise NodeError(
                f"entry {spec.runtime.entry_path} {spec.runtime.entry_name}: panoflow runs Python entry scripts "
                "(python3 /panorama/app.py); start your script from Python instead of a shell wrapper",
                node_id=spec.node_id,
            )
        entry = spec.runtime.entry_name
        if not os.path.isfile(entry):
            raise NodeError(f"entry script {entry} not found in the code package", node_id=spec.node_id)
        token = anyio.lowlevel.current_token()
        finished = anyio.Event()
        outcome: dict[str, BaseException | None] = {"error": None}

        def target() -> None:
            try:
                self._run_script(ctx, entry)
            except BaseException as exc:  # reported through outcome, raised on the event loop
                outcome["error"] = exc
            finally:
                try:
                    anyio.from_thread.run_sync(finished.set, token=token)
                except RuntimeError:  # event loop already gone
                    pass

        thread = threading.Thread(target=target, name=f"code:{spec.node_id}", daemon=True)
        thread.start()
        try:
            await finished.wait()
        except anyio.get_cancelled_exc_class():
            ctx.io.stop_event.set()
            raise
        error = outcome["error"]
        if error is not None:
            raise error

    def _run_script(self, ctx: CodeNodeContext, entry: str) -> None:
        spec = ctx.spec
        ctx.logs_dir.mkdir(parents=True, exist_ok=True)
        console = open(ctx.logs_dir / "console_output", "a", encoding="utf-8")  # noqa: SIM115
        real_out, real_err = sys.stdout, sys.stderr
        prefix = f"[{spec.node_id}] "
        sys.stdout = _ConsoleTee(prefix, real_out, console)
        sys.stderr = _ConsoleTee(prefix, real_err, console)
        old_argv, old_path = sys.argv, list(sys.path)
        sys.argv = [entry, *spec.runtime.arguments] if spec.runtime else [entry]
        sys.path.insert(0, os.path.dirname(entry))
        for key, value in {**dict(spec.runtime.environment if spec.runtime else ()), **ctx.options.environment}.items():
            os.environ[key] = value
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pool = FramePool(spec.node_id)
        server = AppServer(ctx.io, Channel(ours), pool)
        server_thread = threading.Thread(target=server.serve, name=f"sdk:{spec.node_id}", daemon=True)
        server_thread.start()
        client = _client.Client(theirs)
        client.hello()
        _client.bind(client)
        log.info("app_started", node_id=spec.node_id, entry=entry)
        try:
            if ctx.before_code is not None:
                ctx.before_code()
            runpy.run_path(entry, run_name="__main__")
            log.info("app_returned", node_id=spec.node_id)
        except (StreamsExhausted, _client.StreamsExhausted):
            log.info("app_inputs_ended", node_id=spec.node_id)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise NodeError(f"application exited with status {exc.code}", node_id=spec.node_id) from None
        except BaseException as exc:
            text = _app_traceback(exc, entry)
            sys.stderr.flush()
            real_err.write(f"\n[{spec.node_id}] application failed:\n{text}")
            real_err.flush()
            console.write(text)
            raise NodeError(f"application raised {type(exc).__name__}: {exc}", node_id=spec.node_id) from None
        finally:
            _client.unbind()
            client.channel.close()
            server_thread.join(5)
            server.channel.close()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            sys.stdout, sys.stderr = real_out, real_err
            sys.argv, sys.path[:] = old_argv, old_path
            console.close()


@hookimpl
def panoflow_code_runners() -> list[type[CodeRunner]]:
    return [PanoramaSdkRunner]
