"""Typed specs that plugins yield from their hooks.

Hooks return *descriptions* (frozen, keyword-only dataclasses), never behaviour that runs at import time:
the registry validates them centrally and the heavy work happens only when a factory is called.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported only for type checkers: keeps `import dfzoo` light
    from .data.sample import DatasetIndex
    from .detector import Detector
    from .features import Backbone
    from .transforms import Perturbation

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*( [a-z][a-z0-9_.\-]*)?$")
NONE_WORDS = ("none", "null")  # how None is written where values are text (CLI flags, TOML has no null)


class ParamError(ValueError, TypeError):
    """A detector parameter name or value is not accepted (a TypeError too: it is a bad keyword argument)."""


@dataclass(frozen=True, kw_only=True)
class Param:
    """What one detector parameter accepts, declared in :attr:`DetectorSpec.param_schema`.

    ``types`` are the accepted Python types (empty: the type of the default, see :func:`default_types`;
    ``(object,)``: anything). ``choices`` is a closed set of allowed values (empty: any value of those types).
    ``optional`` allows None too; a parameter whose default is None is always optional. An int is accepted
    where a float is; a bool never counts as a number. ``names`` says a string value names a registered
    backbone (``"backbone"``; ``"a+b"`` and a ``":layers=..."`` suffix allowed): the harness checks it against
    the registry when a protocol is resolved, so a typo fails before any work.
    """

    types: tuple[type, ...] = ()
    choices: tuple[Any, ...] = ()
    optional: bool = False
    names: str = ""

    def check(self, name: str, value: Any) -> Any:
        """``value`` if accepted (``"none"``/``"null"`` become None where None is allowed and is not itself
        one of the choices), else a :class:`ParamError` naming parameter ``name`` and what is allowed."""
        if isinstance(value, str) and value.lower() in NONE_WORDS and self.optional and value not in self.choices:
            return None
        if value is None:
            if self.optional:
                return None
            raise ParamError(f"{name} cannot be none; {self.allowed()}")
        if self.types and not _is_instance(value, self.types):
            raise ParamError(f"{name} must be {self._type_names()}, got {value!r} ({type(value).__name__})")
        if self.choices and not any(_same(value, choice) for choice in self.choices):
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ParamError(f"unknown {name} {value!r}; {self.allowed()}{hint}")
        return value

    def allowed(self) -> str:
        """The allowed values (or types) in words, for error messages and listings."""
        if self.choices:
            listed = ", ".join(str(c) for c in self.choices) + (", none" if self.optional else "")
            return f"allowed: {listed}"
        return f"expected {self._type_names()}" + (" or none" if self.optional else "")

    def _type_names(self) -> str:
        return " or ".join(t.__name__ for t in self.types) if self.types else "any value"


def default_types(default: Any) -> tuple[type, ...]:
    """The types a parameter accepts when its spec declares none: those of its default (anything for None)."""
    if default is None:
        return ()
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    if isinstance(default, Mapping):
        return (Mapping,)
    return (type(default),)


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types and object not in types:
        return False  # True is an int to Python, never a number to a user
    return isinstance(value, types)


def _same(value: Any, choice: Any) -> bool:
    if isinstance(value, bool) or isinstance(choice, bool):  # True == 1 to Python, not to a choice list
        return type(value) is type(choice) and value == choice
    return value == choice


def docstring_summary(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring on one line, without a final full stop ("" if it has none):
    what a spec shows as its summary when it is not given, so the help of a command or detector is written
    once, beside the code it describes."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)  # not inherited
    doc = inspect.cleandoc(own) if isinstance(own, str) else ""
    return " ".join(doc.split("\n\n")[0].split()).rstrip(".")


def reject_unknown(
    given: Iterable[str], known: Iterable[str], fail: Callable[[str], Exception], what: str, known_as: str = "known"
) -> None:
    """Raise ``fail(message)`` when ``given`` names anything outside ``known``, listing both (a typo must never
    pass silently): ``"<what> a, b; <known_as>: x, y"``. The one unknown-name check of specs, datasets and
    protocol files."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise fail(f"{what} {', '.join(unknown)}; {known_as}: {', '.join(known)}")


PROGRESS = "progress"  # a dataset loader's keyword for the caller's progress setting


