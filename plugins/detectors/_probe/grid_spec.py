"""The frozen-feature grid file: backbones x reductions x classifiers x train/test transforms x (train set, test set).

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

import json
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dfzoo.benchmark.protocol import ALL, ProtocolError, check_keys, parse_generators, read_toml
from dfzoo.transforms import RESIZE, PreprocessPolicy

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


# -- parsing ---------------------------------------------------------------------------------------------
def load_grid(path: str | Path) -> Grid:
    """Read a grid TOML file; relative dataset paths are taken relative to the file's folder."""
    path = Path(path)
    return parse_grid(read_toml(path, GridError), source=str(path), base_dir=str(path.resolve().parent))


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

    check_keys(data, GRID_KEYS, fail)
    raw_sets = data.get("sets")
    if not isinstance(raw_sets, Mapping) or not raw_sets:
        raise fail("no sets: add [sets.<name>] tables with dataset = ... and generators = ...")
    sets = {}
    for name, table in raw_sets.items():
        if not isinstance(table, Mapping) or "dataset" not in table:
            raise fail(f"sets.{name} needs a 'dataset'")
        check_keys(table, SET_KEYS, fail, f"sets.{name}: ")
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


__all__ = ["GRID_KEYS", "SET_KEYS", "Grid", "GridError", "SampleSet", "default_grid", "load_grid", "parse_grid"]
