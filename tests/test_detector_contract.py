"""The contract every registered detector keeps (the kit plugin authors get as ``dfzoo.testing``), run with
each detector's tiny smoke configuration; and the kit itself catches the mistakes it exists for."""

from __future__ import annotations

import numpy as np
import pytest

import dfzoo
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry
from dfzoo.testing import ContractError, check_detector
from tests.kit import TinyBackbonePlugin

DETECTORS = Registry(get_plugin_manager(autoload=False, extra_plugins=(TinyBackbonePlugin(),))).names("detector")


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(name, registry, tmp_path):
    report = check_detector(name, tmp_path, registry=registry)
    assert report.ok and len(report.passed) == 8


class PathReader(dfzoo.Detector):
    """The mistake the kit exists for: reads files itself, so it never sees the harness's perturbations."""

    trainable = False

    def score(self, samples):
        from dfzoo.data import load_image

        return np.array([np.asarray(load_image(s.path)).mean() for s in samples], dtype=np.float64)


class BatchMean(dfzoo.ImageDetector):
    """Another mistake: a score that depends on its batch-mates (here, centred on the batch mean)."""

    def score(self, samples):
        raw = np.full(len(samples), np.nan)
        for position, image in self.images(samples):
            raw[position] = np.asarray(image).mean()
        return raw - np.nanmean(raw)

    def score_image(self, image):
        raise NotImplementedError


class BrokenDetectors:
    """A plugin offering the two broken detectors above."""

    @dfzoo.hookimpl
    def dfzoo_detectors(self):
        for name, factory, reads_files in (
            ("path_reader", PathReader, True),
            ("path_reader_hidden", PathReader, False),
            ("batch_mean", BatchMean, False),
        ):
            yield dfzoo.DetectorSpec(
                name=name,
                summary="a broken test detector",
                factory=factory,
                trainable=False,
                weight_params=(),
                reads_files=reads_files,
            )


@pytest.fixture
def broken():
    return Registry(get_plugin_manager(autoload=False, extra_plugins=(BrokenDetectors(),)))


def test_the_kit_names_a_detector_that_ignores_perturbations(broken, tmp_path):
    report = check_detector("path_reader", tmp_path, registry=broken, raise_on_failure=False)
    assert list(report.failed) == [
        "an undecodable image is NaN, not an error",
        "a harness perturbation changes some score",
    ]
    # without reads_files the harness hides paths: the same code fails at once, with a message saying why
    with pytest.raises(ContractError, match=r"sample\.load"):
        check_detector("path_reader_hidden", tmp_path / "hidden", registry=broken)


def test_the_kit_names_a_batch_dependent_score(broken, tmp_path):
    report = check_detector("batch_mean", tmp_path, registry=broken, raise_on_failure=False)
    assert list(report.failed) == ["a score does not depend on its batch"]


def test_pytest_plugin_fixture_runs_the_kit(registry, dfzoo_check_detector):
    assert dfzoo_check_detector("nn_cosine", registry=registry).ok
