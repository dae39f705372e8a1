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
    mode = "resize"                       # or "center_crop"; no size = each model's own input size
    [[detectors]]
    name = "*"                            # every registered detector
    [detector_params.nn_cosine]
    backbone = "efficientnet_lite0"

Detector parameters, from weakest to strongest: the spec's defaults, ``detector_params.<name>``, then the
entry's own ``params``. An entry named ``"*"`` expands to every registered detector; its ``params`` go only
to detectors that declare those parameters.

Splitting rules (no sample is ever on both sides):

- Training set = every sample of the train generators (their fakes and their own reals, if any) plus the
  shared reals (generator ``"real"``).
- Per test generator, the test set = its fakes plus its own reals when it has any, else the test part of the
  shared reals. Test generators ``"all"`` = every generator with fakes.
- When the dataset has splits, training uses split ``"train"`` and testing uses ``"test"`` (``"val"`` when
  the dataset has no ``"test"`` split).
- When it has none, anything used on both sides (the shared reals, and generators that are both train and
  test generators) is split 80/20 by a seeded hash of the sample's relative path (stable when files are
  added); a test generator not in training uses all its samples, a train-only generator all of its.
- ``cap_per_class`` keeps at most N samples per generator and label on each side, chosen by the same
  seeded hash (deterministic).
- No test image may hold the same bytes as a training image (found by content hash, hashing only files
  whose size appears more than once): such an overlap is an error naming the count and examples, unless the
  protocol sets ``allow_overlap = true``, which records the count in the split's notes and in each row's
  counts (``test_in_train``). The counts also give the number of distinct images per side and label
  (``train_real_distinct`` ...).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dfzoo.data.sample import FAKE, REAL, REAL_POOL, DatasetIndex, Sample
from dfzoo.transforms import RESIZE, PreprocessPolicy, parse_perturbation

