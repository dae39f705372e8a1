"""The ``probe`` detector: any classifier on frozen features of any backbone (or concatenation of backbones).

The general cell of the frozen-feature grid (``dfzoo grid``): backbone x reduction x classifier, with the
run's train/test perturbations applied to the images before the backbone. Labels read like
``probe[backbone=efficientnet_lite0,reduction=pca,classifier=svm]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfzoo import Param, hookimpl
from dfzoo.frozen import frozen_detector_spec

from ._probe.classifiers import CLASSIFIERS
from ._probe.reductions import REDUCTIONS

if TYPE_CHECKING:
    from dfzoo.detector import Detector

PARAMS: dict[str, Any] = {
    "backbone": "efficientnet_lite0",  # a backbone name, or "a+b" / ["a", "b"] to concatenate features
    "pretrained": True,  # False: random-init backbone (tests; results say random-init)
    "weights_path": None,  # explicit weights file for a single backbone (e.g. an ONNX model)
    "backbone_options": {},  # passed to factories that take options (onnx: size, mean, std, output)
    "standardise": True,  # z-score features on the training set before reduction
    "reduction": "none",  # none | pca | ae
    "n_components": 64,  # pca
    "latent_dim": 32,  # ae
    "reduction_options": {},  # any other option of the reduction (pca whiten; ae epochs, hidden_dim)
    "classifier": "logreg",  # bagging tree forest lda qda knn1 knn3 knn5 logreg svm gboost nb
    "classifier_options": {},  # keyword arguments of the scikit-learn estimator
    "batch_size": 32,  # feature-extraction batch (the run's batch_size wins when set)
}


def _make(**params: Any) -> Detector:
    """Classifier (12 scikit-learn models) on frozen backbone features, with none/PCA/autoencoder reduction;
    backbones can be concatenated (a+b)."""
    from dfzoo.plugins.detectors._probe.detector import ProbeDetector

    return ProbeDetector(**params)


@hookimpl
def dfzoo_detectors():
    yield frozen_detector_spec(
        "probe",
        _make,
        backbone_types=(str, list, tuple),
        params=PARAMS,
        smoke_params={"backbone": "tiny_cnn", "reduction": "pca", "n_components": 8, "classifier": "logreg"},
        tags=("grid",),
        schema={
            "reduction": Param(choices=tuple(REDUCTIONS)),
            "classifier": Param(choices=tuple(CLASSIFIERS)),
            "n_components": Param(types=(int,), optional=True),
            "latent_dim": Param(types=(int,), optional=True),
        },
    )
