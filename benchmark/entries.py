"""A protocol's detector entries made concrete against the registry: ``"*"`` expanded, parameters merged
(spec defaults < ``detector_params.<name>`` < the entry's own) and validated, labels that name only what
differs from the defaults, and the offline-weights check of ``offline_only``. Command-line ``--param`` values
come in two forms: ``key=value`` for every chosen detector and ``name.key=value`` for detector ``name`` alone
(:func:`split_params`, :func:`with_command_line_params`)."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .protocol import ANY_DETECTOR, DetectorEntry, Protocol, ProtocolError

if TYPE_CHECKING:
    from dfzoo.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedDetector:
    """A protocol's detector entry made concrete: merged params, a label, and why it is skipped (if so)."""

    name: str
    params: dict[str, Any]
    label: str
    params_hash: str
    skip_reason: str = ""


def params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def detector_label(name: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """``name[key=value,...]`` with only the parameters that differ from the spec's defaults."""
    changed = {k: v for k, v in sorted(params.items()) if k not in defaults or defaults[k] != v}
    if not changed:
        return name
    return f"{name}[{','.join(f'{k}={_short(v)}' for k, v in changed.items())}]"


def _short(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def resolve_detectors(protocol: Protocol, registry: Registry, *, check_weights: bool = True) -> list[ResolvedDetector]:
    """Expand ``"*"``, merge parameters, validate names and every parameter value against the detector's spec
    (``"none"`` read as None where the spec allows it), and apply ``offline_only`` (unless ``check_weights``
    is False: the harness validates every protocol this way before it opens any dataset)."""
    from dfzoo.registry import UnknownNameError
    from dfzoo.spec import ParamError
    from dfzoo.weights import can_resolve

    known = registry.names("detector")
    for name in protocol.detector_params:
        if name not in known:  # a warning, not an error: shared protocols stay usable without every plugin
            log.warning("%s: detector_params.%s: no detector named %r is installed; ignored", protocol.name, name, name)
    out: list[ResolvedDetector] = []
    seen: set[tuple[str, str]] = set()
    for entry in protocol.detectors:
        if entry.name == ANY_DETECTOR:
            names = known
        else:
            try:
                registry.detector(entry.name)
            except UnknownNameError as error:
                raise ProtocolError(f"{protocol.name}: {error}") from None
            names = [entry.name]
        for name in names:
            spec = registry.detector(name)
            own = dict(entry.params)
            if entry.name == ANY_DETECTOR:  # wildcard params only reach detectors that declare them
                own = {k: v for k, v in own.items() if k in spec.params}
            try:
                merged = spec.check_params({**protocol.detector_params.get(name, {}), **own})
            except ParamError as error:
                raise ProtocolError(f"{protocol.name}: {error}") from None
            unknown = registry.unknown_names(name, merged)
            if unknown:
                backbones = ", ".join(registry.names("backbone"))
                raise ProtocolError(f"{protocol.name}: detector {name!r}: {unknown[0]}; known: {backbones}")
            digest = params_hash(merged)
            if (name, digest) in seen:
                continue
            seen.add((name, digest))
            label = (
                entry.label if entry.label and entry.name != ANY_DETECTOR else detector_label(name, merged, spec.params)
            )
            reason = ""
            if protocol.offline_only and check_weights:
                missing = [w for w in registry.weights_needed(name, merged) if not can_resolve(registry.weights(w))]
                if missing:
                    reason = (
                        f"weights {', '.join(missing)} do not resolve offline "
                        f"(offline_only = true; `dfzoo weights` shows how to fetch them)"
                    )
            out.append(ResolvedDetector(name, merged, label, digest, reason))
    labels = Counter(d.label for d in out)
    duplicated = [label for label, count in labels.items() if count > 1]
    if duplicated:
        raise ProtocolError(f"{protocol.name}: two detector entries share the label(s) {', '.join(duplicated)}")
    return out


def split_params(
    params: Mapping[str, Any], detectors: Collection[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``--param`` values split into those for every detector (``key``) and those for one (``name.key``,
    ``name`` one of ``detectors``); a dotted key naming no detector is a :class:`ProtocolError`."""
    shared: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        name, dot, param = key.rpartition(".")
        if not dot:
            shared[key] = value
            continue
        if name not in detectors or not param:
            close = difflib.get_close_matches(name, list(detectors), n=1)
            hint = f"; did you mean {close[0]}.{param}?" if close else f"; detectors: {', '.join(sorted(detectors))}"
            raise ProtocolError(f"--param {key}={value}: {name!r} is not a detector (name.key=value){hint}")
        own.setdefault(name, {})[param] = value
    return shared, own


def with_command_line_params(
    protocol: Protocol,
    shared: Mapping[str, Any],
    own: Mapping[str, Mapping[str, Any]],
    registry: Registry,
    named: Sequence[str] = (),
) -> Protocol:
    """``protocol`` with command-line detector choices and parameters: ``named`` detectors (``--detector``)
    replace its entries and take every ``shared`` value; otherwise its entries stay and take the shared values
    they declare. ``own[name]`` goes to detector ``name`` over everything else (a wildcard entry is expanded
    for this, so one detector's value can beat a shared one)."""
    if named:
        out = [DetectorEntry(name, {**shared, **own.get(name, {})}) for name in named]
        return protocol.replace(detectors=tuple(out))

    def declared(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if name not in registry.names("detector"):  # resolve_detectors names the unknown one
            return {}
        return {k: v for k, v in params.items() if k in registry.detector(name).params}

    out = []
    for entry in protocol.detectors:
        if entry.name != ANY_DETECTOR:
            params = {**entry.params, **declared(entry.name, shared), **own.get(entry.name, {})}
            out.append(DetectorEntry(entry.name, params, entry.label))
        elif not own:
            out.append(DetectorEntry(ANY_DETECTOR, {**entry.params, **shared}, entry.label))
        else:
            for name in registry.names("detector"):
                params = {**declared(name, {**entry.params, **shared}), **own.get(name, {})}
                out.append(DetectorEntry(name, params))
    return protocol.replace(detectors=tuple(out))


__all__ = [
    "ResolvedDetector",
    "detector_label",
    "params_hash",
    "resolve_detectors",
    "split_params",
    "with_command_line_params",
]
