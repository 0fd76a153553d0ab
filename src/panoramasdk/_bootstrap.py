"""The first code of an application process: ``python -m panoramasdk._bootstrap ENTRY [ARG ...]``.

It connects to the runtime (the descriptor named by ``PANOFLOW_SDK_FD``), then runs the application's entry
script as ``__main__`` exactly as ``python3 /panorama/app.py`` would (its folder first on ``sys.path``, its
arguments in ``sys.argv``), and tells the runtime how it ended: its inputs ran out, it returned, it exited
with a status, or it raised (the traceback, from the application's own frames on, goes to stderr:
``console_output``).
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback

from panoramasdk._client import ENV_FD, StreamsExhausted, current


def _app_traceback(exc: BaseException) -> str:
    """The traceback from the app's own frames on (this module's and runpy's frames dropped)."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = tb.stack
    for i, frame in enumerate(frames):
        name = frame.filename
        if "runpy" not in name and not name.endswith("_bootstrap.py"):
            tb.stack = traceback.StackSummary.from_list(frames[i:])
            break
    return "".join(tb.format())


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: python -m panoramasdk._bootstrap ENTRY [ARG ...]\n")
        return 2
    entry, args = sys.argv[1], sys.argv[2:]
    client = current()
    os.environ.pop(ENV_FD, None)  # the app's own subprocesses do not inherit the connection's name
    sys.argv = [entry, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(entry))
    try:
        runpy.run_path(entry, run_name="__main__")
    except StreamsExhausted as exc:
        client.send_exit("exhausted", message=str(exc))
        return 0
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            client.send_exit("returned")
            return 0
        if not isinstance(code, int):
            sys.stderr.write(f"{code}\n")
            code = 1
        client.send_exit("exited", code=code)
        return code
    except BaseException as exc:  # noqa: BLE001 (the app failed: report it, in its own words)
        sys.stderr.flush()
        sys.stderr.write("application failed:\n" + _app_traceback(exc))
        sys.stderr.flush()
        client.send_exit("raised", type=type(exc).__name__, message=str(exc)[:2000])
        return 1
    client.send_exit("returned")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads the app left running must not keep the process alive once its entry script is done.
    os._exit(code)
