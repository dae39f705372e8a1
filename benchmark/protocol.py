"""Benchmark protocols: what to train on, what to test on, which detectors, under which conditions.

A protocol is data (a TOML file, or CLI flags) loaded into a :class:`Protocol`::

    name = "zoo-gan"
    dataset = "zoo"                       # a registered dataset name, or a path (relative to this file)
    train_generators = ["gan_tconv"]      # or "all"
    test_generators = "all"               # or a list
    seed = 0
    perturbations = ["none", "jpeg:quality=75"]   # test conditions; train_perturbation = "none"
    offline_only = true                   # skip (and record) detectors whose weights do not resolve offline
    [preprocess]
    mode = "resize"                       # or "center_crop", "shortest_side"; no size = each model's own
    [[detectors]]
    name = "*"                            # every registered detector
    [detector_params.nn_cosine]
    backbone = "efficientnet_lite0"

Detector parameters, from weakest to strongest: the spec's defaults, ``detector_params.<name>``, then the
entry's own ``params``. An entry named ``"*"`` expands to every registered detector; its ``params`` go only
to detectors that declare those parameters.

Two shapes the field's papers use, as data:

- **Leave one generator out** (``leave_one_out = true``): the protocol expands, once its dataset is open,
  into one *fold* per generator of ``train_generators`` (default all): train on the others, test on the held-out
  one (``test_seen = true`` also tests the fold's training generators). Fold ``g`` is the protocol
  ``<name>/loo-<g>`` with ``protocol_group = <name>`` and ``held_out = g``, which every result row records.
- **Cross-dataset** (``datasets = { train = "zoo", test = ["zoo", "/data/cifake"] }`` instead of
  ``dataset``): train on ``train``; test on every generator of each ``test`` dataset (``test_generators``
  picks among the training dataset's own, when it is listed). Generators of the other datasets are named
  ``<dataset name>/<generator>``; rows record ``test_dataset``. Paths may use ``$VARS`` from the environment.

Detector entries are resolved against the registry in :mod:`dfzoo.benchmark.entries`; datasets are opened in
:mod:`dfzoo.benchmark.protocol_datasets` and split by the rules of :mod:`dfzoo.benchmark.splits`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfzoo.plain import json_safe
from dfzoo.spec import reject_unknown
from dfzoo.transforms import RESIZE, PreprocessPolicy, parse_perturbation

from .sweeps import expand_sweeps

log = logging.getLogger(__name__)
ALL = "all"
ANY_DETECTOR = "*"
PROTOCOL_KEYS = (
    "name",
    "description",
    "dataset",
    "datasets",
    "layout",
    "dataset_params",
    "train_generators",
    "test_generators",
    "preprocess",
    "seed",
    "cap_per_class",
    "perturbations",
    "train_perturbation",
    "detectors",
    "detector_params",
    "offline_only",
    "bootstrap",
    "batch_size",
    "allow_overlap",
    "leave_one_out",
    "test_seen",
)
DATASETS_KEYS = ("train", "test")
DETECTOR_KEYS = ("name", "params", "label")
PREPROCESS_KEYS = ("mode", "size")


class ProtocolError(ValueError):
    """A protocol is malformed or does not fit the dataset / installed detectors."""


@dataclass(frozen=True)
class DetectorEntry:
    """One detector line of a protocol: a registered name (or ``"*"``), parameters, an optional label."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None


