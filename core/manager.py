"""The plugin manager factory: built-in plugin modules plus third-party entry points of group ``dfzoo``."""
from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DISABLE_AUTOLOAD_ENV = "DFZOO_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PACKAGE = "dfzoo.plugins"

log = logging.getLogger(__name__)


@dataclass
class PluginProblem:
    """A plugin that could not be loaded or whose hook raised; reported by `dfzoo list` and skipped."""

    plugin: str
    error: str


class DfzooPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers which plugins failed, so they can be reported, not lost."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.problems: list[PluginProblem] = []


def builtin_plugin_modules() -> list[str]:
    """Every public module of ``dfzoo.plugins`` (one module per method), sorted for a stable order."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(
        f"{BUILTIN_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def get_plugin_manager(*, builtins: bool = True, autoload: bool | None = None,
                       extra_plugins: tuple[object, ...] = ()) -> DfzooPluginManager:
    """Build a fresh plugin manager.

    Built-in plugins are registered first, then entry points of group ``dfzoo`` (unless ``autoload`` is
    False or ``$DFZOO_DISABLE_PLUGIN_AUTOLOAD`` is set), then ``extra_plugins``. A third-party plugin that
    fails to import is recorded in ``pm.problems`` and skipped; a misspelled hook raises.
    """
    pm = DfzooPluginManager()
    pm.add_hookspecs(hookspecs)
    if builtins:
        for module_name in builtin_plugin_modules():
            pm.register(importlib.import_module(module_name), name=module_name)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        _load_entry_points(pm)
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _load_entry_points(pm: DfzooPluginManager) -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"{entry_point.name} ({entry_point.value})"
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except Exception as error:  # a broken third-party plugin must not take the zoo down
            log.warning("skipping plugin %s: %s: %s", label, type(error).__name__, error)
            pm.problems.append(PluginProblem(label, f"{type(error).__name__}: {error}"))
