"""Features in, fake scores out: standardise -> reduction -> classifier, fitted on training features.

Kept apart from the detector so it can be tested (and reused, e.g. by plots) on plain feature arrays. A fitted
pipeline is saved as data (:meth:`FeaturePipeline.fitted_state`) and rebuilt from it
(:meth:`FeaturePipeline.from_state`), never pickled.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .classifiers import CLASSIFIERS, fake_probability, fitted_estimator, make_classifier, restore_classifier
from .reductions import REDUCTIONS, make_reduction
from .state import FittedState

MEMO_SIZE = 8
_memo: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
_memo_lock = threading.Lock()


class Standardiser:
    """Drops features that are constant on the training set, then (optionally) z-scores the rest.

    Constant features carry nothing, and they make class covariances exactly degenerate (ReLU backbones
    output many all-zero features on small images), which LAPACK's symmetric eigen-solver can fail on (QDA).
    """

    fitted_types: tuple[str, ...] = ("sklearn.preprocessing._data.StandardScaler",)

    def __init__(self, standardise: bool = True) -> None:
        self.standardise = standardise
        self.keep: np.ndarray | None = None
        self.scaler: Any = None

    def fit(self, features: np.ndarray) -> Standardiser:
        self.keep = np.ptp(features, axis=0) > 0
        if not self.keep.any():
            raise ValueError("probe: every feature is constant on the training set")
        if self.standardise:
            from sklearn.preprocessing import StandardScaler

            self.scaler = StandardScaler().fit(features[:, self.keep])
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        out = np.asarray(features, dtype=np.float32)[:, self.keep]
        return self.scaler.transform(out).astype(np.float32) if self.scaler is not None else out

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum()) if self.keep is not None else 0

    def fitted_state(self) -> FittedState:
        if self.keep is None:
            raise RuntimeError("Standardiser.fitted_state() called before fit()")
        return FittedState(
            arrays={"keep": self.keep}, estimators={"model": self.scaler} if self.scaler is not None else {}
        )

    def restore(self, state: FittedState) -> Standardiser:
        keep = state.arrays.get("keep")
        if keep is None or keep.dtype != bool or keep.ndim != 1:
            raise ValueError("probe state: the standardiser's feature mask is missing or not a boolean vector")
        self.keep, self.scaler = keep, state.estimators.get("model")
        return self


def _fit_unsupervised(
    vectors: np.ndarray, standardise: bool, reduction: str, options: dict[str, Any], seed: int
) -> tuple[Standardiser, Any]:
    """The fitted standardiser and reduction for these training features.

    Both are unsupervised and deterministic given (features, options, seed), so a grid that tries twelve
    classifiers on one reduction fits the reduction once: results are memoised by a hash of the features.
    Fitted objects are treated as read-only after fitting.
    """
    digest = hashlib.blake2b(vectors.tobytes(), digest_size=16)
    digest.update(
        json.dumps([vectors.shape, standardise, reduction, options, seed], sort_keys=True, default=str).encode()
    )
    key = digest.hexdigest()
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    scaler = Standardiser(standardise).fit(vectors)
    fitted = make_reduction(reduction, **options).fit(scaler.transform(vectors), seed)
    with _memo_lock:
        _memo[key] = (scaler, fitted)
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return scaler, fitted


class FeaturePipeline:
    """``fit(X, y)`` then ``score(X)`` in [0, 1] (higher = more likely fake, 0.5 = the classifier's threshold)."""

    def __init__(
        self,
        reduction: str = "none",
        classifier: str = "logreg",
        *,
        standardise: bool = True,
        reduction_options: dict[str, Any] | None = None,
        classifier_options: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
        if classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {classifier!r}; known: {', '.join(CLASSIFIERS)}")
        self.reduction_name, self.classifier_name = reduction, classifier
        self.standardise = standardise
        self.reduction_options = dict(reduction_options or {})
        self.classifier_options = dict(classifier_options or {})
        self.seed = seed
        self.scaler: Any = None
        self.reduction: Any = None
        self.classifier: Any = None
        self.dims: tuple[int, int] | None = None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> FeaturePipeline:
        labels = np.asarray(labels).astype(int)
        if len(np.unique(labels)) < 2:
            raise ValueError("probe: training needs samples of both classes")
        vectors = np.ascontiguousarray(features, dtype=np.float32)
        self.scaler, self.reduction = _fit_unsupervised(
            vectors, self.standardise, self.reduction_name, self.reduction_options, self.seed
        )
        reduced = self.reduction.transform(self.scaler.transform(vectors))
        self.classifier = make_classifier(self.classifier_name, self.seed, **self.classifier_options)
        self.classifier.fit(reduced, labels)
        self.dims = (int(vectors.shape[1]), int(reduced.shape[1]))
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardised and reduced features (what the classifier sees)."""
        return self.reduction.transform(self.scaler.transform(features))

    def score(self, features: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError("FeaturePipeline.score before fit")
        return fake_probability(self.classifier, self.transform(features))

    # -- saved as data ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor's arguments as JSON values."""
        return {
            "reduction": self.reduction_name,
            "classifier": self.classifier_name,
            "standardise": self.standardise,
            "reduction_options": self.reduction_options,
            "classifier_options": self.classifier_options,
            "seed": self.seed,
        }

    def fitted_state(self) -> FittedState:
        """The fitted pipeline as JSON values, plain arrays and scikit-learn estimators."""
        if self.classifier is None:
            raise RuntimeError("FeaturePipeline.fitted_state before fit")
        classifier = FittedState(estimators={"model": fitted_estimator(self.classifier)})
        return FittedState.join(
            {
                "scaler": self.scaler.fitted_state(),
                "reduction": self.reduction.fitted_state(),
                "classifier": classifier,
            },
            config=self.config(),
            dims=list(self.dims or ()),
        )

    @staticmethod
    def estimator_types(values: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        """For a saved pipeline's values: each estimator slot and the types it may hold (its own type first).

        Only the parts the saved configuration names are trusted: a saved logistic regression may not hold trees.
        """
        config = values["config"]
        if config["classifier"] not in CLASSIFIERS or config["reduction"] not in REDUCTIONS:
            raise ValueError(
                f"probe state: unknown classifier {config['classifier']!r} or reduction {config['reduction']!r}"
            )
        slots = {"classifier.model": CLASSIFIERS[config["classifier"]].fitted_types}
        if config["standardise"]:
            slots["scaler.model"] = Standardiser.fitted_types
        if REDUCTIONS[config["reduction"]].fitted_types:
            slots["reduction.model"] = REDUCTIONS[config["reduction"]].fitted_types
        return slots

    @classmethod
    def from_state(cls, state: FittedState) -> FeaturePipeline:
        """The fitted pipeline that :meth:`fitted_state` described."""
        pipeline = cls(**state.values["config"])
        pipeline.scaler = Standardiser(pipeline.standardise).restore(state.part("scaler"))
        pipeline.reduction = make_reduction(pipeline.reduction_name, **pipeline.reduction_options).restore(
            state.part("reduction")
        )
        pipeline.classifier = restore_classifier(
            pipeline.classifier_name,
            state.part("classifier").estimators["model"],
            pipeline.seed,
            **pipeline.classifier_options,
        )
        dims: Sequence[int] = state.values.get("dims") or ()
        pipeline.dims = (int(dims[0]), int(dims[1])) if len(dims) == 2 else None
        return pipeline

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "standardise": self.standardise,
            "reduction": self.reduction_name,
            "reduction_options": dict(self.reduction_options),
            "classifier": self.classifier_name,
            "classifier_summary": CLASSIFIERS[self.classifier_name].summary,
            "classifier_options": dict(self.classifier_options),
        }
        if self.reduction is not None:
            out["reduction_fitted"] = self.reduction.describe()
        if self.dims is not None:
            out["feature_dim"], out["reduced_dim"] = self.dims
            out["constant_features_dropped"] = self.scaler.n_dropped
        return out
