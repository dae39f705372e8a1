"""The frozen-feature grid: backbones x reductions x classifiers x train/test transforms x (train set, test set).

A grid is data (TOML) that expands into ordinary harness :class:`~dfzoo.benchmark.protocol.Protocol` objects
whose detector entries are ``probe`` cells, so every cell lands in the result store and the leaderboard like
any other result::

    name = "probe-grid"
    seed = 0
    bootstrap = 200
    cap_per_class = 100                     # optional, per generator and label on each side
    backbones = ["efficientnet_lite0", "efficientnet_lite0+clip_vit_b16_int8"]   # "a+b" concatenates
    reductions = ["none", "pca", "ae"]
    classifiers = "all"                     # or some: bagging tree forest lda qda knn1 knn3 knn5 logreg svm gboost nb
    train_transforms = ["none", "blur_jitter"]
    test_transforms = ["none", "blur", "jitter", "jpeg"]
    pairs = "all"                           # every ordered (train set, test set); "diagonal"; [["gan", "diffusion"]]
    skip_unavailable = true                 # drop backbones whose weights are not on this machine (with a note)

    [sets.gan]                              # a set = a dataset (registered name or path) and some of its generators
    dataset = "zoo"
    generators = ["gan_tconv", "gan_upsample"]

    [reduction_options.pca]                 # options of a reduction / classifier / the probe itself
    n_components = 64
    [classifier_options.svm]
    C = 1.0
    [probe]
    standardise = true

Each (train set, test set, train transform) is one protocol named ``<grid>.<A>-to-<B>.train-<transform>``
with the test transforms as its perturbations, so the harness fits each probe once and scores every test
transform. Sets of one dataset become one protocol of that dataset (train generators = A's, test generators
= B's; a set paired with itself is split 80/20 by the harness). Sets of two different datasets are joined in
a CSV manifest (A's samples as split ``train``, B's as ``test``; generators prefixed ``<set>/``) so the harness
trains on all of A and tests on all of B. ``<store>/grid-cells.json`` maps protocol names back to their
(grid, train set, test set, train transform) for the summary plots.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfzoo.benchmark.protocol import ALL, DetectorEntry, Protocol, ProtocolError, parse_generators, parse_protocol
from dfzoo.data.sample import FAKE, REAL_POOL
from dfzoo.transforms import RESIZE, PreprocessPolicy

if TYPE_CHECKING:
    from dfzoo.registry import Registry

log = logging.getLogger(__name__)
GRID_KEYS = (
    "name",
    "description",
    "sets",
    "pairs",
    "backbones",
    "reductions",
    "classifiers",
    "train_transforms",
    "test_transforms",
    "reduction_options",
    "classifier_options",
    "probe",
    "seed",
    "cap_per_class",
    "bootstrap",
    "batch_size",
    "offline_only",
    "skip_unavailable",
    "preprocess",
)
SET_KEYS = ("dataset", "generators", "layout", "dataset_params")
CELLS_FILE = "grid-cells.json"
DETECTOR = "probe"


class GridError(ProtocolError):
    """A grid file is malformed or names parts that do not exist."""


@dataclass(frozen=True)
class SampleSet:
    """Some generators of one dataset (plus the reals that go with them)."""

    name: str
    dataset: str
    generators: tuple[str, ...] | str = ALL
    layout: str | None = None
    dataset_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source_key(self) -> tuple[str, str | None, str]:
        return (self.dataset, self.layout, json.dumps(dict(self.dataset_params), sort_keys=True, default=str))


@dataclass(frozen=True)
class Grid:
    """A parsed grid file (see the module docstring)."""

    name: str
    sets: Mapping[str, SampleSet]
    pairs: tuple[tuple[str, str], ...]
    backbones: tuple[str, ...]
    reductions: tuple[str, ...]
    classifiers: tuple[str, ...]
    train_transforms: tuple[str, ...] = ("none",)
    test_transforms: tuple[str, ...] = ("none",)
    reduction_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    classifier_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    probe: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    cap_per_class: int | None = None
    bootstrap: int = 200
    batch_size: int | None = None
    offline_only: bool = True
    skip_unavailable: bool = True
    preprocess: PreprocessPolicy = field(default_factory=PreprocessPolicy)
    description: str = ""
    base_dir: str | None = None

    @property
    def n_cells(self) -> int:
        """Result rows per test generator: pairs x train transforms x probes x test transforms."""
        return (
            len(self.pairs)
            * len(self.train_transforms)
            * len(self.backbones)
            * len(self.reductions)
            * len(self.classifiers)
            * len(self.test_transforms)
        )


@dataclass(frozen=True)
class GridCell:
    """One protocol of an expanded grid and where it sits in the grid."""

    protocol: Protocol
    train_set: str
    test_set: str
    train_transform: str

    def record(self, grid: str) -> dict[str, Any]:
        return {
            "grid": grid,
            "train_set": self.train_set,
            "test_set": self.test_set,
            "train_transform": self.train_transform,
        }


# -- parsing ---------------------------------------------------------------------------------------------
def load_grid(path: str | Path) -> Grid:
    """Read a grid TOML file; relative dataset paths are taken relative to the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{path}: not valid TOML: {error}") from error
    data.setdefault("name", path.stem)
    return parse_grid(data, source=str(path), base_dir=str(path.resolve().parent))


