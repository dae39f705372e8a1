"""Base class for detectors that learn on frozen backbone features (UnivFD probes, the probe suite).

It loads the backbone by name, extracts features through the shared cache with the run's preprocessing and
perturbations, drops undecodable images, and leaves subclasses only the part that is theirs: what to learn
from a feature matrix and how to score one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .data.sample import Sample, perturbation_keys
from .detector import Detector
from .features import Backbone, Features, extract_features, load_backbone
from .spec import DetectorSpec, Param


class FrozenFeatureDetector(Detector):
    """``fit_features(X, y)`` / ``score_features(X)`` on features of a frozen backbone.

    Params: ``backbone`` (a registered name, or a :class:`Backbone` object for tests and notebooks),
    ``pretrained`` (False builds the architecture randomly initialised; results say so), ``weights_path``
    (explicit weights file), ``batch_size``.
    """

    def __init__(
        self,
        backbone: str | Backbone = "efficientnet_lite0",
        pretrained: bool = True,
        weights_path: str | None = None,
        batch_size: int = 64,
        **params: Any,
    ) -> None:
        super().__init__(
            backbone=backbone, pretrained=pretrained, weights_path=weights_path, batch_size=batch_size, **params
        )
        self._backbone: Backbone | None = backbone if isinstance(backbone, Backbone) else None
        self.train_perturbation = "none"

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = load_backbone(
                self.params["backbone"],
                pretrained=self.params["pretrained"],
                weights_path=self.params["weights_path"],
                device=self.context.device,
            )
        return self._backbone

    def features(self, samples: Sequence[Sample], *, training: bool) -> Features:
        """Features of ``samples`` with the run's preprocessing (each sample view carries its perturbation)."""
        context = self.context
        result = extract_features(
            samples,
            self.backbone,
            policy=context.preprocess,
            batch_size=context.batch_size or self.params["batch_size"],
            cache=context.cache,
            progress=context.progress,
            desc=f"{self.name} {'train' if training else 'score'} features",
        )
        for position, reason in result.errors.items():
            self.record_skip(samples[position], reason)
        return result

    def shared_work(self) -> str | None:
        """The backbone pass: backbone(s), weights and options, and the run's preprocessing."""
        if not isinstance(self.params["backbone"], (str, list, tuple)) or not self.context.cache:
            return None
        keys = ("backbone", "pretrained", "weights_path", "backbone_options")
        return json.dumps(["features", *(self.params.get(k) for k in keys), self.context.preprocess.key], default=str)

    def precompute(self, samples: Sequence[Sample]) -> None:
        self.features(samples, training=False)

    def fit(self, train: Sequence[Sample]) -> FrozenFeatureDetector:
        labels = np.asarray([s.label for s in train])
        if set(np.unique(labels)) - {0, 1} or len(np.unique(labels)) < 2:
            raise ValueError(
                f"{self.name}: training needs both real (0) and fake (1) samples; "
                f"got labels {sorted(set(labels.tolist()))}"
            )
        self.train_perturbation = perturbation_keys(train)
        result = self.features(train, training=True)
        ok = result.ok
        self.fit_features(result.vectors[ok], labels[ok])
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        self._require_fitted()
        result = self.features(samples, training=False)
        scores = np.full(len(samples), np.nan, dtype=np.float64)
        ok = result.ok
        if ok.any():
            scores[ok] = self.score_features(result.vectors[ok])
        return scores

    def embed(self, samples: Sequence[Sample]) -> np.ndarray:
        """The frozen features themselves (for t-SNE / PCA plots)."""
        return self.features(samples, training=False).vectors

    def describe(self) -> dict[str, Any]:
        backbone = self.backbone
        return {**backbone.describe(), "pretrained": backbone.pretrained, "preprocess": self.context.preprocess.key}

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def score_features(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def frozen_detector_spec(
    name: str,
    factory: Callable[..., Detector],
    *,
    backbone_types: tuple[type, ...] = (str,),
    schema: Mapping[str, Param] | None = None,
    tags: tuple[str, ...] = (),
    **fields: Any,
) -> DetectorSpec:
    """The spec of a detector on a frozen backbone's features: its ``backbone`` parameter names a registered
    backbone (a typo fails before any work; whether its weights resolve decides ``dfzoo list --offline``) and
    it is tagged ``frozen-features``; ``schema`` and ``tags`` add the detector's own, ``fields`` are any other
    :class:`DetectorSpec` fields."""
    backbone = Param(types=backbone_types, names="backbone")
    return DetectorSpec(
        name=name,
        factory=factory,
        weight_params=("backbone",),
        tags=("frozen-features", *tags),
        param_schema={"backbone": backbone, **(schema or {})},
        **fields,
    )
