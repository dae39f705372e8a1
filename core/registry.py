"""Collects the specs every plugin offers, validates them and looks them up by name."""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from .manager import DfzooPluginManager, PluginProblem, get_plugin_manager
from .spec import NAME_PATTERN, BackboneSpec, CommandSpec, DatasetSpec, DetectorSpec, PerturbationSpec, WeightsSpec

log = logging.getLogger(__name__)
SpecT = TypeVar("SpecT")


class RegistryError(Exception):
    """A spec is invalid, duplicated or unknown."""


class UnknownNameError(RegistryError, KeyError):
    """No spec of that kind has that name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[SpecT]):
    spec: SpecT
    provider: str


# any spec a plugin may offer
AnySpec = DetectorSpec | DatasetSpec | BackboneSpec | WeightsSpec | PerturbationSpec | CommandSpec
KINDS: dict[str, tuple[str, type[AnySpec]]] = {
    "detector": ("dfzoo_detectors", DetectorSpec),
    "dataset": ("dfzoo_datasets", DatasetSpec),
    "backbone": ("dfzoo_backbones", BackboneSpec),
    "weights": ("dfzoo_weights", WeightsSpec),
    "perturbation": ("dfzoo_perturbations", PerturbationSpec),
    "command": ("dfzoo_commands", CommandSpec),
}


class Registry:
    """Every spec the installed plugins offer, by kind and name.

    A third-party plugin that cannot be used (a hook raises, a spec of the wrong type or with a bad name, a
    name another plugin offers already) is skipped as a whole with a one-line warning and recorded in
    ``problems``, so one broken plugin cannot take the zoo down. Built-in plugins are collected first, so a
    third-party plugin never replaces one of their names; a bad spec or a duplicate among built-ins raises
    :class:`RegistryError` (that is a bug in dfzoo, not in the environment).
    """

    def __init__(self, pm: DfzooPluginManager | None = None) -> None:
        self.pm = pm if pm is not None else get_plugin_manager()
        self.problems: list[PluginProblem] = list(getattr(self.pm, "problems", []))
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        builtins: set[str] = getattr(self.pm, "builtins", set())
        for provider, offers in self._gather(builtins).items():
            try:
                self._add_all(provider, offers)
            except RegistryError as error:
                if provider in builtins:
                    raise
                self._skip(provider, str(error))

    def _gather(self, builtins: set[str]) -> dict[str, list[tuple[str, Any]]]:
        """provider -> its (kind, spec) offers, built-ins first, then in registration order; a plugin whose
        hook raises (or exits) offers nothing."""
        registered = [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]
        offers: dict[str, list[tuple[str, Any]]] = {
            name: [] for name in sorted(registered, key=lambda name: name not in builtins)
        }
        failed: set[str] = set()
        for kind, (hook_name, _) in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                provider = self.pm.get_name(impl.plugin) or impl.plugin_name
                if provider in failed:
                    continue
                try:
                    specs = list(impl.function() or ())
                except (Exception, SystemExit) as error:  # a plugin's sys.exit() must not end dfzoo either
                    failed.add(provider)
                    self._skip(provider, f"{hook_name} raised {type(error).__name__}: {error}")
                    continue
                offers.setdefault(provider, []).extend((kind, spec) for spec in specs)
        return {provider: specs for provider, specs in offers.items() if provider not in failed}

    def _add_all(self, provider: str, offers: list[tuple[str, Any]]) -> None:
        """Add every spec of one plugin, or none of them when one is invalid or taken."""
        new: dict[tuple[str, str], Any] = {}
        for kind, spec in offers:
            spec_type = KINDS[kind][1]
            if not isinstance(spec, spec_type):
                raise RegistryError(f"plugin {provider} offered {spec!r} as a {kind}; expected {spec_type.__name__}")
            if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
                raise RegistryError(
                    f"plugin {provider} offered {kind} name {spec.name!r}: names are lower-case "
                    f"letters, digits, '_', '-', '.'"
                )
            existing = self._entries[kind].get(spec.name)
            if existing is not None or (kind, spec.name) in new:
                first = existing.provider if existing is not None else provider
                raise RegistryError(f"{kind} {spec.name!r} is offered twice: by {first} and by {provider}")
            new[kind, spec.name] = spec
        for (kind, name), spec in new.items():
            self._entries[kind][name] = Entry(spec, provider)

    def _skip(self, provider: str, reason: str) -> None:
        log.warning("skipping plugin %s: %s", provider, reason)
        self.problems.append(PluginProblem(provider, reason))

    # -- look-ups ------------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        return [self._entries[kind][name] for name in self.names(kind)]

    def get(self, kind: str, name: str) -> Any:
        try:
            return self._entries[kind][name].spec
        except KeyError:
            close = difflib.get_close_matches(name, self._entries[kind], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names(kind))}"
            raise UnknownNameError(f"no {kind} named {name!r}{hint}") from None

    def provider(self, kind: str, name: str) -> str:
        self.get(kind, name)
        return self._entries[kind][name].provider

    def detector(self, name: str) -> DetectorSpec:
        return self.get("detector", name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("dataset", name)

    def backbone(self, name: str) -> BackboneSpec:
        return self.get("backbone", name)

    def weights(self, name: str) -> WeightsSpec:
        return self.get("weights", name)

    def perturbation(self, name: str) -> PerturbationSpec:
        return self.get("perturbation", name)

    def auto_backbone(self, candidates: tuple[str, ...]) -> str:
        """The first registered backbone of ``candidates`` whose weights resolve here, else the first
        registered one (whose weights are then reported missing)."""
        from .weights import can_resolve

        known = [name for name in candidates if name in self._entries["backbone"]]
        for name in known:
            weights = self.backbone(name).weights
            if not weights or can_resolve(self.weights(weights)):
                return name
        return known[0] if known else AUTO

    def unknown_names(self, detector: str, params: dict[str, Any] | None = None) -> list[str]:
        """``param: value`` for every parameter declared ``Param(names="backbone")`` whose value names neither a
        registered backbone nor registered weights (so a typo fails before any work, not as an error row)."""
        spec = self.detector(detector)
        declared = {name for name, param in spec.param_schema.items() if param.names == "backbone"}
        return [
            f"{param}: no backbone named {value!r}"
            for param, value in self.weight_values(detector, params)
            if param in declared and value not in self._entries["backbone"] and value not in self._entries["weights"]
        ]

    def weight_values(self, detector: str, params: dict[str, Any] | None = None) -> list[tuple[str, str]]:
        """``(param, name)`` for every name a detector's weight parameters give with these params: ``"a+b"``
        split, a ``":layers=..."`` suffix dropped, ``"auto"`` read as the backbone it stands for."""
        spec = self.detector(detector)
        merged = {**spec.params, **(params or {})}
        out: list[tuple[str, str]] = []
        for param in spec.weight_params:
            values = merged.get(param)
            values = values if isinstance(values, (list, tuple)) else [values]
            # "a+b" names a concatenation of backbones (registered names never contain "+")
            for value in [part for v in values for part in (v.split("+") if isinstance(v, str) else [v])]:
                if not isinstance(value, str) or not value:
                    continue
                value = value.partition(":")[0]  # "name:layers=5-11": blocks of backbone name (dfzoo.layers)
                if value == AUTO and spec.auto_backbones:
                    value = self.auto_backbone(spec.auto_backbones)
                out.append((param, value))
        return out

    def weights_needed(self, detector: str, params: dict[str, Any] | None = None) -> list[str]:
        """Names of the weights a detector needs with these params (backbone names map to their weights)."""
        needed: list[str] = []
        for _, value in self.weight_values(detector, params):
            if value in self._entries["backbone"]:
                weights = self.backbone(value).weights
                if weights:
                    needed.append(weights)
            elif value in self._entries["weights"]:
                needed.append(value)
        return needed


AUTO = "auto"


def spec_fields(spec: Any) -> dict[str, Any]:
    """A spec's fields as a dict, callables shown by qualified name (for listing and JSON)."""
    out = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        out[f.name] = getattr(value, "__qualname__", value) if callable(value) else value
    return out


_current: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("dfzoo_registry", default=None)
_default: list[Registry] = []


def current_registry() -> Registry:
    """The registry in use: the one set by :func:`use_registry`, else a default built once on first use."""
    registry = _current.get()
    if registry is not None:
        return registry
    if not _default:
        _default.append(Registry())
    return _default[0]


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the one factories see (tests use this to add plugins without installing them)."""
    token = _current.set(registry)
    try:
        yield registry
    finally:
        _current.reset(token)