def default_grid() -> Grid:
    """The grid shipped with dfzoo (``plugins/detectors/_probe/grids/default.toml``): the built-in zoo."""
    item = resources.files(__package__ or "dfzoo.plugins.detectors._probe") / "grids" / "default.toml"
    data = tomllib.loads(item.read_text())
    return parse_grid(data, source="dfzoo.plugins.detectors._probe/grids/default.toml")


def parse_grid(data: Mapping[str, Any], *, source: str = "<grid>", base_dir: str | None = None) -> Grid:
    """Build and validate a :class:`Grid` from a TOML-shaped mapping; errors name ``source``."""
    from dfzoo.plugins.detectors._probe.classifiers import CLASSIFIERS
    from dfzoo.plugins.detectors._probe.reductions import REDUCTIONS

    def fail(message: str) -> GridError:
        return GridError(f"{source}: {message}")

    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(GRID_KEYS)}")
    raw_sets = data.get("sets")
    if not isinstance(raw_sets, Mapping) or not raw_sets:
        raise fail("no sets: add [sets.<name>] tables with dataset = ... and generators = ...")
    sets = {}
    for name, table in raw_sets.items():
        if not isinstance(table, Mapping) or "dataset" not in table:
            raise fail(f"sets.{name} needs a 'dataset'")
        bad = sorted(set(table) - set(SET_KEYS))
        if bad:
            raise fail(f"sets.{name}: unknown key(s) {', '.join(bad)}; known: {', '.join(SET_KEYS)}")
        try:
            generators = parse_generators(table.get("generators", ALL), f"sets.{name}.generators")
        except ProtocolError as error:
            raise fail(str(error)) from None
        sets[str(name)] = SampleSet(
            str(name), str(table["dataset"]), generators, table.get("layout"), dict(table.get("dataset_params", {}))
        )
    pairs = _pairs(data.get("pairs", "diagonal"), list(sets), fail)

    def names(key: str, known: Sequence[str] | None = None, default: Any = None) -> tuple[str, ...]:
        value = data.get(key, default)
        if value == ALL and known is not None:
            return tuple(known)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not value or not all(isinstance(v, str) for v in value):
            raise fail(f"'{key}' must be a non-empty list of names" + (' or "all"' if known else ""))
        if known is not None:
            wrong = [v for v in value if v not in known]
            if wrong:
                raise fail(f"'{key}': unknown {', '.join(wrong)}; known: {', '.join(known)}")
        if len(set(value)) != len(value):
            raise fail(f"'{key}' lists the same name twice")
        return tuple(value)

    options = {}
    for key in ("reduction_options", "classifier_options"):
        table = data.get(key, {})
        if not isinstance(table, Mapping) or not all(isinstance(v, Mapping) for v in table.values()):
            raise fail(f"'{key}' must hold one table per name: [{key}.<name>]")
        options[key] = {str(k): dict(v) for k, v in table.items()}
    probe = data.get("probe", {})
    if not isinstance(probe, Mapping):
        raise fail("'probe' must be a table of probe parameters")
    reserved = sorted(set(probe) & {"backbone", "reduction", "classifier", "reduction_options", "classifier_options"})
    if reserved:
        raise fail(f"[probe] sets {', '.join(reserved)}: those are the grid's own axes")
    preprocess = data.get("preprocess", {})
    if not isinstance(preprocess, Mapping):
        raise fail("'preprocess' must be a table with 'mode' and optional 'size'")
    grid = Grid(
        name=str(data.get("name") or "grid"),
        description=str(data.get("description", "")),
        sets=sets,
        pairs=pairs,
        backbones=names("backbones", default=["efficientnet_lite0"]),
        reductions=names("reductions", list(REDUCTIONS), ["none"]),
        classifiers=names("classifiers", list(CLASSIFIERS), ["logreg"]),
        train_transforms=names("train_transforms", default=["none"]),
        test_transforms=names("test_transforms", default=["none"]),
        reduction_options=options["reduction_options"],
        classifier_options=options["classifier_options"],
        probe=dict(probe),
        seed=data.get("seed", 0),
        cap_per_class=data.get("cap_per_class"),
        bootstrap=data.get("bootstrap", 200),
        batch_size=data.get("batch_size"),
        offline_only=data.get("offline_only", True),
        skip_unavailable=data.get("skip_unavailable", True),
        preprocess=PreprocessPolicy(preprocess.get("mode", RESIZE), preprocess.get("size")),
        base_dir=base_dir,
    )
    for key in ("reduction_options", "classifier_options"):
        axis = grid.reductions if key == "reduction_options" else grid.classifiers
        unused = sorted(set(getattr(grid, key)) - set(axis))
        if unused:
            log.warning("%s: %s for %s that the grid does not use", source, key, ", ".join(unused))
    return grid