log = logging.getLogger(__name__)
ALL = "all"
ANY_DETECTOR = "*"
TRAIN_FRACTION = 0.8
PROTOCOL_KEYS = ("name", "description", "dataset", "layout", "dataset_params", "train_generators",
                 "test_generators", "preprocess", "seed", "cap_per_class", "perturbations",
                 "train_perturbation", "detectors", "detector_params", "offline_only", "bootstrap", "batch_size",
                 "allow_overlap")
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

    def replace(self, **changes: Any) -> "Protocol":
        """A copy with some fields changed (CLI flags override protocol files this way), re-validated."""
        return _validated(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The protocol as JSON-friendly data (recorded with results)."""
        return {
            "name": self.name, "description": self.description, "dataset": self.dataset, "layout": self.layout,
            "dataset_params": dict(self.dataset_params), "train_generators": _listed(self.train_generators),
            "test_generators": _listed(self.test_generators),
            "preprocess": {"mode": self.preprocess.mode, "size": self.preprocess.size}, "seed": self.seed,
            "cap_per_class": self.cap_per_class, "perturbations": list(self.perturbations),
            "train_perturbation": self.train_perturbation,
            "detectors": [{"name": d.name, "params": dict(d.params), "label": d.label} for d in self.detectors],
            "detector_params": {k: dict(v) for k, v in self.detector_params.items()},
            "offline_only": self.offline_only, "bootstrap": self.bootstrap, "batch_size": self.batch_size,
            "allow_overlap": self.allow_overlap,
        }


def _listed(value: tuple[str, ...] | str) -> list[str] | str:
    return value if isinstance(value, str) else list(value)


# -- parsing ---------------------------------------------------------------------------------------------
def load_protocol(path: str | Path) -> Protocol:
    """Read a protocol TOML file; relative dataset paths are taken relative to the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ProtocolError(f"{path}: not valid TOML: {error}") from error
    data.setdefault("name", path.stem)
    return parse_protocol(data, source=str(path), base_dir=str(path.resolve().parent))


def parse_protocol(data: Mapping[str, Any], *, source: str = "<protocol>", base_dir: str | None = None) -> Protocol:
    """Build and validate a :class:`Protocol` from a TOML-shaped mapping; errors name ``source``."""
    def fail(message: str) -> ProtocolError:
        return ProtocolError(f"{source}: {message}")

    unknown = sorted(set(data) - set(PROTOCOL_KEYS))
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(PROTOCOL_KEYS)}")
    for required in ("name", "dataset"):
        if not data.get(required):
            raise fail(f"missing {required!r}")
    preprocess = data.get("preprocess", {})
    if not isinstance(preprocess, Mapping):
        raise fail("'preprocess' must be a table with 'mode' and optional 'size'")
    bad = sorted(set(preprocess) - set(PREPROCESS_KEYS))
    if bad:
        raise fail(f"unknown preprocess key(s) {', '.join(bad)}; known: mode, size")
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
        bad = sorted(set(entry) - set(DETECTOR_KEYS))
        if bad:
            raise fail(f"detectors[{index}] ({entry['name']}): unknown key(s) {', '.join(bad)}; "
                       f"known: {', '.join(DETECTOR_KEYS)}")
        if not isinstance(entry.get("params", {}), Mapping):
            raise fail(f"detectors[{index}] ({entry['name']}): 'params' must be a table")
        entries.append(DetectorEntry(str(entry["name"]), dict(entry.get("params", {})), entry.get("label")))
    detector_params = data.get("detector_params", {})
    if not isinstance(detector_params, Mapping) or not all(isinstance(v, Mapping) for v in detector_params.values()):
        raise fail("'detector_params' must hold one table per detector: [detector_params.<name>]")
    try:
        protocol = Protocol(
            name=str(data["name"]), description=str(data.get("description", "")), dataset=str(data["dataset"]),
            layout=data.get("layout"), dataset_params=dict(data.get("dataset_params", {})),
            train_generators=parse_generators(data.get("train_generators", ALL), "train_generators"),
            test_generators=parse_generators(data.get("test_generators", ALL), "test_generators"),
            preprocess=policy, seed=data.get("seed", 0), cap_per_class=data.get("cap_per_class"),
            perturbations=tuple(data.get("perturbations", ("none",))),
            train_perturbation=str(data.get("train_perturbation", "none")), detectors=tuple(entries),
            detector_params={str(k): dict(v) for k, v in detector_params.items()},
            offline_only=data.get("offline_only", False), bootstrap=data.get("bootstrap", 1000),
            batch_size=data.get("batch_size"), allow_overlap=data.get("allow_overlap", False), base_dir=base_dir)
        return _validated(protocol)
    except ProtocolError as error:
        raise fail(str(error)) from None


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
    if not isinstance(protocol.allow_overlap, bool):
        raise ProtocolError(f"'allow_overlap' must be true or false, got {protocol.allow_overlap!r}")
    size = protocol.preprocess.size
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ProtocolError(f"preprocess 'size' must be a positive integer, got {size!r}")
    if not protocol.perturbations or not all(isinstance(p, str) for p in protocol.perturbations):
        raise ProtocolError("'perturbations' must be a non-empty list of keys like \"none\", \"jpeg:quality=75\"")
    for key in (*protocol.perturbations, protocol.train_perturbation):
        try:
            parse_perturbation(key)
        except ValueError as error:
            raise ProtocolError(str(error)) from None
    if not protocol.detectors:
        raise ProtocolError("no detectors: add [[detectors]] entries (name = \"*\" for all)")
    if len(set(protocol.perturbations)) != len(protocol.perturbations):
        raise ProtocolError("'perturbations' lists the same key twice")
    return protocol


