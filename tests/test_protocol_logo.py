"""Protocols the field uses, as data: leave one generator out, train on one dataset and test on others, and
CLIP's aspect-preserving preprocessing."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image, ImageDraw

import dfzoo
from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import ProtocolError, load_protocol, parse_protocol
from dfzoo.benchmark.protocol_datasets import open_protocol_dataset
from dfzoo.benchmark.splits import expand_protocol, split_dataset
from dfzoo.data.sample import Sample
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from dfzoo.transforms import Normalisation, PreprocessPolicy
from tests.synthetic import planted_fake, smooth_image

GENERATORS = {"gan_a": 2, "gan_b": 4, "diff_c": 3}  # name -> period of the planted grid


class Recorder(dfzoo.Detector):
    """Remembers the files of every training set it was fitted on; scores high-frequency energy."""

    trained_on: ClassVar[list[set[str]]] = []

    def fit(self, train: Sequence[Sample]) -> Recorder:
        Recorder.trained_on.append({s.display_name for s in train})
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        out = []
        for sample in samples:
            grey = np.asarray(sample.load().convert("L"), dtype=np.float64)
            out.append(float(np.mean(np.diff(grey, axis=1) ** 2)))
        return np.asarray(out)

    def describe(self) -> dict:
        return {"weights": "none"}


class RecorderPlugin:
    @dfzoo.hookimpl
    def dfzoo_detectors(self):
        yield dfzoo.DetectorSpec(name="recorder", summary="records training sets (tests)", factory=Recorder)


@pytest.fixture
def registry() -> Registry:
    import dfzoo.plugins.datasets.layouts as layouts
    import dfzoo.plugins.perturbations.standard as perturbations

    reg = Registry(
        get_plugin_manager(builtins=False, autoload=False, extra_plugins=(perturbations, layouts, RecorderPlugin()))
    )
    Recorder.trained_on.clear()
    with use_registry(reg):
        yield reg


def write_zoo_like(root: Path, per_split: int = 6) -> dict[str, str]:
    """A manifest dataset shaped like the zoo: shared reals ("real") and three generators, train/test splits.
    Returns file path -> generator."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows, where = [], {}
    for split in ("train", "test"):
        for i in range(2 * per_split):
            rows.append((f"real_{split}_{i}.png", 0, "", split, smooth_image(rng)))
        for generator, period in GENERATORS.items():
            for i in range(per_split):
                rows.append((f"{generator}_{split}_{i}.png", 1, generator, split, planted_fake(rng, period=period)))
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator", "split"])
        for name, label, generator, split, pixels in rows:
            Image.fromarray(pixels).save(root / name)
            writer.writerow([name, label, generator, split])
            where[str(root / name)] = generator or "real"
    return where