def _pairs(value: Any, sets: list[str], fail: Any) -> tuple[tuple[str, str], ...]:
    if value == "all":
        return tuple((a, b) for a in sets for b in sets)
    if value == "diagonal":
        return tuple((a, a) for a in sets)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise fail('\'pairs\' must be "all", "diagonal" or a list of [train_set, test_set]')
    out = []
    for pair in value:
        if (
            not isinstance(pair, Sequence)
            or isinstance(pair, str)
            or len(pair) != 2
            or not all(isinstance(p, str) for p in pair)
        ):
            raise fail(f"pairs: {pair!r} is not [train_set, test_set]")
        wrong = [p for p in pair if p not in sets]
        if wrong:
            raise fail(f"pairs: unknown set(s) {', '.join(wrong)}; sets: {', '.join(sets)}")
        out.append((pair[0], pair[1]))
    if len(set(out)) != len(out):
        raise fail("pairs lists the same pair twice")
    return tuple(out)


# -- expansion -------------------------------------------------------------------------------------------
def probe_params(grid: Grid, backbone: str, reduction: str, classifier: str) -> dict[str, Any]:
    """The probe detector's parameters for one cell (only the chosen reduction's / classifier's options)."""
    params: dict[str, Any] = {**grid.probe, "backbone": backbone, "reduction": reduction, "classifier": classifier}
    if grid.reduction_options.get(reduction):
        params["reduction_options"] = dict(grid.reduction_options[reduction])
    if grid.classifier_options.get(classifier):
        params["classifier_options"] = dict(grid.classifier_options[classifier])
    return params


def available_backbones(grid: Grid, registry: Registry) -> tuple[list[str], list[str]]:
    """The grid's backbones whose weights resolve on this machine, and notes about the others."""
    from dfzoo.registry import UnknownNameError
    from dfzoo.weights import can_resolve

    kept, notes = [], []
    for backbone in grid.backbones:
        try:
            for part in backbone.split("+"):
                registry.backbone(part)
        except UnknownNameError as error:
            raise GridError(f"grid {grid.name}: backbones: {error}") from None
        missing = [
            w for w in registry.weights_needed(DETECTOR, {"backbone": backbone}) if not can_resolve(registry.weights(w))
        ]
        if missing and grid.skip_unavailable:
            notes.append(
                f"backbone {backbone} left out: weights {', '.join(missing)} do not resolve offline "
                f"(`dfzoo weights` shows how to fetch them)"
            )
        else:
            kept.append(backbone)
    return kept, notes


