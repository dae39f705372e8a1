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


KINDS: dict[str, tuple[str, type]] = {
    "detector": ("dfzoo_detectors", DetectorSpec),
    "dataset": ("dfzoo_datasets", DatasetSpec),
    "backbone": ("dfzoo_backbones", BackboneSpec),
    "weights": ("dfzoo_weights", WeightsSpec),
    "perturbation": ("dfzoo_perturbations", PerturbationSpec),
    "command": ("dfzoo_commands", CommandSpec),
}


class Registry:
    """Every spec the installed plugins offer, by kind and name.

    A duplicate name raises and names both providers; a plugin whose hook raises is recorded in
    ``problems`` and skipped, so one broken plugin cannot hide the rest.
    """

    def __init__(self, pm: DfzooPluginManager | None = None) -> None:
        self.pm = pm if pm is not None else get_plugin_manager()
        self.problems: list[PluginProblem] = list(getattr(self.pm, "problems", []))
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, spec_type) in KINDS.items():
            self._collect(kind, hook_name, spec_type)

    def _collect(self, kind: str, hook_name: str, spec_type: type) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            provider = self.pm.get_name(impl.plugin) or impl.plugin_name
            try:
                specs = list(impl.function() or ())
            except Exception as error:
                log.warning("plugin %s failed in %s: %s", provider, hook_name, error)
                self.problems.append(PluginProblem(provider, f"{hook_name}: {type(error).__name__}: {error}"))
                continue
            for spec in specs:
                self._add(kind, spec_type, spec, provider)

    def _add(self, kind: str, spec_type: type, spec: Any, provider: str) -> None:
        if not isinstance(spec, spec_type):
            raise RegistryError(f"plugin {provider} offered {spec!r} as a {kind}; expected {spec_type.__name__}")
        if not NAME_PATTERN.match(spec.name):
            raise RegistryError(f"plugin {provider} offered {kind} name {spec.name!r}: names are lower-case "
                                f"letters, digits, '_', '-', '.'")
        existing = self._entries[kind].get(spec.name)
        if existing is not None:
            raise RegistryError(f"{kind} {spec.name!r} is offered twice: by {existing.provider} and by {provider}")
        self._entries[kind][spec.name] = Entry(spec, provider)

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

    def weights_needed(self, detector: str, params: dict[str, Any] | None = None) -> list[str]:
        """Names of the weights a detector needs with these params (backbone names map to their weights)."""
        spec = self.detector(detector)
        merged = {**spec.params, **(params or {})}
        needed: list[str] = []
        for param in spec.weight_params:
            values = merged.get(param)
            values = values if isinstance(values, (list, tuple)) else [values]
            # "a+b" names a concatenation of backbones (registered names never contain "+")
            for value in [part for v in values for part in (v.split("+") if isinstance(v, str) else [v])]:
                if not isinstance(value, str) or not value:
                    continue
                if value in self._entries["backbone"]:
                    weights = self.backbone(value).weights
                    if weights:
                        needed.append(weights)
                elif value in self._entries["weights"]:
                    needed.append(value)
        return needed


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