def keyword_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of ``function`` after its first (the root a loader reads) that have defaults."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):  # a builtin or callable without a signature
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in parameters if p.kind in kinds and p.default is not inspect.Parameter.empty}


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one job of a detector asks a cluster executor for: CPU cores, GPUs and memory (GiB; 0 reserves
    none). ``gpus`` is wanted where the cluster has GPUs and never requested from one that has none (the job
    then runs on CPUs); a fraction shares a GPU between jobs."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """A detection method.

    ``factory(**params)`` builds an unfitted detector; ``params`` are its defaults, merged under what the
    user passes. ``weight_params`` names the parameters whose values are backbone or weights names, so the
    zoo can tell (without building anything) whether the detector's weights resolve on this machine.
    ``smoke_params`` is a tiny, fast configuration (random-initialised small models, one epoch) that the
    contract tests run for every registered detector; ``"backbone": "tiny_cnn"`` means the tests' own
    random 32 px backbone. ``reads_files`` declares a method that must read image files itself (e.g. a
    format-aware one): the harness then shows it file paths and checks on probe images that each
    perturbation still changes its scores, refusing robustness rows where it does not. ``param_schema``
    declares the types and closed sets of values of some parameters (:class:`Param`); the others accept
    values of their default's type. :meth:`check_params` applies both, so a wrong name or value fails before
    any work, with the allowed values in the message. ``resources`` is what one job asks a cluster executor for
    (:class:`Resources`, or a function of the job's checked params returning one). ``auto_backbones`` are
    what the value ``"auto"`` of a weight parameter stands for, in order: the first whose weights resolve
    here (so ``offline_only`` and ``dfzoo list`` judge "auto" by the backbone it will be). ``summary``
    defaults to the first paragraph of the factory's docstring (:func:`docstring_summary`).
    """

    name: str
    factory: Callable[..., Detector]
    summary: str = ""
    paper: str = ""
    trainable: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    weight_params: tuple[str, ...] = ("backbone",)
    smoke_params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    reads_files: bool = False
    param_schema: Mapping[str, Param] = field(default_factory=dict)
    resources: Resources | Callable[[Mapping[str, Any]], Resources] = Resources()
    auto_backbones: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.summary:
            object.__setattr__(self, "summary", docstring_summary(self.factory))

    def resources_for(self, params: Mapping[str, Any]) -> Resources:
        """The resources one job with ``params`` asks for."""
        return self.resources if isinstance(self.resources, Resources) else self.resources(params)

    def param(self, name: str) -> Param:
        """What parameter ``name`` accepts: its declared :class:`Param`, types inferred from the default."""
        declared = self.param_schema.get(name, Param())
        default = self.params.get(name)
        return Param(
            types=declared.types or default_types(default),
            choices=declared.choices,
            optional=declared.optional or default is None,
        )

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults with ``params`` on top, every name and value checked (``"none"`` read as None where
        None is allowed); raises :class:`ParamError`. A spec without ``params`` accepts any name unchecked."""
        if not self.params:
            return dict(params)
        reject_unknown(params, self.params, ParamError, f"detector {self.name!r} has no parameter(s)", "its parameters")
        checked = {}
        for key, value in {**self.params, **params}.items():
            try:
                checked[key] = self.param(key).check(key, value)
            except ParamError as error:
                raise ParamError(f"detector {self.name!r}: {error}") from None
        return checked


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """A dataset layout or a named dataset.

    ``load(root, **params)`` returns a :class:`~dfzoo.data.sample.DatasetIndex`. ``root`` is ``None`` for
    datasets that know where they live (the built-in zoo). ``detect(root)`` says whether a folder looks like
    this layout, so ``dfzoo run --dataset PATH`` can pick the layout by itself; detectors with a higher
    ``priority`` are asked first. Left out, ``summary`` is the first paragraph of ``load``'s docstring and
    ``params`` are ``load``'s keyword parameters with their defaults, so neither is written twice. A loader
    that may take long can accept ``progress: bool``: callers pass their progress setting (it is no parameter).
    """

    name: str
    load: Callable[..., DatasetIndex]
    summary: str = ""
    detect: Callable[[Path], bool] | None = None
    needs_root: bool = True
    priority: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.summary:
            object.__setattr__(self, "summary", docstring_summary(self.load))
        if not self.params:  # a loader's ``progress`` is the caller's setting (``load_with``), not a dataset's
            params = {k: v for k, v in keyword_defaults(self.load).items() if k != PROGRESS}
            object.__setattr__(self, "params", params)


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """A frozen feature extractor.

    ``factory(weights, device)`` returns a :class:`~dfzoo.features.Backbone`; ``weights`` is the resolved
    pretrained weights, or ``None`` to build the same architecture randomly initialised (tests do this, and
    results say so). ``weights`` here names the :class:`WeightsSpec` that pretrained use needs.
    """

    name: str
    factory: Callable[..., Backbone]
    summary: str
    weights: str = ""
    feature_dim: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WeightsSpec:
    """Pretrained weights with an offline-first resolution chain.

    Resolution (see :mod:`dfzoo.weights`): an explicit path, then ``$DFZOO_WEIGHTS_DIR/<name>/``, then
    ``find_local()`` (a library cache with ``local_files_only=True``, or a file shipped in an installed
    package), then ``download()`` where the network is allowed. ``files`` are the file names expected in
    ``$DFZOO_WEIGHTS_DIR/<name>/`` (the first that exists wins); ``fetch_hint`` is the command that gets them.
    """

    name: str
    summary: str
    library: str
    source: str = ""
    files: tuple[str, ...] = ()
    find_local: Callable[[], Path | None] | None = None
    download: Callable[[], Path] | None = None
    fetch_hint: str = ""
    licence: str = ""


@dataclass(frozen=True, kw_only=True)
class PerturbationSpec:
    """A named, parameterised image perturbation (blur, JPEG, jitter...), shared by every part of dfzoo.

    ``factory(**params)`` returns a :class:`~dfzoo.transforms.Perturbation`.
    """

    name: str
    factory: Callable[..., Perturbation]
    summary: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    """A `dfzoo` sub-command. ``name`` may have two words ("data build-zoo") to sit in a command group.

    ``add_arguments(parser)`` declares options on an ``argparse`` parser; ``run(args)`` returns an exit code.
    ``summary`` defaults to the first paragraph of ``run``'s docstring, so a command's help is written once, beside
    the code it describes.
    """

    name: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.summary:
            object.__setattr__(self, "summary", docstring_summary(self.run))

    @property
    def description(self) -> str:
        """What ``dfzoo COMMAND --help`` says above the options: the run function's whole docstring (its first
        paragraph is the summary), or the summary alone."""
        doc = self.run.__doc__
        return inspect.cleandoc(doc) if doc and docstring_summary(self.run) == self.summary else self.summary


__all__ = [
    "NAME_PATTERN",
    "NONE_WORDS",
    "BackboneSpec",
    "CommandSpec",
    "DatasetSpec",
    "DetectorSpec",
    "Param",
    "ParamError",
    "PerturbationSpec",
    "Resources",
    "WeightsSpec",
    "default_types",
    "docstring_summary",
    "keyword_defaults",
    "reject_unknown",
]
