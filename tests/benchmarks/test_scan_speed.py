"""Speed of finding images: scan_images and opening a ForenSynths tree of 100,000 (empty) files.

Run with ``.venv/bin/pytest tests/benchmarks/test_scan_speed.py --benchmark-enable --benchmark-only -p no:randomly``
(``--benchmark-only`` overrides the ``--benchmark-skip`` in the default options); each
benchmark records files per second in ``extra_info``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfzoo.data.layouts import open_dataset, scan_images
from dfzoo.registry import Registry

GENERATORS = 10
PER_FOLDER = 5_000
TOTAL = GENERATORS * 2 * PER_FOLDER  # 100,000


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/gen_XX/{0_real,1_fake}/NNNNN.png``, empty files (scanning never opens them)."""
    root = tmp_path_factory.mktemp("scan-bench")
    for g in range(GENERATORS):
        for label in ("0_real", "1_fake"):
            folder = root / f"gen_{g:02d}" / label
            folder.mkdir(parents=True)
            base = str(folder)
            for i in range(PER_FOLDER):
                os.close(os.open(f"{base}/{i:05d}.png", os.O_CREAT | os.O_WRONLY, 0o644))
    return root


def _record_rate(benchmark, files: int) -> None:
    benchmark.extra_info["files"] = files
    if benchmark.stats:  # absent when benchmarks are disabled (the function then ran once, untimed)
        benchmark.extra_info["files_per_second"] = round(files / benchmark.stats.stats.mean)


def test_scan_images_speed(benchmark, big_tree: Path) -> None:
    found = benchmark.pedantic(scan_images, args=(big_tree,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(found) == TOTAL
    assert found == sorted(found)
    _record_rate(benchmark, TOTAL)


def test_open_forensynths_speed(benchmark, big_tree: Path, registry: Registry) -> None:
    index = benchmark.pedantic(
        open_dataset, args=(big_tree,), kwargs={"registry": registry}, rounds=5, iterations=1, warmup_rounds=1
    )
    assert index.layout == "forensynths" and len(index.samples) == TOTAL
    assert len(index.generators()) == GENERATORS and index.metadata["warnings"] == []
    _record_rate(benchmark, TOTAL)


def test_fingerprint_speed(benchmark, big_tree: Path, registry: Registry) -> None:
    index = open_dataset(big_tree, registry=registry)
    digest = benchmark.pedantic(index.fingerprint, rounds=3, iterations=1, warmup_rounds=1)
    assert len(digest) == 16
    _record_rate(benchmark, TOTAL)
