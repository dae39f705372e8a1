"""The probe detector: frozen backbone(s) -> standardise -> reduction -> classifier.

Features go through the shared feature cache with the run's train perturbation at fit time and its test
perturbation at scoring time. The fitted pipeline (scaler, reduction, classifier) is saved without pickle: JSON,
plain arrays and a skops file that loads only the scikit-learn types the saved configuration can hold (see
:mod:`.state`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.data.sample import Sample
from dfzoo.frozen import FrozenFeatureDetector

from .pipeline import FeaturePipeline
from .reductions import REDUCTIONS
from .sources import BackboneSet, FeatureSet, backbone_label
from .state import read_state, read_values, write_state

LEGACY_STATE_FILE = "probe.joblib"  # the pickle of format 1; a folder holding it is refused when loaded
REDUCTION_SHORTCUTS = ("n_components", "latent_dim")  # top-level params routed to the reduction that takes them
SCORE_RULE = "predict_proba of the fake class in [0, 1]; 0.5 is the classifier's own threshold"


def probe_label(params: dict[str, Any]) -> str:
    """``probe[backbone=...,reduction=...,classifier=...]``: a probe named by its parts."""
    return (
        f"probe[backbone={backbone_label(params.get('backbone', ''))},"
        f"reduction={params.get('reduction', 'none')},classifier={params.get('classifier', 'logreg')}]"
    )


class ProbeDetector(FrozenFeatureDetector):
    """A classifier on frozen features; see :mod:`dfzoo.plugins.detectors.probe` for the parameters.

    Built on :class:`dfzoo.frozen.FrozenFeatureDetector` (label checks, undecodable images, embed); the
    backbone may be a concatenation, extracted part by part through the shared cache.
    """

    name = "probe"
    trainable = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pipeline = self._new_pipeline()  # validates reduction and classifier names early
        self._backbones: BackboneSet | None = None
        self.trained_on: dict[str, Any] = {}

    def _new_pipeline(self, seed: int = 0) -> FeaturePipeline:
        reduction = str(self.params.get("reduction", "none"))
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
        accepted = inspect.signature(REDUCTIONS[reduction]).parameters
        shortcuts = {k: self.params[k] for k in REDUCTION_SHORTCUTS if k in accepted and self.params.get(k) is not None}
        return FeaturePipeline(
            reduction,
            str(self.params.get("classifier", "logreg")),
            standardise=bool(self.params.get("standardise", True)),
            reduction_options={**shortcuts, **(self.params.get("reduction_options") or {})},
            classifier_options=self.params.get("classifier_options") or {},
            seed=seed,
        )

    @property
    def label(self) -> str:
        return probe_label(self.params)

    @property
    def backbones(self) -> BackboneSet:
        if self._backbones is None:
            self._backbones = BackboneSet(
                self.params["backbone"],
                pretrained=bool(self.params["pretrained"]),
                weights_path=self.params.get("weights_path") or None,
                options=self.params.get("backbone_options") or None,
                device=self.context.device,
            )
        return self._backbones

    @property
    def backbone(self) -> Any:
        """The single backbone (a concatenation has no single one: use :attr:`backbones`)."""
        if len(self.backbones.backbones) != 1:
            raise AttributeError(f"{self.backbones.label} is a concatenation; use .backbones")
        return self.backbones.backbones[0]

    def features(self, samples: Sequence[Sample], *, training: bool) -> FeatureSet:
        """Features through every backbone part (each sample's view carries the run's perturbation)."""
        context = self.context
        result = self.backbones.extract(samples, context, context.batch_size or self.params.get("batch_size"))
        for position, reason in result.errors.items():
            self.skipped[samples[position].display_name] = reason
        return result

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> None:
        self.pipeline = self._new_pipeline(self.context.seed).fit(features, labels)
        self.trained_on = {
            "n_train": len(labels),
            "n_train_fake": int(np.sum(labels == 1)),
            "backbone_weights": self.backbones.identities,
            "train_perturbation": self.train_perturbation,
        }

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline.score(features)

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        self._require_fitted()
        self._check_backbones()
        return super().score(samples)

    def describe(self) -> dict[str, Any]:
        backbones = self.backbones
        out = {
            **backbones.describe(),
            "pretrained": all(b.pretrained for b in backbones.backbones),
            "preprocess": self.context.preprocess.key,
            "label": self.label,
            **self.pipeline.describe(),
            "score_rule": SCORE_RULE,
            "threshold": 0.5,
        }
        if self.trained_on:
            out["trained_on"] = dict(self.trained_on)
        return out

    def _check_backbones(self) -> None:
        """A loaded probe must see the backbone weights it was trained on, or its features mean nothing."""
        saved = self.trained_on.get("backbone_weights")
        if saved and list(saved) != self.backbones.identities:
            raise ValueError(
                f"probe was trained on backbone weights {saved}, but this machine resolves {self.backbones.identities}"
            )

    def _save_state(self, folder: Path) -> None:
        state = self.pipeline.fitted_state()
        state.values["trained_on"] = self.trained_on
        write_state(folder, state, FeaturePipeline.estimator_types(state.values))
        (folder / LEGACY_STATE_FILE).unlink(missing_ok=True)  # re-fitted over an old save: the folder loads again

    def _load_state(self, folder: Path) -> None:
        values = read_values(folder)
        state = read_state(folder, values, FeaturePipeline.estimator_types(values))
        self.pipeline, self.trained_on = FeaturePipeline.from_state(state), dict(values.get("trained_on") or {})