@dataclass(frozen=True)
class Protocol:
    """A benchmark protocol (see the module docstring). Plain data: picklable and JSON-friendly."""

    name: str
    dataset: str
    train_generators: tuple[str, ...] | str = ALL
    test_generators: tuple[str, ...] | str = ALL
    layout: str | None = None
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    preprocess: PreprocessPolicy = field(default_factory=PreprocessPolicy)
    seed: int = 0
    cap_per_class: int | None = None
    perturbations: tuple[str, ...] = ("none",)
    train_perturbation: str = "none"
    detectors: tuple[DetectorEntry, ...] = (DetectorEntry(ANY_DETECTOR),)
    detector_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    offline_only: bool = False
    bootstrap: int = 1000
    batch_size: int | None = None
    allow_overlap: bool = False  # test images may share bytes with training images (counted, not an error)
    description: str = ""
    base_dir: str | None = None  # folder of the TOML file: relative dataset paths start here
    test_datasets: tuple[str, ...] = ()  # datasets.test: () = test on ``dataset`` alone (the usual protocol)
    leave_one_out: bool = False  # expand into one fold per generator (see the module docstring)
    test_seen: bool = False  # leave-one-out folds also test their training generators
    protocol_group: str = ""  # a fold's leave-one-out protocol (set by the expansion, not in files)
    held_out: str = ""  # a fold's held-out generator (set by the expansion)

    def replace(self, **changes: Any) -> Protocol:
        """A copy with some fields changed (CLI flags override protocol files this way), re-validated."""
        return _validated(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The protocol as JSON-friendly data: every field but ``base_dir`` (where this machine keeps the file)."""
        out = _fields(self)
        del out["base_dir"]
        out |= {"preprocess": _fields(self.preprocess), "detectors": [_fields(d) for d in self.detectors]}
        return json_safe(out)


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields by name, one level deep (``dataclasses.asdict`` would copy frozen mappings by type)."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _listed(value: tuple[str, ...] | str) -> list[str] | str:
    return value if isinstance(value, str) else list(value)


# -- parsing ---------------------------------------------------------------------------------------------
def load_protocol(path: str | Path) -> Protocol:
    """Read a protocol TOML file; relative dataset paths are taken relative to the file's folder.

    A bare name that is no file (``logo``) is looked up among the protocols shipped with dfzoo
    (``benchmark/protocols_extra/`` then ``benchmark/protocols/``).
    """
    path = Path(path)
    if not path.exists() and path.suffix == "" and path.name == str(path):
        shipped = shipped_protocol(path.name)
        data = tomllib.loads(shipped.read_text())
        data.setdefault("name", path.name)
        return parse_protocol(data, source=f"dfzoo.benchmark/{shipped.parent.name}/{shipped.name}")
    return parse_protocol(read_toml(path, ProtocolError), source=str(path), base_dir=str(path.resolve().parent))


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """A protocol-like TOML file as a mapping whose ``name`` defaults to the file's stem; invalid TOML raises
    ``error`` naming the file."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML: {problem}") from problem
    data.setdefault("name", path.stem)
    return data


def check_keys(
    table: Mapping[str, Any], known: Sequence[str], fail: Callable[[str], Exception], where: str = ""
) -> None:
    """Raise ``fail(message)`` when ``table`` has keys outside ``known`` (a typo must not pass silently);
    ``where`` (e.g. ``"preprocess: "``) starts the message."""
    reject_unknown(table, known, fail, f"{where}unknown key(s)")


