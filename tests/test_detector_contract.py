"""The contract every registered detector keeps, run with its tiny smoke configuration.

fit on labelled samples, score -> one float per sample (NaN for undecodable images), describe() is
JSON-serialisable, and save -> load -> score gives identical results.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry
from tests.conftest import TinyBackbonePlugin

DETECTORS = Registry(get_plugin_manager(autoload=False, extra_plugins=(TinyBackbonePlugin(),))).names("detector")


def labelled(folder):
    return [Sample(path=p, label=int(p.parent.name == "1_fake"), generator=p.parent.parent.name,
                   family="gan" if p.parent.name == "1_fake" else "real")
            for p in sorted(folder.rglob("*.png"))]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(name, registry, folder_dataset, tmp_path):
    spec = registry.detector(name)
    detector = dfzoo.load_detector(name, **spec.smoke_params)
    detector.setup(RunContext(progress=False, workdir=tmp_path / "work"))
    samples = labelled(folder_dataset)
    train, test = samples[::2], samples[1::2]
    detector.fit(train)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    scores = detector.score(test + [Sample(path=bad, label=1)])
    assert scores.shape == (len(test) + 1,) and scores.dtype.kind == "f"
    assert np.isfinite(scores[:-1]).all() and np.isnan(scores[-1])
    json.dumps(detector.describe())
    saved = detector.save(tmp_path / "saved")
    reloaded = dfzoo.load_fitted(saved)
    reloaded.setup(RunContext(progress=False))
    np.testing.assert_allclose(reloaded.score(test), scores[:-1], rtol=1e-5, atol=1e-6)
