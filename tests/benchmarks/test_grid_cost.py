"""Grid cost: a whole `probe` grid run through the harness against the work it cannot avoid.

Run: ``pytest tests/benchmarks/test_grid_cost.py --benchmark-only -p no:randomly -s`` (addopts has --benchmark-skip).

The unavoidable work is one feature-extraction pass over exactly the (image, transform) pairs the grid needs
(no cache, so no cache writes either) plus every probe's own pipeline work on in-memory features (scaler,
reduction, classifier fit; scoring of each test set under each test transform). The grid run does all of it
through the harness: feature cache, one detector object per cell, saved models, metrics, fsynced rows.
The ratio grid / (extraction + pipelines) is printed and kept in ``extra_info``; the aim is <= 1.2. Both
sides run in one process after a warm-up (imports, backbone build), on EfficientNet-Lite0 at 224 px.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
import torch

from dfzoo.benchmark.entries import resolve_detectors
from dfzoo.benchmark.harness import load_dataset
from dfzoo.benchmark.splits import split_dataset
from dfzoo.features import extract_features
from dfzoo.plugins.detectors._probe import pipeline as pipeline_module
from dfzoo.plugins.detectors._probe.detector import ProbeDetector
from dfzoo.plugins.detectors._probe.grid import expand_grid, parse_grid, run_grid
from dfzoo.plugins.detectors._probe.sources import get_backbone
from dfzoo.transforms import make_perturbation
from tests.synthetic import write_folder_dataset

BACKBONE = "efficientnet_lite0"


def cost_grid(root):
    return parse_grid(
        {
            "name": "cost",
            "bootstrap": 0,
            "backbones": [BACKBONE],
            "reductions": ["none", "pca", "ae"],
            "classifiers": "all",
            "train_transforms": ["none"],
            "test_transforms": ["none", "jpeg"],
            "pairs": [["a", "a"], ["a", "b"]],
            "reduction_options": {"pca": {"n_components": 32}},
            "sets": {
                "a": {"dataset": str(root), "generators": ["gan_a"]},
                "b": {"dataset": str(root), "generators": ["gan_b"]},
            },
        }
    )


def unavoidable_work(grid, registry, workdir) -> dict[str, float]:
    """Seconds for one uncached extraction pass over what the grid needs, and for every probe pipeline."""
    cells, _ = expand_grid(grid, registry, workdir)
    backbone = get_backbone(BACKBONE)
    datasets: dict = {}
    plans = []
    needed: dict[str, dict[int, object]] = defaultdict(dict)  # transform -> {id(sample): sample}
    for cell in cells:
        protocol = cell.protocol
        dataset, _ = load_dataset(protocol, registry, datasets)
        split = split_dataset(protocol, dataset)
        plans.append((protocol, split, resolve_detectors(protocol, registry)))
        for sample in split.train:
            needed[protocol.train_perturbation][sample.path] = sample
        for transform in protocol.perturbations:
            for samples in split.tests.values():
                for sample in samples:
                    needed[transform][sample.path] = sample
    tick = time.perf_counter()
    features: dict[tuple[str, object], object] = {}
    for transform, samples in needed.items():
        ordered = list(samples.values())
        views = [s.view(make_perturbation(transform)) for s in ordered]
        result = extract_features(views, backbone, cache=False, batch_size=32, progress=False)
        features.update({(transform, s.path): row for s, row in zip(ordered, result.vectors, strict=True)})
    extraction = time.perf_counter() - tick

    import numpy as np

    pipeline_module._memo.clear()
    tick = time.perf_counter()
    for protocol, split, detectors in plans:
        train_x = np.stack([features[(protocol.train_perturbation, s.path)] for s in split.train])
        train_y = np.array([s.label for s in split.train])
        for detector in detectors:
            pipe = ProbeDetector(**detector.params)._new_pipeline(protocol.seed).fit(train_x, train_y)
            for transform in protocol.perturbations:
                for samples in split.tests.values():
                    pipe.score(np.stack([features[(transform, s.path)] for s in samples]))
    pipelines = time.perf_counter() - tick
    return {
        "extraction": extraction,
        "pipelines": pipelines,
        "images": sum(len(v) for v in needed.values()),
        "fits": sum(len(d) for _, _, d in plans),
    }


@pytest.fixture
def dataset(tmp_path):
    torch.set_num_threads(2)
    return write_folder_dataset(tmp_path / "data", {"gan_a": 2, "gan_b": 4}, per_class=40, size=64)


def test_grid_cost_against_extraction_plus_pipelines(benchmark, registry, dataset, tmp_path, monkeypatch):
    grid = cost_grid(dataset)
    warm = parse_grid(
        {
            "name": "warm",
            "bootstrap": 0,
            "backbones": [BACKBONE],
            "classifiers": ["logreg"],
            "sets": {"a": {"dataset": str(dataset), "generators": ["gan_a"]}},
        }
    )
    run_grid(warm, tmp_path / "warm-store", registry, progress=False)  # imports, backbone build, first forward
    base = unavoidable_work(grid, registry, tmp_path / "work")

    def run():
        monkeypatch.setenv("DFZOO_CACHE_DIR", str(tmp_path / "grid-cache"))  # cold feature cache
        pipeline_module._memo.clear()
        summary, _ = run_grid(grid, tmp_path / "store", registry, progress=False)
        errors = [(r["label"], r["error"]["message"]) for r in summary.rows if r["status"] != "ok"]
        assert not errors and summary.rows_ok == base["fits"] * 2
        return summary

    benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    floor = base["extraction"] + base["pipelines"]
    ratio = seconds / floor
    benchmark.extra_info.update(
        {
            "grid_seconds": seconds,
            "extraction_seconds": base["extraction"],
            "pipeline_seconds": base["pipelines"],
            "ratio": ratio,
            "fits": base["fits"],
            "image_passes": base["images"],
        }
    )
    print(
        f"\ngrid {seconds:.1f} s for {base['fits']} probe fits over {base['images']} (image, transform) passes; "
        f"extraction {base['extraction']:.1f} s + pipelines {base['pipelines']:.1f} s = {floor:.1f} s; "
        f"ratio {ratio:.2f}"
    )
