"""fusion: score-level ensembles of registered detectors, with cheap test members."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from dfzoo.manager import get_plugin_manager
from dfzoo.plugins.detectors.fusion import FusionMemberError, parse_members
from dfzoo.registry import Registry, use_registry
from dfzoo.spec import ParamError
from dfzoo.testing import check_detector, labelled_samples, write_folder_dataset


def _energy(sample: Sample) -> float:
    grey = np.asarray(sample.load().convert("L"), dtype=np.float64) / 255.0
    return float(np.log(np.mean(np.diff(grey, axis=1) ** 2) + 1e-8))


def _scores(samples: Sequence[Sample], score: Callable[[Sample], float]) -> np.ndarray:
    """``score`` of each sample, NaN where the image does not decode."""
    out = np.full(len(samples), np.nan)
    for position, sample in enumerate(samples):
        with contextlib.suppress(dfzoo.data.ImageDecodeError):
            out[position] = score(sample)
    return out


class Energy(dfzoo.Detector):
    """Log high-frequency energy (not a probability). Records what it is fitted on and asked to score."""

    seen: ClassVar[dict[str, list[set[str]]]] = {"fit": [], "score": []}

    def fit(self, train: Sequence[Sample]) -> Energy:
        if self.params.get("fail") == "fit":
            raise RuntimeError("exploded on purpose")
        Energy.seen["fit"].append({s.display_name for s in train})
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        if self.params.get("fail") == "score":
            raise RuntimeError("exploded on purpose")
        Energy.seen["score"].append({s.display_name for s in samples})
        return _scores(samples, _energy)

    def describe(self) -> dict:
        return {"weights": "none"}


class EnergyProbability(dfzoo.Detector):
    """A probability: the energy squashed around the midpoint of the class means learnt in fit."""

    def fit(self, train: Sequence[Sample]) -> EnergyProbability:
        energies = np.array([_energy(s) for s in train])
        labels = np.array([s.label for s in train])
        self.mid = float((energies[labels == 0].mean() + energies[labels == 1].mean()) / 2)
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        if self.params.get("fail") == "score":
            raise RuntimeError("exploded on purpose")
        return _scores(samples, lambda sample: 1 / (1 + np.exp(-(_energy(sample) - self.mid))))

    def describe(self) -> dict:
        return {"weights": "none", "threshold": 0.5}

    def _save_state(self, folder: Path) -> None:
        (folder / "mid.json").write_text(json.dumps(self.mid))

    def _load_state(self, folder: Path) -> None:
        self.mid = json.loads((folder / "mid.json").read_text())


class Members:
    @dfzoo.hookimpl
    def dfzoo_detectors(self):
        yield dfzoo.DetectorSpec(name="energy", summary="tests", factory=Energy, params={"fail": ""})
        yield dfzoo.DetectorSpec(name="energy_p", summary="tests", factory=EnergyProbability, params={"fail": ""})


@pytest.fixture
def registry() -> Registry:
    import dfzoo.plugins.detectors.fusion as fusion
    import dfzoo.plugins.detectors.npr as npr
    import dfzoo.plugins.perturbations.standard as perturbations

    reg = Registry(
        get_plugin_manager(builtins=False, autoload=False, extra_plugins=(perturbations, npr, fusion, Members()))
    )
    Energy.seen = {"fit": [], "score": []}
    with use_registry(reg):
        yield reg


@pytest.fixture
def task(tmp_path) -> tuple[list[Sample], list[Sample]]:
    samples = [s.view(None) for s in labelled_samples(write_folder_dataset(tmp_path / "data", per_class=16))]
    return samples[::2], samples[1::2]


def _fusion(**params) -> dfzoo.Detector:
    return dfzoo.load_detector("fusion", **params).setup(RunContext(progress=False, device="cpu"))


def test_members_are_written_as_names_labels_or_tables():
    assert parse_members("npr, clip_probe[backbone=efficientnet_lite0,C=0.5,layers=[1, 2]]") == [
        {"name": "npr", "params": {}},
        {"name": "clip_probe", "params": {"backbone": "efficientnet_lite0", "C": 0.5, "layers": [1, 2]}},
    ]
    assert parse_members(["npr", {"name": "energy", "params": {"fail": ""}}]) == [
        {"name": "npr", "params": {}},
        {"name": "energy", "params": {"fail": ""}},
    ]
    with pytest.raises(ValueError, match="key=value"):
        parse_members("npr[epochs]")
    with pytest.raises(ValueError, match="at least one"):
        parse_members("")


def test_unknown_members_or_member_params_fail_at_construction(registry):
    with pytest.raises(ParamError, match="fusion member 'nope'"):
        _fusion(members="energy,nope")
    with pytest.raises(ParamError, match=r"fusion member 'npr\[width_typo=3\]'"):
        _fusion(members="npr[width_typo=3]")


@pytest.mark.parametrize("member", ["energy", "energy_p"])
def test_mean_logit_of_one_member_ranks_as_that_member(registry, task, member):
    train, test = task
    fused = _fusion(members=member, rule="mean_logit").fit(train)
    alone = dfzoo.load_detector(member).fit(train).score(test)
    scores = fused.score(test)
    assert np.array_equal(np.argsort(scores, kind="stable"), np.argsort(alone, kind="stable"))
    scale = fused.describe()["members"][0]["scale"]
    assert scale == "logit" if member == "energy_p" else scale.startswith("(s - ")  # z-scored on calibration


def test_a_member_that_raises_gives_an_error_naming_it_and_the_stage(registry, task):
    train, test = task
    with pytest.raises(FusionMemberError, match=r"member 'energy\[fail=fit\]' failed in fit: RuntimeError: exploded"):
        _fusion(members="energy_p,energy[fail=fit]").fit(train)
    with pytest.raises(FusionMemberError, match=r"member 'energy\[fail=score\]' failed in fit \(calibration"):
        _fusion(members="energy_p,energy[fail=score]", rule="stacked").fit(train)
    fitted = _fusion(members="energy_p,energy_p[fail=score]").fit(train)  # probabilities, mean_logit: no calibration
    with pytest.raises(FusionMemberError, match=r"member 'energy_p\[fail=score\]' failed in score: RuntimeError"):
        fitted.score(test)


def test_stacked_fits_members_and_the_regression_on_disjoint_parts_of_the_training_set(registry, task):
    train, test = task
    fused = _fusion(members="energy,energy_p", rule="stacked", holdout_fraction=0.25).fit(train)
    (fitted_on,) = Energy.seen["fit"]
    (held_out,) = Energy.seen["score"]  # the only scoring during fit: the held-out part, for the regression
    train_files = {s.display_name for s in train}
    assert fitted_on | held_out == train_files and not fitted_on & held_out
    assert len(held_out) == len(train) // 4
    coef = fused.describe()["stack_coef"]
    scores = fused.score(test)
    assert fused.describe()["stack_coef"] == coef and fused.describe()["threshold"] == 0.5
    assert np.all((scores > 0) & (scores < 1))
    assert Energy.seen["score"][1] == {s.display_name for s in test}  # test images come only at score time


@pytest.mark.parametrize("rule", ["mean_logit", "max", "rank_mean", "stacked"])
def test_every_rule_keeps_the_detector_contract(registry, tmp_path, rule):
    report = check_detector("fusion", tmp_path, params={"members": "energy,energy_p", "rule": rule}, registry=registry)
    assert report.ok, str(report)


def test_rank_mean_ranks_against_the_calibration_scores(registry, task):
    train, test = task
    fused = _fusion(members="energy,energy_p", rule="rank_mean").fit(train)
    scores = fused.score(test)
    assert np.all((scores >= 0) & (scores <= 1))
    assert fused.describe()["calibration_images"] == len(train) and "threshold" not in fused.describe()


def test_saved_fusion_holds_the_members_own_saves_and_no_pickle(registry, task, tmp_path):
    train, test = task
    fused = _fusion(members="energy,energy_p", rule="stacked").fit(train)
    folder = fused.save(tmp_path / "saved")
    assert sorted(p.name for p in (folder / "members").iterdir()) == ["0-energy", "1-energy_p"]
    again = dfzoo.load_fitted(folder).setup(RunContext(progress=False))
    assert np.allclose(again.score(test), fused.score(test))
    described = again.describe()
    assert [m["label"] for m in described["members"]] == ["energy", "energy_p"]
    assert described["members"][1]["describe"]["threshold"] == 0.5