def write_cifake_like(root: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    for folder, make in (("REAL", smooth_image), ("FAKE", lambda r: planted_fake(r, period=5))):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(make(rng)).save(root / folder / f"{i}.png")
    return root


def _protocol(**fields) -> dfzoo.benchmark.protocol.Protocol:
    data = {"name": "tiny", "bootstrap": 0, "detectors": [{"name": "recorder"}], **fields}
    return parse_protocol(data, source="test")


# -- leave one generator out ---------------------------------------------------------------------------------
def test_leave_one_out_runs_one_fold_per_generator_with_the_held_out_one_never_in_training(registry, tmp_path):
    where = write_zoo_like(tmp_path / "zoo")
    protocol = _protocol(dataset=str(tmp_path / "zoo" / "manifest.csv"), leave_one_out=True)
    summary = run_benchmark(protocol, tmp_path / "store", registry=registry, progress=False)
    assert summary.rows_error == 0 and summary.jobs_run == len(GENERATORS)
    rows = summary.rows
    assert sorted(r["protocol"] for r in rows) == sorted(f"tiny/loo-{g}" for g in GENERATORS)
    for row in rows:
        held = row["held_out"]
        assert row["protocol_group"] == "tiny" and row["protocol"] == f"tiny/loo-{held}"
        assert row["test_generator"] == held and not row["seen_in_training"]
        assert sorted(row["train_generators"]) == sorted(g for g in GENERATORS if g != held)
        assert row["counts"]["test_fake"] == 6 and row["counts"]["test_real"] == 12
        assert row["test_dataset"] == "manifest" and np.isfinite(row["metrics"]["auc"])
    assert len(Recorder.trained_on) == len(GENERATORS)
    held_in_training = [
        {where[name] for name in trained} for trained in Recorder.trained_on
    ]  # each fold trains on reals and two generators: never the third
    assert sorted(len(gens) for gens in held_in_training) == [3, 3, 3]
    assert {frozenset(set(GENERATORS) - gens) for gens in held_in_training} == {frozenset({g}) for g in GENERATORS}


def test_leave_one_out_can_test_the_seen_generators_and_rotates_over_the_chosen_ones(registry, tmp_path):
    write_zoo_like(tmp_path / "zoo")
    protocol = _protocol(
        dataset=str(tmp_path / "zoo" / "manifest.csv"),
        leave_one_out=True,
        test_seen=True,
        train_generators=["gan_a", "gan_b"],
    )
    dataset = open_protocol_dataset(protocol, registry)
    folds = expand_protocol(protocol, dataset)
    assert [(f.name, f.held_out, f.train_generators, f.test_generators) for f in folds] == [
        ("tiny/loo-gan_a", "gan_a", ("gan_b",), ("gan_a", "gan_b")),
        ("tiny/loo-gan_b", "gan_b", ("gan_a",), ("gan_b", "gan_a")),
    ]
    split = split_dataset(folds[0], dataset)
    train_files = {s.display_name for s in split.train}
    assert not train_files & {s.display_name for s in split.tests["gan_a"]}
    assert all(s.generator in ("real", "gan_b") for s in split.train)


def test_leave_one_out_mistakes_fail_clearly(registry, tmp_path):
    write_zoo_like(tmp_path / "zoo")
    manifest = str(tmp_path / "zoo" / "manifest.csv")
    with pytest.raises(ProtocolError, match="drop 'test_generators'"):
        _protocol(dataset=manifest, leave_one_out=True, test_generators=["gan_a"])
    with pytest.raises(ProtocolError, match="test_seen"):
        _protocol(dataset=manifest, test_seen=True)
    one = _protocol(dataset=manifest, leave_one_out=True, train_generators=["gan_a"])
    with pytest.raises(ProtocolError, match="at least two generators"):
        expand_protocol(one, open_protocol_dataset(one, registry))


# -- cross-dataset -------------------------------------------------------------------------------------------
def test_train_on_one_dataset_test_on_others_without_a_manifest(registry, tmp_path):
    where = write_zoo_like(tmp_path / "zoo")
    cifake = write_cifake_like(tmp_path / "cifake")
    manifest = str(tmp_path / "zoo" / "manifest.csv")
    protocol = _protocol(datasets={"train": manifest, "test": [manifest, str(cifake)]}, train_generators=["gan_a"])
    summary = run_benchmark(protocol, tmp_path / "store", registry=registry, progress=False)
    assert summary.rows_error == 0
    by_generator = {row["test_generator"]: row for row in summary.rows}
    assert sorted(by_generator) == ["cifake/sd14", "diff_c", "gan_a", "gan_b"]
    other = by_generator["cifake/sd14"]
    assert other["test_dataset"] == "cifake" and not other["seen_in_training"]
    assert other["counts"]["test_fake"] == 8 and other["counts"]["test_real"] == 8  # CIFAKE's own reals
    assert {by_generator[g]["test_dataset"] for g in GENERATORS} == {"manifest"}
    assert by_generator["gan_b"]["counts"]["test_real"] == 12  # the zoo's test reals, not CIFAKE's
    (trained,) = Recorder.trained_on
    assert trained <= set(where) and {where[name] for name in trained} == {"real", "gan_a"}


def test_one_run_keeps_a_plain_and_a_cross_dataset_protocol_on_the_same_dataset_apart(registry, tmp_path):
    write_zoo_like(tmp_path / "zoo")
    cifake = write_cifake_like(tmp_path / "cifake")
    manifest = str(tmp_path / "zoo" / "manifest.csv")
    plain = _protocol(name="plain", dataset=manifest, train_generators=["gan_a"])
    cross = _protocol(name="cross", datasets={"train": manifest, "test": [str(cifake)]}, train_generators=["gan_a"])
    summary = run_benchmark([plain, cross], tmp_path / "store", registry=registry, progress=False)
    tested = {(r["protocol"], r["test_generator"], r["test_dataset"]) for r in summary.rows}
    assert tested == {("plain", g, "manifest") for g in GENERATORS} | {("cross", "cifake/sd14", "cifake")}


def test_leave_one_out_over_a_cross_dataset_protocol_tests_the_other_datasets_in_every_fold(registry, tmp_path):
    write_zoo_like(tmp_path / "zoo")
    cifake = write_cifake_like(tmp_path / "cifake")
    manifest = str(tmp_path / "zoo" / "manifest.csv")
    protocol = _protocol(datasets={"train": manifest, "test": [manifest, str(cifake)]}, leave_one_out=True)
    dataset = open_protocol_dataset(protocol, registry)
    for fold in expand_protocol(protocol, dataset):
        assert split_dataset(fold, dataset).test_generators == [fold.held_out, "cifake/sd14"]
    untested = _protocol(datasets={"train": manifest, "test": [str(cifake)]}, leave_one_out=True)
    with pytest.raises(ProtocolError, match=r"list .* in datasets\.test too"):
        expand_protocol(untested, open_protocol_dataset(untested, registry))


def test_a_dataset_used_only_for_training_gives_all_of_itself_to_training(registry, tmp_path):
    cifake = write_cifake_like(tmp_path / "cifake")
    write_zoo_like(tmp_path / "zoo")
    protocol = _protocol(datasets={"train": str(cifake), "test": [str(tmp_path / "zoo" / "manifest.csv")]})
    split = split_dataset(protocol, open_protocol_dataset(protocol, registry))
    assert len(split.train) == 16 and all(str(cifake) in s.display_name for s in split.train)
    assert sorted(split.tests) == [f"manifest/{g}" for g in sorted(GENERATORS)]
    listed = protocol.replace(test_generators=("sd14",))
    with pytest.raises(ProtocolError, match="does not list the training dataset"):
        split_dataset(listed, open_protocol_dataset(listed, registry))


def test_dataset_paths_read_environment_variables(registry, tmp_path, monkeypatch):
    cifake = write_cifake_like(tmp_path / "cifake")
    write_zoo_like(tmp_path / "zoo")
    protocol = _protocol(datasets={"train": "${TINY_CIFAKE}", "test": [str(tmp_path / "zoo" / "manifest.csv")]})
    with pytest.raises(ProtocolError, match="not set: TINY_CIFAKE"):
        open_protocol_dataset(protocol, registry)
    monkeypatch.setenv("TINY_CIFAKE", str(cifake))
    assert open_protocol_dataset(protocol, registry).parts[0][0] == "cifake"


def test_datasets_table_is_checked(tmp_path):
    with pytest.raises(ProtocolError, match="not both"):
        _protocol(dataset="x", datasets={"train": "x", "test": ["y"]})
    with pytest.raises(ProtocolError, match="'train'"):
        _protocol(datasets={"train": "x"})
    with pytest.raises(ProtocolError, match="same dataset twice"):
        _protocol(datasets={"train": "x", "test": ["y", "y"]})


# -- shipped protocols and preprocessing ------------------------------------------------------------------------
def test_shipped_protocols_load_by_bare_name():
    logo = load_protocol("logo")
    assert logo.leave_one_out and logo.dataset == "zoo" and logo.preprocess.mode == "center_crop"
    cross = load_protocol("cifake-to-zoo")
    assert cross.test_datasets and "zoo" in cross.test_datasets
    with pytest.raises(ProtocolError, match="logo"):
        load_protocol("no-such-protocol")


def _disc(width: int, height: int) -> Image.Image:
    """A white disc of diameter 0.8 x the shorter side at the centre of a black image."""
    image = Image.new("RGB", (width, height))
    radius = 0.4 * min(width, height)
    box = (width / 2 - radius, height / 2 - radius, width / 2 + radius, height / 2 + radius)
    ImageDraw.Draw(image).ellipse(box, fill=(255, 255, 255))
    return image


@pytest.mark.parametrize("size", [(128, 64), (64, 128), (96, 96), (48, 24)])
def test_shortest_side_brings_any_shape_to_a_square_without_stretching(size):
    policy = PreprocessPolicy(mode="shortest_side", size=32)
    out = policy.geometry(_disc(*size))
    assert out.size == (32, 32)
    mask = np.asarray(out.convert("L")) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert abs(height - width) <= 1 and abs(height - 0.8 * 32) <= 2  # a disc stays a disc, scaled by 32/shorter side
    array = policy.apply(_disc(*size), Normalisation(size=32))
    assert array.shape == (3, 32, 32)
    assert PreprocessPolicy(mode="resize", size=32).geometry(_disc(128, 64)).size == (32, 32)  # (stretched)
