"""Expanding and running a frozen-feature grid (the file format and its parsing: :mod:`.grid_spec`).

Each (train set, test set, train transform) becomes a harness protocol of ``probe`` cells; sets of two
datasets are joined in a CSV manifest; ``<store>/grid-cells.json`` maps protocol names back to their place
in the grid for the summary plots. The names of :mod:`.grid_spec` stay importable from here.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfzoo.benchmark.protocol import ALL, DetectorEntry, Protocol, parse_protocol
from dfzoo.data.sample import FAKE, REAL_POOL

from .grid_spec import Grid, GridError, SampleSet, default_grid, load_grid, parse_grid

if TYPE_CHECKING:
    from dfzoo.registry import Registry

log = logging.getLogger(__name__)
CELLS_FILE = "grid-cells.json"
DETECTOR = "probe"


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
