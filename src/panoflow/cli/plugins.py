"""``panoflow plugins``: every plugin panoflow found (built-in or installed), its version and hooks."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list built-in and installed plugins with their versions and hooks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=plugins_command)


def plugins_command(args: argparse.Namespace) -> int:
    from panoflow.core.plugins import build_plugins
    from panoflow.plugins import BUILTINS

    plugins = build_plugins(BUILTINS)
    plugins.check()
    infos = plugins.info()
    provides = {
        "sources": sorted(plugins.sources), "sinks": sorted(plugins.sinks),
        "model_backends": sorted(plugins.model_backends), "parameter_types": sorted(plugins.parameter_types),
        "code_runners": sorted(plugins.code_runners), "cloud_connectors": sorted(plugins.cloud_connectors),
    }
    if args.json:
        print(json.dumps({
            "plugins": [
                {"name": i.name, "version": i.version, "builtin": i.builtin,
                 "hooks": list(i.hooks)} for i in infos
            ],
            "provides": provides,
        }, indent=2))
        return 0
    width = max((len(i.name) for i in infos), default=10)
    for i in infos:
        kind = "built-in" if i.builtin else "installed"
        hooks = ", ".join(h.removeprefix("panoflow_") for h in i.hooks)
        print(f"{i.name:<{width}}  {i.version:<10} {kind:<9}  {hooks}")
    print()
    for key, names in provides.items():
        print(f"{key.replace('_', ' ')}: {', '.join(names) or '-'}")
    return 0