def parse_protocol(data: Mapping[str, Any], *, source: str = "<protocol>", base_dir: str | None = None) -> Protocol:
    """Build and validate a :class:`Protocol` from a TOML-shaped mapping; errors name ``source``."""

    def fail(message: str) -> ProtocolError:
        return ProtocolError(f"{source}: {message}")

    check_keys(data, PROTOCOL_KEYS, fail)
    if "datasets" in data:
        if "dataset" in data:
            raise fail("give either 'dataset' or 'datasets' = { train = ..., test = [...] }, not both")
        train_dataset, test_datasets = _parse_datasets(data["datasets"], fail)
        data = {**{k: v for k, v in data.items() if k != "datasets"}, "dataset": train_dataset}
    else:
        test_datasets = ()
    for required in ("name", "dataset"):
        if not data.get(required):
            raise fail(f"missing {required!r}")
    preprocess = data.get("preprocess", {})
    if not isinstance(preprocess, Mapping):
        raise fail("'preprocess' must be a table with 'mode' and optional 'size'")
    check_keys(preprocess, PREPROCESS_KEYS, fail, "preprocess: ")
    try:
        policy = PreprocessPolicy(mode=preprocess.get("mode", RESIZE), size=preprocess.get("size"))
    except ValueError as error:
        raise fail(str(error)) from None
    entries = []
    raw_detectors = data.get("detectors", [{"name": ANY_DETECTOR}])
    if isinstance(raw_detectors, (str, Mapping)) or not isinstance(raw_detectors, Sequence):
        raise fail("'detectors' must be an array of tables ([[detectors]] name = ...)")
    for index, entry in enumerate(raw_detectors):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise fail(f"detectors[{index}] needs a 'name'")
        check_keys(entry, DETECTOR_KEYS, fail, f"detectors[{index}] ({entry['name']}): ")
        if not isinstance(entry.get("params", {}), Mapping):
            raise fail(f"detectors[{index}] ({entry['name']}): 'params' must be a table")
        entries.append(DetectorEntry(str(entry["name"]), dict(entry.get("params", {})), entry.get("label")))
    detector_params = data.get("detector_params", {})
    if not isinstance(detector_params, Mapping) or not all(isinstance(v, Mapping) for v in detector_params.values()):
        raise fail("'detector_params' must hold one table per detector: [detector_params.<name>]")
    try:
        protocol = Protocol(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            dataset=str(data["dataset"]),
            layout=data.get("layout"),
            dataset_params=dict(data.get("dataset_params", {})),
            train_generators=parse_generators(data.get("train_generators", ALL), "train_generators"),
            test_generators=parse_generators(data.get("test_generators", ALL), "test_generators"),
            preprocess=policy,
            seed=data.get("seed", 0),
            cap_per_class=data.get("cap_per_class"),
            perturbations=expand_sweeps(data.get("perturbations", ("none",))),  # "jpeg:quality=95,75": a sweep
            train_perturbation=str(data.get("train_perturbation", "none")),
            detectors=tuple(entries),
            detector_params={str(k): dict(v) for k, v in detector_params.items()},
            offline_only=data.get("offline_only", False),
            bootstrap=data.get("bootstrap", 1000),
            batch_size=data.get("batch_size"),
            allow_overlap=data.get("allow_overlap", False),
            base_dir=base_dir,
            test_datasets=test_datasets,
            leave_one_out=data.get("leave_one_out", False),
            test_seen=data.get("test_seen", False),
        )
        if protocol.leave_one_out and "test_generators" in data:
            raise ProtocolError(
                "a leave_one_out protocol tests each fold's held-out generator: drop 'test_generators' "
                "(test_seen = true also tests the fold's training generators)"
            )
        return _validated(protocol)
    except ProtocolError as error:
        raise fail(str(error)) from None


def _parse_datasets(value: Any, fail: Any) -> tuple[str, tuple[str, ...]]:
    """``datasets = { train = "zoo", test = ["zoo", "/data/x"] }`` -> ``("zoo", ("zoo", "/data/x"))``."""
    if not isinstance(value, Mapping) or set(value) != set(DATASETS_KEYS):
        raise fail("'datasets' must be a table with 'train' (one dataset) and 'test' (a list of datasets)")
    train, test = value["train"], value["test"]
    test = [test] if isinstance(test, str) else test
    if not isinstance(train, str) or not train:
        raise fail("datasets.train must be one dataset (a name or a path)")
    if not isinstance(test, Sequence) or not test or not all(isinstance(t, str) and t for t in test):
        raise fail("datasets.test must be a non-empty list of datasets (names or paths)")
    if len(set(test)) != len(test):
        raise fail("datasets.test lists the same dataset twice")
    return train, tuple(test)


def parse_generators(value: Any, key: str = "generators") -> tuple[str, ...] | str:
    """``"all"``, ``"a,b"`` or ``["a", "b"]`` -> ``"all"`` or ``("a", "b")``."""
    if value == ALL:
        return ALL
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence) or not value or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{key!r} must be {ALL!r} or a non-empty list of generator names")
    return tuple(dict.fromkeys(value))


