"""The probe's classifiers: twelve scikit-learn models behind one table.

Every classifier scores with ``predict_proba[:, fake]``: a number in [0, 1], higher = more likely fake, and
0.5 is the classifier's own decision threshold. For the SVM the probability comes from Platt (sigmoid)
calibration of the RBF SVC's decision function on held-out folds (``CalibratedClassifierCV(ensemble=False)``:
the SVC itself is fitted on all training data), so its score is a monotone function of the SVM margin.

A fitted classifier is one scikit-learn estimator (:func:`fitted_estimator`); each entry names the types that
estimator holds, which are all a saved probe's classifier may contain when it is loaded (skops, no pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

QDA_REGULARISATION = 0.5


@dataclass(frozen=True)
class ClassifierEntry:
    """A classifier name, a one-line description for result rows, its builder ``build(seed, **options)``, and
    ``fitted_types``: the fully qualified scikit-learn types its fitted estimator holds, the estimator's own type
    first (the trusted-type list when a saved probe is loaded)."""

    name: str
    summary: str
    build: Callable[..., Any]
    fitted_types: tuple[str, ...]


def _bagging(seed: int, **options: Any) -> Any:
    from sklearn.ensemble import BaggingClassifier

    return BaggingClassifier(**{"n_estimators": 10, "random_state": seed, **options})


def _tree(seed: int, **options: Any) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**{"random_state": seed, **options})


def _forest(seed: int, **options: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{"n_estimators": 100, "random_state": seed, **options})


def _lda(seed: int, **options: Any) -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis(**{"solver": "lsqr", "shrinkage": "auto", **options})


def _qda(seed: int, **options: Any) -> Any:
    """QDA regularised towards the identity by 0.5, so it survives collinear features and fewer samples than
    dimensions. Recent scikit-learn (1.9 here) rejects a rank-deficient class covariance even with ``reg_param``, so
    the same blend is made with the eigen solver's fixed ``shrinkage`` where QDA has it; else ``reg_param``.
    """
    import inspect

    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    if "shrinkage" in inspect.signature(QuadraticDiscriminantAnalysis).parameters:
        defaults: dict[str, Any] = {"solver": "eigen", "shrinkage": QDA_REGULARISATION}
    else:
        defaults = {"reg_param": QDA_REGULARISATION}
    return QuadraticDiscriminantAnalysis(**{**defaults, **options})


def _knn(neighbours: int) -> Callable[..., Any]:
    def build(seed: int, **options: Any) -> Any:
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(**{"n_neighbors": neighbours, **options})

    return build


def _logreg(seed: int, **options: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**{"C": 1.0, "max_iter": 2000, "random_state": seed, **options})


class _Delegating:
    """A classifier wrapper that answers like the fitted scikit-learn model it holds in ``model``."""

    model: Any = None

    @property
    def classes_(self) -> np.ndarray:
        return self.model.classes_

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features)


class CalibratedSVM(_Delegating):
    """An RBF SVC whose decision function is Platt-calibrated on up to 3 held-out folds.

    Fewer folds are used when the smaller class is tiny (at least 2 are needed).
    """

    def __init__(self, seed: int = 0, **options: Any) -> None:
        self.seed = seed
        self.options = {"kernel": "rbf", "C": 1.0, "gamma": "scale", **options}
        self.model: Any = None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> CalibratedSVM:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        smallest = int(np.bincount(labels.astype(int)).min())
        if smallest < 2:
            raise ValueError("svm: calibration needs at least 2 training samples of each class")
        folds = StratifiedKFold(n_splits=min(3, smallest), shuffle=True, random_state=self.seed)
        self.model = CalibratedClassifierCV(
            SVC(random_state=self.seed, **self.options), method="sigmoid", cv=folds, ensemble=False
        ).fit(features, labels)
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.model.calibrated_classifiers_[0].estimator.decision_function(features)


def _svm(seed: int, **options: Any) -> Any:
    return CalibratedSVM(seed, **options)


class GradientBoosting(_Delegating):
    """HistGradientBoostingClassifier whose leaf size follows the training set.

    scikit-learn's default ``min_samples_leaf=20`` forbids every split on a small training set (a constant
    0.5 score); here it is ``min(20, max(2, n // 10))`` unless given.
    """

    def __init__(self, seed: int = 0, **options: Any) -> None:
        self.options = {"max_iter": 100, "random_state": seed, **options}
        self.model: Any = None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> GradientBoosting:
        from sklearn.ensemble import HistGradientBoostingClassifier

        options = {"min_samples_leaf": min(20, max(2, len(labels) // 10)), **self.options}
        self.model = HistGradientBoostingClassifier(**options).fit(features, labels)
        return self


def _gboost(seed: int, **options: Any) -> Any:
    return GradientBoosting(seed, **options)


def _nb(seed: int, **options: Any) -> Any:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB(**options)


TREE = "sklearn.tree._tree.Tree"
DECISION_TREE = "sklearn.tree._classes.DecisionTreeClassifier"
KNN = (
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
)

CLASSIFIERS: dict[str, ClassifierEntry] = {
    entry.name: entry
    for entry in (
        ClassifierEntry(
            "bagging",
            "BaggingClassifier of 10 decision trees",
            _bagging,
            ("sklearn.ensemble._bagging.BaggingClassifier", DECISION_TREE, TREE),
        ),
        ClassifierEntry("tree", "DecisionTreeClassifier (unpruned)", _tree, (DECISION_TREE, TREE)),
        ClassifierEntry(
            "forest",
            "RandomForestClassifier, 100 trees",
            _forest,
            ("sklearn.ensemble._forest.RandomForestClassifier", DECISION_TREE, TREE),
        ),
        ClassifierEntry(
            "lda",
            "LinearDiscriminantAnalysis, lsqr solver with Ledoit-Wolf shrinkage",
            _lda,
            ("sklearn.discriminant_analysis.LinearDiscriminantAnalysis",),
        ),
        ClassifierEntry(
            "qda",
            "QuadraticDiscriminantAnalysis, class covariances blended 0.5 with the "
            "identity (eigen-solver shrinkage, or reg_param on old scikit-learn)",
            _qda,
            ("sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis",),
        ),
        ClassifierEntry("knn1", "k-nearest neighbours, k=1 (score = fake share of the neighbour)", _knn(1), KNN),
        ClassifierEntry("knn3", "k-nearest neighbours, k=3 (score = fake share of the neighbours)", _knn(3), KNN),
        ClassifierEntry("knn5", "k-nearest neighbours, k=5 (score = fake share of the neighbours)", _knn(5), KNN),
        ClassifierEntry(
            "logreg",
            "LogisticRegression (linear probe), C=1",
            _logreg,
            ("sklearn.linear_model._logistic.LogisticRegression",),
        ),
        ClassifierEntry(
            "svm",
            "RBF SVC, Platt-calibrated on held-out folds",
            _svm,
            (
                "sklearn.calibration.CalibratedClassifierCV",
                "sklearn.calibration._CalibratedClassifier",
                "sklearn.calibration._SigmoidCalibration",
                "sklearn.svm._classes.SVC",
                "sklearn.model_selection._split.StratifiedKFold",
            ),
        ),
        ClassifierEntry(
            "gboost",
            "HistGradientBoostingClassifier, 100 iterations, leaf size min(20, n/10)",
            _gboost,
            (
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
                "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
            ),
        ),
        ClassifierEntry("nb", "GaussianNB", _nb, ("sklearn.naive_bayes.GaussianNB",)),
    )
}


def make_classifier(name: str, seed: int = 0, **options: Any) -> Any:
    """An unfitted classifier by name (see :data:`CLASSIFIERS`) with its options."""
    try:
        entry = CLASSIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}") from None
    return entry.build(seed, **options)


def fitted_estimator(classifier: Any) -> Any:
    """The one scikit-learn estimator a fitted classifier consists of (a wrapper's ``model``)."""
    return classifier.model if isinstance(classifier, _Delegating) else classifier


def restore_classifier(name: str, estimator: Any, seed: int = 0, **options: Any) -> Any:
    """The classifier ``name`` around a fitted ``estimator`` (what :func:`fitted_estimator` gave)."""
    classifier = make_classifier(name, seed, **options)
    if isinstance(classifier, _Delegating):
        classifier.model = estimator
        return classifier
    return estimator


def fake_probability(model: Any, features: np.ndarray) -> np.ndarray:
    """``predict_proba`` of the fake class (label 1): higher = more likely fake, 0.5 = the model's threshold."""
    proba = model.predict_proba(features)
    classes = list(model.classes_)
    return np.asarray(proba[:, classes.index(1)], dtype=np.float64)