def detector_entries(grid: Grid, backbones: Sequence[str]) -> tuple[DetectorEntry, ...]:
    """One ``probe`` entry per (backbone, reduction, classifier), labelled by its parts."""
    from dfzoo.plugins.detectors._probe.detector import probe_label

    entries = []
    for backbone in backbones:
        for reduction in grid.reductions:
            for classifier in grid.classifiers:
                params = probe_params(grid, backbone, reduction, classifier)
                entries.append(DetectorEntry(DETECTOR, params, probe_label(params)))
    return tuple(entries)


def protocol_name(grid: str, train_set: str, test_set: str, train_transform: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in train_transform)
    return f"{grid}.{train_set}-to-{test_set}.train-{slug}"


def expand_grid(
    grid: Grid, registry: Registry | None = None, workdir: str | Path | None = None
) -> tuple[list[GridCell], list[str]]:
    """The grid as harness protocols (one per pair and train transform) plus notes on what was left out.

    ``workdir`` holds the joined manifests of cross-dataset pairs (required only when a pair spans two
    datasets).
    """
    from dfzoo.registry import current_registry

    registry = registry or current_registry()
    backbones, notes = available_backbones(grid, registry)
    if not backbones:
        raise GridError(f"grid {grid.name}: no backbone resolves on this machine; " + "; ".join(notes))
    entries = detector_entries(grid, backbones)
    cells = []
    for train_name, test_name in grid.pairs:
        train, test = grid.sets[train_name], grid.sets[test_name]
        base, base_dir = _pair_protocol_data(grid, train, test, registry, workdir)
        for transform in grid.train_transforms:
            name = protocol_name(grid.name, train_name, test_name, transform)
            data = {
                **base,
                "name": name,
                "train_perturbation": transform,
                "description": f"grid {grid.name}: train on {train_name} ({transform}), test on {test_name}",
            }
            protocol = parse_protocol(data, source=f"grid {grid.name}", base_dir=base_dir)
            protocol = protocol.replace(detectors=entries)
            cells.append(GridCell(protocol, train_name, test_name, transform))
    return cells, notes


def _pair_protocol_data(
    grid: Grid, train: SampleSet, test: SampleSet, registry: Registry, workdir: str | Path | None
) -> tuple[dict[str, Any], str | None]:
    """Protocol fields shared by a pair's protocols, and the folder relative dataset paths start from."""
    data: dict[str, Any] = {
        "seed": grid.seed,
        "bootstrap": grid.bootstrap,
        "offline_only": grid.offline_only,
        "perturbations": list(grid.test_transforms),
        "detectors": [{"name": DETECTOR}],
        "preprocess": {"mode": grid.preprocess.mode} | ({"size": grid.preprocess.size} if grid.preprocess.size else {}),
    }
    if grid.cap_per_class is not None:
        data["cap_per_class"] = grid.cap_per_class
    if grid.batch_size is not None:
        data["batch_size"] = grid.batch_size
    if train.source_key == test.source_key:
        data |= {
            "dataset": train.dataset,
            "dataset_params": dict(train.dataset_params),
            "train_generators": _listed(train.generators),
            "test_generators": _listed(test.generators),
        }
        if train.layout:
            data["layout"] = train.layout
        return data, grid.base_dir
    if workdir is None:
        raise GridError(
            f"grid {grid.name}: sets {train.name} and {test.name} come from different datasets; "
            "a work folder is needed for their joined manifest"
        )
    manifest, train_gens, test_gens = joined_manifest(grid, train, test, registry, Path(workdir))
    data |= {
        "dataset": str(manifest),
        "layout": "manifest",
        "train_generators": train_gens,
        "test_generators": test_gens,
    }
    return data, None


def _listed(value: tuple[str, ...] | str) -> list[str] | str:
    return value if isinstance(value, str) else list(value)


