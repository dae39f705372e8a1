"""dfzoo: a zoo of detectors for AI-generated images, and a harness that compares them fairly.

The Python API is as short as the CLI::

    import dfzoo
    detector = dfzoo.load_detector("nn_cosine", backbone="efficientnet_lite0")
    detector.fit(dfzoo.load_dataset("path/to/data").samples)
    scores = detector.score(dfzoo.samples_from("path/to/images"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .calibration import Calibration, Decision, ThresholdPolicy
from .data.sample import DatasetIndex, Sample
from .detector import Detector, ImageDetector, RunContext, read_meta
from .hookspecs import hookimpl, hookspec
from .manager import get_plugin_manager
from .predict import Prediction
from .registry import Registry, RegistryError, current_registry, use_registry
from .spec import BackboneSpec, CommandSpec, DatasetSpec, DetectorSpec, Param, ParamError, PerturbationSpec, WeightsSpec
from .transforms import PreprocessPolicy

__version__ = "0.1.0"


def load_detector(name: str | Path, registry: Registry | None = None, **params: Any) -> Detector:
    """Build an unfitted detector by name; ``params`` override the spec's defaults. A folder a detector was
    saved to loads the fitted detector instead (:func:`load_fitted`).

    Names and values are checked against the spec before the factory runs (:class:`ParamError` lists what is
    allowed). The detector owns its ``params`` afterwards: what its constructor normalised (e.g. a
    comma-separated string made a list) is what it keeps, saves and reports; only names it did not keep at
    all are added from the checked values, so a saved detector can be rebuilt.
    """
    from .detector import META_FILE

    if (Path(name) / META_FILE).is_file():
        return load_fitted(name, registry, **params)
    registry = registry or current_registry()
    spec = registry.detector(str(name))
    merged = spec.check_params(params)
    with use_registry(registry):
        detector = spec.factory(**merged)
    if not isinstance(detector, Detector):
        raise RegistryError(
            f"the factory of detector {name!r} ({registry.provider('detector', name)}) returned "
            f"{type(detector).__name__}, not a dfzoo.Detector"
        )
    detector.name = spec.name
    own = getattr(detector, "params", None)
    own = own if isinstance(own, dict) else {}
    if not set(merged) <= set(own):  # a constructor that dropped some: keep its values, record the rest
        detector.params = {**merged, **own}
    return detector


def load_fitted(path: str | Path, registry: Registry | None = None, **overrides: Any) -> Detector:
    """Load a detector saved with ``Detector.save``; the method must be installed (any plugin works)."""
    meta = read_meta(path)
    detector = load_detector(meta["detector"], registry=registry, **{**meta["params"], **overrides})
    with use_registry(registry or current_registry()):
        detector._load_state(Path(path))
    detector.skipped = dict(meta.get("skipped") or {})  # what fitting could not use, as it was saved
    decision = Decision.load(path)  # the threshold policy and calibration `dfzoo fit` recorded, if any
    detector.threshold_policy, detector.calibration = decision.policy, decision.calibration
    detector.fitted = True
    return detector


def load_dataset(
    source: str | Path, layout: str | None = None, registry: Registry | None = None, **params: Any
) -> DatasetIndex:
    """A dataset by registered name (e.g. ``"zoo"``) or by folder/manifest path (layout detected)."""
    from .data.layouts import open_dataset

    return open_dataset(source, layout=layout, registry=registry or current_registry(), **params)


def samples_from(path: str | Path) -> list[Sample]:
    """Unlabelled samples for every image file under ``path`` (a file or a folder), sorted by path."""
    from .data.layouts import scan_images

    path = Path(path)
    files = [path] if path.is_file() else scan_images(path)
    return [Sample(path=f, label=-1) for f in files]


__all__ = [
    "BackboneSpec",
    "Calibration",
    "CommandSpec",
    "DatasetIndex",
    "DatasetSpec",
    "Detector",
    "DetectorSpec",
    "ImageDetector",
    "Param",
    "ParamError",
    "PerturbationSpec",
    "Prediction",
    "PreprocessPolicy",
    "Registry",
    "RunContext",
    "Sample",
    "ThresholdPolicy",
    "WeightsSpec",
    "current_registry",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_dataset",
    "load_detector",
    "load_fitted",
    "samples_from",
    "use_registry",
]
