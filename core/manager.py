"""The plugin manager factory: built-in plugin modules plus third-party entry points of group ``dfzoo``."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DISABLE_AUTOLOAD_ENV = "DFZOO_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_PLUGINS_ENV = "DFZOO_DISABLE_PLUGINS"
BUILTIN_PACKAGE = "dfzoo.plugins"

# dfzoo's own plugins, by kind (as pytest lists its default plugins): a module is registered because it is
# named here, never because of where it sits. Modules and packages with a leading underscore are private
# helpers of the plugins beside them.
BUILTIN_PLUGINS: tuple[str, ...] = tuple(
    f"{BUILTIN_PACKAGE}.{name}"
    for name in (
        "detectors.aeroblade",
        "detectors.autoencoder",
        "detectors.dire",
        "detectors.fft_densenet",
        "detectors.fusion",
        "detectors.hierarchical_resnet18",
        "detectors.npr",
        "detectors.probe",
        "detectors.resnet_finetune",
        "detectors.rine",
        "detectors.univfd",
        "backbones.standard",
        "backbones.extra",
        "backbones.clip_float",
        "backbones.foundation",
        "backbones.lpips",
        "datasets.layouts",
        "datasets.generator_zoo",
        "perturbations.standard",
        "commands.core",
        "commands.benchmark",
        "commands.grid",
        "commands.explain",
        "commands.report",
    )
)

log = logging.getLogger(__name__)


@dataclass
class PluginProblem:
    """A plugin that could not be loaded or whose hook raised; reported by `dfzoo list` and skipped."""

    plugin: str
    error: str


class DfzooPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which plugins failed (reported, not lost) and which are built in
    (a problem in one of those is dfzoo's bug and raises; a third-party one is skipped)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.problems: list[PluginProblem] = []
        self.builtins: set[str] = set()

    def register_builtin(self, plugin: object, name: str) -> None:
        """Register one of dfzoo's own plugins."""
        self.register(plugin, name=name)
        self.builtins.add(name)


def builtin_plugin_modules() -> list[str]:
    """The built-in plugin modules, in registration order."""
    return list(BUILTIN_PLUGINS)


def blocked_plugin_names(value: str | None = None) -> set[str]:
    """Names in ``$DFZOO_DISABLE_PLUGINS`` (comma-separated): entry-point names or built-in module names."""
    text = os.environ.get(DISABLE_PLUGINS_ENV, "") if value is None else value
    return {name.strip() for name in text.split(",") if name.strip()}


def builtin_aliases(module_name: str) -> set[str]:
    """The names a built-in answers to when blocked: ``dfzoo.plugins.detectors.dire``, ``detectors.dire``, ``dire``."""
    tail = module_name.removeprefix(f"{BUILTIN_PACKAGE}.")
    return {module_name, tail, tail.rsplit(".", 1)[-1]}


def get_plugin_manager(
    *, builtins: bool = True, autoload: bool | None = None, extra_plugins: tuple[object, ...] = ()
) -> DfzooPluginManager:
    """Build a fresh plugin manager.

    Built-in plugins (:data:`BUILTIN_PLUGINS`) are registered first, then entry points of group
    ``dfzoo`` (unless ``autoload`` is False or ``$DFZOO_DISABLE_PLUGIN_AUTOLOAD`` is set), then
    ``extra_plugins``. An entry-point plugin that fails to import or register, or implements a hook dfzoo
    does not have, is recorded in ``pm.problems`` and skipped with a warning. Plugins named in
    ``$DFZOO_DISABLE_PLUGINS`` are blocked (pluggy's ``set_blocked``): never imported, never registered.
    ``extra_plugins`` are the caller's own: a misspelled hook there raises.
    """
    pm = DfzooPluginManager()
    pm.add_hookspecs(hookspecs)
    blocked = blocked_plugin_names()
    for name in blocked:
        pm.set_blocked(name)
    if builtins:
        for module_name in builtin_plugin_modules():
            if builtin_aliases(module_name) & blocked:
                pm.set_blocked(module_name)
                continue
            pm.register_builtin(importlib.import_module(module_name), module_name)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        _load_entry_points(pm)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        pm.register(plugin, name=name if pm.get_plugin(name) is None else None)  # readable in messages
    pm.check_pending()
    return pm


def _load_entry_points(pm: DfzooPluginManager) -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"{entry_point.name} ({entry_point.value})"
        if pm.is_blocked(entry_point.name):
            continue
        if pm.get_plugin(entry_point.name) is not None:
            _skip(pm, label, f"another plugin is registered as {entry_point.name!r} already")
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except (Exception, SystemExit) as error:  # a broken third-party plugin must not take the zoo down
            _skip(pm, label, f"{type(error).__name__}: {error}")
            continue
        unknown = unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            _skip(pm, label, f"implements hook(s) dfzoo does not have: {', '.join(unknown)}")


def unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Names of the hooks ``plugin`` implements that have no hookspec (misspelled or from another version)."""
    return sorted(
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller)
        and not caller.has_spec()
        and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
    )


def _skip(pm: DfzooPluginManager, label: str, reason: str) -> None:
    log.warning("skipping plugin %s: %s", label, reason)
    pm.problems.append(PluginProblem(label, reason))
