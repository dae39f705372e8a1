"""The harness owns fairness: perturbations reach every detector or its robustness rows are refused, a
plugin that exits becomes an error row, and images a detector could not train on are counted."""

from __future__ import annotations

import numpy as np
import pytest

import dfzoo
from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from dfzoo.testing import write_folder_dataset


class FileSize(dfzoo.Detector):
    """Reads files itself (declared): the size of the PNG file, which no perturbation of the harness changes."""

    trainable = False

    def score(self, samples):
        return np.array([float(s.path.stat().st_size) for s in samples])


class Quitter(dfzoo.ImageDetector):
    """Calls sys.exit() while scoring, as a careless plugin might."""

    def score_image(self, image):
        raise SystemExit(3)


class Brightness(dfzoo.Detector):
    """Trainable: learns the mean brightness of the reals; the images it could not decode are recorded."""

    def fit(self, train):
        values = [np.asarray(image).mean() for _, image in self.images(train)]
        self.mid = float(np.mean(values))
        self.fitted = True
        return self

    def score(self, samples):
        out = np.full(len(samples), np.nan)
        for position, image in self.images(samples):
            out[position] = np.asarray(image).mean() - self.mid
        return out

    def _save_state(self, folder):
        (folder / "mid.txt").write_text(repr(self.mid))

    def _load_state(self, folder):
        self.mid = float((folder / "mid.txt").read_text())


class Plugin:
    @dfzoo.hookimpl
    def dfzoo_detectors(self):
        yield dfzoo.DetectorSpec(
            name="file_size", summary="file size", factory=FileSize, trainable=False, weight_params=(), reads_files=True
        )
        yield dfzoo.DetectorSpec(name="quitter", summary="exits", factory=Quitter, trainable=False, weight_params=())
        yield dfzoo.DetectorSpec(name="brightness", summary="brightness", factory=Brightness, weight_params=())


@pytest.fixture
def setup(tmp_path):
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(Plugin(),)))
    data = write_folder_dataset(tmp_path / "data")
    with use_registry(registry):
        yield registry, data


def run(registry, data, tmp_path, detector, perturbations=("none", "jpeg:quality=10")):
    protocol = parse_protocol(
        {
            "name": "fair",
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "test_generators": ["gan_a"],
            "bootstrap": 10,
            "perturbations": list(perturbations),
            "detectors": [{"name": detector}],
        }
    )
    return run_benchmark(protocol, tmp_path / f"store-{detector}", registry=registry, progress=False)


def test_a_file_reader_gets_no_robustness_row_for_a_perturbation_it_cannot_see(setup, tmp_path):
    registry, data = setup
    rows = {r["test_perturbation"]: r for r in run(registry, data, tmp_path, "file_size").rows}
    assert rows["none"]["status"] == "ok"
    assert rows["jpeg:quality=10"]["status"] == "skipped"
    assert "does not reach file_size" in rows["jpeg:quality=10"]["reason"]


def test_system_exit_in_a_plugin_becomes_an_error_row(setup, tmp_path):
    registry, data = setup
    summary = run(registry, data, tmp_path, "quitter", perturbations=("none",))
    assert summary.rows_error == 1 and summary.rows[0]["error"]["type"] == "SystemExit"


def test_undecodable_training_images_are_counted_in_every_row(setup, tmp_path):
    registry, data = setup
    for name in ("a.png", "b.png"):
        (data / "gan_a" / "0_real" / f"zz_{name}").write_bytes(b"not an image")
    summary = run(registry, data, tmp_path, "brightness", perturbations=("none",))
    row = summary.rows[0]
    assert row["status"] == "ok"
    assert sum(row["train_skipped"].values()) == 2
    assert row["train_used"]["train_real_used"] == row["counts"]["train_real"] - 2
    again = run(registry, data, tmp_path, "brightness", perturbations=("none", "blur:sigma=1"))
    reused = next(r for r in again.rows if r["test_perturbation"] != "none")
    assert reused["model_reused"] and sum(reused["train_skipped"].values()) == 2
