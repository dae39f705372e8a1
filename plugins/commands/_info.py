"""What ``dfzoo info DETECTOR`` and ``dfzoo list --offline`` say: a detector's parameters (type, default,
allowed values), the weights it needs and whether they resolve here, and a configuration that runs offline.

The offline configuration is the stand-in the default protocols record for the detector (e.g. an
EfficientNet-Lite0 backbone where CLIP weights are missing): data the benchmark already holds, so the
example command and the default benchmark agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dfzoo.registry import Registry

NO_OFFLINE = None  # offline_params() when no known configuration of a detector runs on this machine


class WeightsCheck:
    """Whether weights resolve here without a download, asked once per name (each ask may look in caches)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._known: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        from dfzoo.weights import can_resolve

        if name not in self._known:
            self._known[name] = can_resolve(self.registry.weights(name))
        return self._known[name]

    def missing(self, detector: str, params: dict[str, Any] | None = None) -> list[str]:
        """The weights ``detector`` needs with ``params`` (over its defaults) that do not resolve here."""
        return [w for w in self.registry.weights_needed(detector, params) if not self(w)]


def stand_in_params(name: str) -> dict[str, Any]:
    """The parameters the default protocols give ``name`` (their offline stand-ins), or ``{}``."""
    from dfzoo.benchmark.protocol import default_protocols

    for protocol in default_protocols():
        if name in protocol.detector_params:
            return dict(protocol.detector_params[name])
    return {}


def offline_params(name: str, check: WeightsCheck) -> dict[str, Any] | None:
    """``{}`` when ``name`` runs here with its defaults, the default protocols' stand-in parameters when
    those run here, else :data:`NO_OFFLINE`."""
    if not check.missing(name):
        return {}
    stand_in = stand_in_params(name)
    if stand_in and not check.missing(name, stand_in):
        return stand_in
    return NO_OFFLINE


def param_flags(name: str, params: dict[str, Any]) -> str:
    """``--param name.key=value`` flags for ``params`` (TOML-readable values, as ``--param`` parses them)."""
    return " ".join(f"--param {name}.{key}={cli_value(value)}" for key, value in params.items())


def cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return value if value and value.replace("_", "").replace("-", "").replace(".", "").isalnum() else repr(value)
    return str(value)


def describe_param(registry: Registry, detector: str, key: str, check: WeightsCheck) -> list[str]:
    """``[name, type, default, allowed]`` of one parameter, weights-naming ones with what resolves here."""
    spec = registry.detector(detector)
    param = spec.param(key)
    types = " or ".join(t.__name__ for t in param.types) if param.types else "any"
    if param.optional:
        types += " or none"
    default = spec.params.get(key)
    if param.choices:
        allowed = param.allowed().removeprefix("allowed: ")
    elif key in spec.weight_params and isinstance(default, str) and default in registry.names("backbone"):
        here = [b for b in registry.names("backbone") if _backbone_here(registry, b, check)]
        allowed = f"a backbone (`dfzoo list backbones`); here: {', '.join(here) or 'none'}"
    elif key in spec.weight_params:
        allowed = "a weights or model name (`dfzoo list weights`)"
    else:
        allowed = param.allowed().removeprefix("expected ")
    return [key, types, cli_value(default), allowed]


def _backbone_here(registry: Registry, name: str, check: WeightsCheck) -> bool:
    weights = registry.backbone(name).weights
    return not weights or check(weights)


def example_command(name: str, params: dict[str, Any]) -> str:
    """A command that runs detector ``name`` with ``params`` on the tiny zoo (offline, about a minute)."""
    return " ".join(part for part in ("dfzoo run --preset tiny --detector", name, param_flags(name, params)) if part)


def detector_info(registry: Registry, name: str) -> str:
    """The text of ``dfzoo info NAME``."""
    from tabulate import tabulate

    from dfzoo.weights import downloads_off_reason

    spec = registry.detector(name)
    check = WeightsCheck(registry)
    lines = [f"{spec.name}: {spec.summary}"]
    if spec.paper:
        lines.append(f"paper: {spec.paper}")
    kind = "trainable (`dfzoo fit` first, or a benchmark run)" if spec.trainable else "training-free"
    lines += [f"kind: {kind}", f"plugin: {registry.provider('detector', name)}", "", "parameters:"]
    rows = [describe_param(registry, name, key, check) for key in spec.params]
    lines.append(
        tabulate(rows, headers=["parameter", "type", "default", "allowed"], tablefmt="github")
        if rows
        else "  (declares none; any keyword is passed to its factory)"
    )
    lines += ["", "weights with the defaults:"]
    needed = registry.weights_needed(name)
    for weights in needed:
        state = "resolves here" if check(weights) else "missing"
        hint = registry.weights(weights).fetch_hint
        lines.append(f"  {weights}: {state}" + (f" (to get them: {hint})" if hint and not check(weights) else ""))
    if not needed:
        lines.append("  none needed")
    params = offline_params(name, check)
    lines += ["", "example (runs offline, on the tiny zoo):"]
    if params is NO_OFFLINE:
        off = downloads_off_reason()
        lines.append(
            f"  none: its weights are missing here{f' and downloads are off ({off})' if off else ''}; "
            f"`dfzoo weights NAME --fetch` gets them"
        )
    else:
        if params:
            stand_in = ", ".join(f"{key}={cli_value(value)}" for key, value in params.items())
            lines.append(f"  (the default protocols' offline stand-in: {stand_in})")
        lines.append(f"  {example_command(name, params)}")
    return "\n".join(lines)


__all__ = [
    "NO_OFFLINE",
    "WeightsCheck",
    "detector_info",
    "example_command",
    "offline_params",
    "param_flags",
    "stand_in_params",
]