def parse_value(raw: str) -> Any:
    """A CLI value as TOML would read it (``3``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), else the string.

    ``none`` stays the string ``"none"``: only the detector's spec knows whether it means None (a parameter
    that allows None and has no ``"none"`` choice, such as ``weights_path``) or the word (``reduction=none``);
    :meth:`dfzoo.DetectorSpec.check_params` decides.
    """
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["backbone=x", "k=3"]`` -> ``{"backbone": "x", "k": 3}``."""
    params = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ProtocolError(f"--param {pair!r}: expected key=value")
        params[key.strip()] = parse_value(raw.strip())
    return params


def protocol_from_flags(*, dataset: str, name: str | None = None, layout: str | None = None,
                        train: str | Sequence[str] = ALL, test: str | Sequence[str] = ALL,
                        detectors: Sequence[str] = (), params: Mapping[str, Any] | None = None,
                        preprocess: str = RESIZE, size: int | None = None, seed: int = 0, cap: int | None = None,
                        perturbations: Sequence[str] = ("none",), train_perturbation: str = "none",
                        offline_only: bool = False, bootstrap: int = 1000) -> Protocol:
    """A protocol from ``dfzoo run`` quick flags; ``params`` go to every chosen detector."""
    chosen = list(detectors) or [ANY_DETECTOR]
    data: dict[str, Any] = {
        "name": name or f"cli-{_slug(Path(dataset).name or dataset)}", "dataset": dataset,
        "train_generators": train if isinstance(train, str) else list(train),
        "test_generators": test if isinstance(test, str) else list(test),
        "preprocess": {"mode": preprocess} | ({"size": size} if size else {}), "seed": seed,
        "perturbations": list(perturbations) or ["none"], "train_perturbation": train_perturbation,
        "detectors": [{"name": d, "params": dict(params or {})} for d in chosen],
        "offline_only": offline_only, "bootstrap": bootstrap,
    }
    if layout:
        data["layout"] = layout
    if cap:
        data["cap_per_class"] = cap
    return parse_protocol(data, source="command line", base_dir=os.getcwd())


def default_protocols() -> list[Protocol]:
    """The protocols shipped with dfzoo (``benchmark/protocols/*.toml``), sorted by file name."""
    folder = resources.files("dfzoo.benchmark") / "protocols"
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)
    protocols = []
    for item in found:
        data = tomllib.loads(item.read_text())
        data.setdefault("name", item.name.removesuffix(".toml"))
        protocols.append(parse_protocol(data, source=f"dfzoo.benchmark/protocols/{item.name}"))
    return protocols


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "dataset"


# -- detectors -------------------------------------------------------------------------------------------
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


def resolve_detectors(protocol: Protocol, registry: Any, *, check_weights: bool = True) -> list[ResolvedDetector]:
    """Expand ``"*"``, merge parameters, validate names and every parameter value against the detector's spec
    (``"none"`` read as None where the spec allows it), and apply ``offline_only`` (unless ``check_weights``
    is False: the harness validates every protocol this way before it opens any dataset)."""
    from dfzoo.registry import UnknownNameError
    from dfzoo.spec import ParamError
    from dfzoo.weights import can_resolve
    known = registry.names("detector")
    for name in protocol.detector_params:
        if name not in known:  # a warning, not an error: shared protocols stay usable without every plugin
            log.warning("%s: detector_params.%s: no detector named %r is installed; ignored",
                        protocol.name, name, name)
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
            digest = params_hash(merged)
            if (name, digest) in seen:
                continue
            seen.add((name, digest))
            label = (entry.label if entry.label and entry.name != ANY_DETECTOR
                     else detector_label(name, merged, spec.params))
            reason = ""
            if protocol.offline_only and check_weights:
                missing = [w for w in registry.weights_needed(name, merged) if not can_resolve(registry.weights(w))]
                if missing:
                    reason = (f"weights {', '.join(missing)} do not resolve offline "
                              f"(offline_only = true; `dfzoo weights` shows how to fetch them)")
            out.append(ResolvedDetector(name, merged, label, digest, reason))
    labels = Counter(d.label for d in out)
    duplicated = [label for label, count in labels.items() if count > 1]
    if duplicated:
        raise ProtocolError(f"{protocol.name}: two detector entries share the label(s) {', '.join(duplicated)}")
    return out


# -- datasets and splits ---------------------------------------------------------------------------------
def dataset_source(protocol: Protocol, registry: Any) -> str | Path:
    """A registered self-locating dataset name as is; otherwise a path (relative to the protocol file)."""
    if protocol.dataset in registry.names("dataset") and not registry.dataset(protocol.dataset).needs_root:
        return protocol.dataset
    path = Path(protocol.dataset).expanduser()
    if not path.is_absolute() and protocol.base_dir:
        path = Path(protocol.base_dir) / path
    return path


def open_protocol_dataset(protocol: Protocol, registry: Any) -> DatasetIndex:
    """Load the protocol's dataset through the layouts module (or straight from a registered spec)."""
    source = dataset_source(protocol, registry)
    if isinstance(source, Path) and not source.exists() and not any(sep in protocol.dataset for sep in "/\\."):
        named = [n for n in registry.names("dataset") if not registry.dataset(n).needs_root]
        raise ProtocolError(f"{protocol.name}: dataset {protocol.dataset!r} is neither an installed named dataset "
                            f"({', '.join(named) or 'none installed'}) nor an existing path")
    try:
        from dfzoo.data.layouts import open_dataset
    except ImportError:  # layouts not installed: only registered names or an explicit layout can load
        open_dataset = None
    if open_dataset is not None:
        return open_dataset(source, layout=protocol.layout, registry=registry, **dict(protocol.dataset_params))
    if isinstance(source, str):
        return registry.dataset(source).load(None, **dict(protocol.dataset_params))
    if protocol.layout:
        return registry.dataset(protocol.layout).load(source, **dict(protocol.dataset_params))
    raise ProtocolError(f"{protocol.name}: cannot open {source}: give a layout (dfzoo.data.layouts is missing)")


@dataclass
class Split:
    """The samples a protocol uses: one training set and one test set per test generator.

    ``distinct`` holds, per side ("train" and each test generator), the number of distinct images (by content)
    per label; ``overlap`` the number of each test generator's images whose bytes are also in training.
    """

    train: list[Sample]
    tests: dict[str, list[Sample]]
    train_generators: list[str]
    test_generators: list[str]
    families: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    distinct: dict[str, dict[int, int]] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)

    def counts(self, generator: str | None = None) -> dict[str, int]:
        """Real/fake counts of the training set and (given a generator) of its test set: images used, distinct
        images by content, and test images also in training."""
        out = _label_counts("train", self.train, self.distinct.get(TRAIN_SIDE))
        if generator is not None:
            out |= _label_counts("test", self.tests[generator], self.distinct.get(generator))
            out["test_in_train"] = self.overlap.get(generator, 0)
        return out


TRAIN_SIDE = "train"  # key of the training set in Split.distinct


def _label_counts(side: str, samples: Sequence[Sample], distinct: Mapping[int, int] | None) -> dict[str, int]:
    out = {f"{side}_real": sum(s.label == REAL for s in samples), f"{side}_fake": sum(s.label == FAKE for s in samples)}
    if distinct is not None:
        out |= {f"{side}_real_distinct": distinct.get(REAL, 0), f"{side}_fake_distinct": distinct.get(FAKE, 0)}
    return out


def _relative(sample: Sample, root: Path | None, position: int) -> str:
    if sample.path is None:
        return f"<memory:{position}>"
    return os.path.relpath(sample.path, root) if root else str(sample.path)


def _unit_hash(seed: int, text: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64


def split_dataset(protocol: Protocol, dataset: DatasetIndex) -> Split:
    """Apply the splitting rules of the module docstring to ``dataset``; raises on unknown generators."""
    available = dataset.generators()
    train_gens = _choose(protocol.train_generators, available, "train_generators", dataset)
    explicit_test = protocol.test_generators != ALL
    test_gens = _choose(protocol.test_generators, available, "test_generators", dataset)
    splits = {s.split for s in dataset.samples if s.split}
    test_split = "test" if "test" in splits else "val"
    if splits and "train" not in splits:
        raise ProtocolError(f"{protocol.name}: dataset {dataset.name!r} has splits {sorted(splits)} but no 'train'")
    if splits and test_split not in splits:
        raise ProtocolError(f"{protocol.name}: dataset {dataset.name!r} has splits {sorted(splits)} "
                            "but neither 'test' nor 'val'")

    by_group: dict[str, list[tuple[str, Sample]]] = {}
    for position, sample in enumerate(dataset.samples):
        if sample.label in (REAL, FAKE):
            by_group.setdefault(sample.generator, []).append((_relative(sample, dataset.root, position), sample))
    own_reals = {g for g, items in by_group.items() if g != REAL_POOL and any(s.label == REAL for _, s in items)}
    shared_on_test = any(g not in own_reals for g in test_gens)
    used_train = set(train_gens) | {REAL_POOL}
    used_test = set(test_gens) | ({REAL_POOL} if shared_on_test else set())
    train_side: dict[str, list[tuple[str, Sample]]] = {}
    test_side: dict[str, list[tuple[str, Sample]]] = {}
    for group, items in by_group.items():
        on_train, on_test = group in used_train, group in used_test
        for item in items:
            rel, sample = item
            if splits and sample.split:
                to_train = on_train and sample.split == "train"
                to_test = on_test and sample.split == test_split
            elif on_train and on_test:
                to_train = _unit_hash(protocol.seed, rel) < TRAIN_FRACTION
                to_test = not to_train
            else:
                to_train, to_test = on_train, on_test
            if to_train:
                train_side.setdefault(group, []).append(item)
            if to_test:
                test_side.setdefault(group, []).append(item)

    train = _capped(train_side, protocol)
    test_groups = {g: _capped({g: items}, protocol) for g, items in test_side.items()}
    tests: dict[str, list[Sample]] = {}
    notes: list[str] = []
    for generator in test_gens:
        samples = test_groups.get(generator, [])
        fakes = [s for s in samples if s.label == FAKE]
        if not fakes:
            message = f"test generator {generator!r} has no fakes in the test part"
            if explicit_test:
                raise ProtocolError(f"{protocol.name}: {message}")
            notes.append(message + "; left out")
            continue
        reals = [s for s in samples if s.label == REAL] if generator in own_reals else test_groups.get(REAL_POOL, [])
        if not reals:
            notes.append(f"test generator {generator!r} has no reals in its test set (AUC undefined)")
        tests[generator] = fakes + reals
    if not train and not splits:
        notes.append("the training set is empty")
    # a generator's family comes from its fakes (its own reals say "real"); none known stays "" (unknown)
    families = {s.generator: s.family for s in dataset.samples if s.family and s.label == FAKE} | dict(dataset.families)
    split = Split(train, tests, list(train_gens), list(tests), families, notes)
    _check_overlap(split, protocol)
    return split


def _check_overlap(split: Split, protocol: Protocol) -> None:
    """Fill ``split.distinct`` and ``split.overlap`` from content hashes; an overlap is an error unless allowed."""
    from dfzoo.data.duplicates import content_keys
    used = list({id(s): s for s in (*split.train, *(s for test in split.tests.values() for s in test))}.values())
    keys = {id(s): key for s, key in zip(used, content_keys(used))}
    in_train: dict[str, Sample] = {}
    for sample in split.train:
        in_train.setdefault(keys[id(sample)], sample)
    for side, samples in {TRAIN_SIDE: split.train, **split.tests}.items():
        split.distinct[side] = dict(Counter(label for _, label in {(keys[id(s)], s.label) for s in samples}))
    pairs: dict[int, tuple[Sample, Sample]] = {}
    for generator, samples in split.tests.items():
        found = [(s, in_train[keys[id(s)]]) for s in samples if keys[id(s)] in in_train]
        split.overlap[generator] = len(found)
        pairs.update((id(s), (s, t)) for s, t in found)
    if not pairs:
        return
    examples = "; ".join(f"{test.display_name} = {train.display_name}" for test, train in list(pairs.values())[:3])
    message = f"{len(pairs)} test image(s) hold the same bytes as training images, e.g. {examples}"
    if not protocol.allow_overlap:
        raise ProtocolError(f"{protocol.name}: {message}. Remove the copies (`dfzoo data inspect` lists every "
                            f"duplicate) or set allow_overlap = true in the protocol to run anyway")
    split.notes.append(f"{message} (allow_overlap = true)")


def _choose(wanted: tuple[str, ...] | str, available: list[str], key: str, dataset: DatasetIndex) -> list[str]:
    if wanted == ALL:
        return list(available)
    unknown = [g for g in wanted if g not in available]
    if unknown:
        raise ProtocolError(f"{key}: unknown generator(s) {', '.join(unknown)} in dataset {dataset.name!r}; "
                            f"its generators: {', '.join(available) or '(none)'}")
    return list(wanted)


def _capped(groups: Mapping[str, list[tuple[str, Sample]]], protocol: Protocol) -> list[Sample]:
    """Samples of ``groups`` with at most ``cap_per_class`` per (generator, label), chosen by seeded hash."""
    out: list[Sample] = []
    for group in sorted(groups):
        for label in (REAL, FAKE):
            items = [(rel, s) for rel, s in groups[group] if s.label == label]
            if protocol.cap_per_class is not None and len(items) > protocol.cap_per_class:
                items = sorted(items, key=lambda item: _unit_hash(protocol.seed + 1, item[0]))[:protocol.cap_per_class]
                items.sort(key=lambda item: item[0])
            out.extend(s for _, s in items)
    return out


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
    settings = {"name": protocol.name, "dataset": protocol.dataset, "layout": protocol.layout,
                "dataset_params": dict(protocol.dataset_params), "fingerprint": fingerprint,
                "train": _listed(protocol.train_generators), "preprocess": protocol.preprocess.key,
                "seed": protocol.seed, "cap": protocol.cap_per_class, "train_perturbation": protocol.train_perturbation,
                "bootstrap": protocol.bootstrap}
    if protocol.allow_overlap:  # only when set, so the hashes of existing results stay the same
        settings["allow_overlap"] = True
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


__all__ = [
    "ALL", "ANY_DETECTOR", "DetectorEntry", "Protocol", "ProtocolError", "ResolvedDetector", "Split",
    "check_perturbations", "dataset_source", "default_protocols", "detector_label", "load_protocol", "open_protocol_dataset",
    "params_hash", "parse_generators", "parse_params", "parse_protocol", "parse_value", "protocol_from_flags", "resolve_detectors",
    "settings_hash", "split_dataset",
]