def open_set(grid: Grid, sample_set: SampleSet, registry: Registry) -> Any:
    from dfzoo.data.layouts import open_dataset

    source: str | Path = sample_set.dataset
    if sample_set.dataset not in registry.names("dataset"):
        path = Path(sample_set.dataset).expanduser()
        source = path if path.is_absolute() or not grid.base_dir else Path(grid.base_dir) / path
    return open_dataset(source, layout=sample_set.layout, registry=registry, **dict(sample_set.dataset_params))


def joined_manifest(
    grid: Grid, train: SampleSet, test: SampleSet, registry: Registry, workdir: Path
) -> tuple[Path, list[str], list[str]]:
    """A CSV manifest holding ``train``'s samples as split ``train`` and ``test``'s as ``test``.

    Generators are prefixed with the set name (``gan/stylegan2``); shared reals stay in the shared pool, so
    the harness trains with A's reals and tests against B's. Paths are absolute.
    """
    rows, chosen = [], {}
    for sample_set, split in ((train, "train"), (test, "test")):
        index = open_set(grid, sample_set, registry)
        available = index.generators()
        wanted = available if sample_set.generators == ALL else list(sample_set.generators)
        unknown = [g for g in wanted if g not in available]
        if unknown:
            raise GridError(
                f"grid {grid.name}: sets.{sample_set.name}: unknown generator(s) {', '.join(unknown)}; "
                f"dataset {index.name!r} has {', '.join(available)}"
            )
        chosen[split] = [f"{sample_set.name}/{g}" for g in wanted]
        for sample in index.samples:
            if sample.path is None or sample.label not in (0, 1):
                continue
            if sample.generator == REAL_POOL or not sample.generator:
                generator = ""
            elif sample.generator in wanted:
                generator = f"{sample_set.name}/{sample.generator}"
            else:
                continue
            if generator == "" and sample.label == FAKE:
                continue
            rows.append(
                {
                    "path": str(Path(sample.path).resolve()),
                    "label": sample.label,
                    "generator": generator,
                    "family": sample.family,
                    "split": split,
                }
            )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{grid.name}.{train.name}-to-{test.name}.csv"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "generator", "family", "split"])
        writer.writeheader()
        writer.writerows(rows)
    if not path.exists() or path.read_bytes() != tmp.read_bytes():
        os.replace(tmp, path)  # unchanged content keeps its mtime, so fingerprints and resumes stay stable
    else:
        tmp.unlink()
    return path, chosen["train"], chosen["test"]


# -- running ---------------------------------------------------------------------------------------------
def write_cells(store_dir: str | Path, grid: Grid, cells: Sequence[GridCell]) -> Path:
    """Merge this grid's protocol -> (sets, train transform) map into ``<store>/grid-cells.json``."""
    path = Path(store_dir) / CELLS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known.update({cell.protocol.name: cell.record(grid.name) for cell in cells})
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_cells(store_dir: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(store_dir) / CELLS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_grid(
    grid: Grid,
    store_dir: str | Path,
    registry: Registry | None = None,
    progress: bool = True,
    device: str | None = None,
    executor: Any = None,
) -> tuple[Any, list[str]]:
    """Expand ``grid`` and run it with the harness into ``store_dir`` (on ``executor``, default in this
    process); returns (RunSummary, notes)."""
    from dfzoo.benchmark.harness import run_benchmark
    from dfzoo.registry import current_registry

    registry = registry or current_registry()
    cells, notes = expand_grid(grid, registry, Path(store_dir) / "grid-manifests")
    write_cells(store_dir, grid, cells)
    protocols = [c.protocol for c in cells]
    summary = run_benchmark(
        protocols, store_dir, registry=registry, progress=progress, device=device, executor=executor
    )
    return summary, notes


__all__ = [
    "CELLS_FILE",
    "Grid",
    "GridCell",
    "GridError",
    "SampleSet",
    "available_backbones",
    "default_grid",
    "detector_entries",
    "expand_grid",
    "joined_manifest",
    "load_grid",
    "open_set",
    "parse_grid",
    "probe_params",
    "protocol_name",
    "read_cells",
    "run_grid",
    "write_cells",
]
