"""A plugin manager per runtime: built-ins from an explicit tuple, third-party plugins from entry points.

No module-level manager: tests and runtimes each build one with exactly the plugins they need.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import Any

import pluggy

from panoflow.core import bases, hookspecs
from panoflow.exceptions import PluginError

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Plugins", "build_plugins"]

ENTRY_POINT_GROUP = "panoflow"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool


class Plugins:
    """The registered plugins and, keyed by name, what they provide."""

    def __init__(self, pm: pluggy.PluginManager, builtin_names: Iterable[str] = ()):
        self.pm = pm
        self._builtin = set(builtin_names)
        self._versions: dict[str, str] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _collect(self, hook_name: str, key: str) -> dict[str, Any]:
        caller = getattr(self.pm.hook, hook_name)
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for impl in reversed(caller.get_hookimpls()):  # registration order
            owner = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            for item in impl.function() or ():
                name = getattr(item, key)
                if name in found:
                    raise PluginError(
                        f"two plugins provide {hook_name.removeprefix('panoflow_')} {name!r}: "
                        f"{owners[name]} and {owner}; uninstall one of them"
                    )
                found[name] = item
                owners[name] = owner
        return found

    @cached_property
    def sources(self) -> Mapping[str, type[bases.MediaSource]]:
        return self._collect("panoflow_media_sources", "scheme")

    @cached_property
    def sinks(self) -> Mapping[str, type[bases.MediaSink]]:
        return self._collect("panoflow_media_sinks", "name")

    @cached_property
    def model_backends(self) -> Mapping[str, type[bases.ModelBackend]]:
        return self._collect("panoflow_model_backends", "name")

    @cached_property
    def parameter_types(self) -> Mapping[str, bases.ParameterType]:
        return self._collect("panoflow_parameter_types", "name")

    @cached_property
    def code_runners(self) -> Mapping[str, type[bases.CodeRunner]]:
        return self._collect("panoflow_code_runners", "name")

    @cached_property
    def cloud_connectors(self) -> Mapping[str, type[bases.CloudConnector]]:
        return self._collect("panoflow_cloud_connectors", "name")

    def check(self) -> None:
        """Resolve every registry now, so duplicate names fail at start-up rather than mid-run."""
        for attr in ("sources", "sinks", "model_backends", "parameter_types", "code_runners",
                     "cloud_connectors"):
            getattr(self, attr)

    def info(self) -> list[PluginInfo]:
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            out.append(
                PluginInfo(name, self._versions.get(name, _module_version(plugin)), hooks,
                           name in self._builtin)
            )
        return sorted(out, key=lambda p: (not p.builtin, p.name))


def _module_version(plugin: object) -> str:
    """The installed version of the distribution that holds ``plugin`` (built-ins: panoflow's own)."""
    top = getattr(plugin, "__name__", type(plugin).__module__).split(".")[0]
    try:
        return md.version(top)
    except md.PackageNotFoundError:
        return getattr(plugin, "__version__", "unknown")


def build_plugins(
    builtins: Iterable[str | ModuleType | object] = (),
    *,
    entry_points: bool = True,
    extra: Iterable[object] = (),
) -> Plugins:
    """Build a plugin manager: ``builtins`` (module names or objects), then the ``panoflow`` entry-point
    group, then ``extra`` (tests). A plugin that fails to import is a :class:`PluginError` naming it."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    names: list[str] = []
    for item in builtins:
        plugin = _import(item) if isinstance(item, str) else item
        name = item if isinstance(item, str) else getattr(item, "__name__", repr(item))
        pm.register(plugin, name=name)
        names.append(name)
    plugins = Plugins(pm, names)
    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must name itself
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            pm.register(obj, name=ep.name)
            if ep.dist is not None:
                plugins._versions[ep.name] = ep.dist.version
    for obj in extra:
        pm.register(obj)
    pm.check_pending()
    return plugins


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PluginError(f"built-in plugin {name} failed to import: {exc}") from exc