def _validated(protocol: Protocol) -> Protocol:
    """Checks that need no dataset and no registry."""
    if not isinstance(protocol.seed, int) or isinstance(protocol.seed, bool):
        raise ProtocolError(f"'seed' must be an integer, got {protocol.seed!r}")
    cap = protocol.cap_per_class
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise ProtocolError(f"'cap_per_class' must be a positive integer, got {cap!r}")
    if not isinstance(protocol.bootstrap, int) or isinstance(protocol.bootstrap, bool) or protocol.bootstrap < 0:
        raise ProtocolError(f"'bootstrap' must be a non-negative integer, got {protocol.bootstrap!r}")
    if protocol.batch_size is not None and (not isinstance(protocol.batch_size, int) or protocol.batch_size < 1):
        raise ProtocolError(f"'batch_size' must be a positive integer, got {protocol.batch_size!r}")
    if not isinstance(protocol.offline_only, bool):
        raise ProtocolError(f"'offline_only' must be true or false, got {protocol.offline_only!r}")
    for key in ("allow_overlap", "leave_one_out", "test_seen"):
        if not isinstance(getattr(protocol, key), bool):
            raise ProtocolError(f"{key!r} must be true or false, got {getattr(protocol, key)!r}")
    if protocol.test_seen and not protocol.leave_one_out:
        raise ProtocolError("'test_seen' applies to leave_one_out protocols only")
    size = protocol.preprocess.size
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ProtocolError(f"preprocess 'size' must be a positive integer, got {size!r}")
    if not protocol.perturbations or not all(isinstance(p, str) for p in protocol.perturbations):
        raise ProtocolError('\'perturbations\' must be a non-empty list of keys like "none", "jpeg:quality=75"')
    for key in (*protocol.perturbations, protocol.train_perturbation):
        try:
            parse_perturbation(key)
        except ValueError as error:
            raise ProtocolError(str(error)) from None
    if not protocol.detectors:
        raise ProtocolError('no detectors: add [[detectors]] entries (name = "*" for all)')
    if len(set(protocol.perturbations)) != len(protocol.perturbations):
        raise ProtocolError("'perturbations' lists the same key twice")
    return protocol


def check_perturbations(protocol: Protocol, registry: Any) -> None:
    """Every perturbation key names a registered perturbation with parameters it accepts."""
    from dfzoo.transforms import make_perturbation

    for key in (*protocol.perturbations, protocol.train_perturbation):
        try:
            make_perturbation(key, registry)
        except Exception as error:  # unknown name, or a factory rejecting the parameters
            raise ProtocolError(f"{protocol.name}: perturbation {key!r}: {error}") from None


def settings_hash(protocol: Protocol, fingerprint: str) -> str:
    """Hash of every protocol setting that changes a result, except detectors and test conditions."""
    settings = {
        "name": protocol.name,
        "dataset": protocol.dataset,
        "layout": protocol.layout,
        "dataset_params": dict(protocol.dataset_params),
        "fingerprint": fingerprint,
        "train": _listed(protocol.train_generators),
        "preprocess": protocol.preprocess.key,
        "seed": protocol.seed,
        "cap": protocol.cap_per_class,
        "train_perturbation": protocol.train_perturbation,
        "bootstrap": protocol.bootstrap,
    }
    if protocol.allow_overlap:  # only when set, so the hashes of existing results stay the same
        settings["allow_overlap"] = True
    if protocol.test_datasets:
        settings["test_datasets"] = list(protocol.test_datasets)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


# the command line's and the shipped files' protocols live next door; imported last (they build on the above)
from .protocol_sources import (  # noqa: E402
    SHIPPED_FOLDERS,
    default_protocols,
    parse_params,
    parse_value,
    protocol_from_flags,
    shipped_protocol,
)

__all__ = [
    "ALL",
    "ANY_DETECTOR",
    "SHIPPED_FOLDERS",
    "DetectorEntry",
    "Protocol",
    "ProtocolError",
    "check_keys",
    "check_perturbations",
    "default_protocols",
    "load_protocol",
    "parse_generators",
    "parse_params",
    "parse_protocol",
    "parse_value",
    "protocol_from_flags",
    "read_toml",
    "settings_hash",
    "shipped_protocol",
]
