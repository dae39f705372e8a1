"""UnivFD (Ojha et al., CVPR 2023, arXiv:2302.10174): a linear probe and nearest neighbours on frozen CLIP
features. The backbone is selectable; the paper's is OpenAI CLIP ViT-L/14."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dfzoo import DetectorSpec, hookimpl
from dfzoo.frozen import frozen_detector_spec

if TYPE_CHECKING:
    from dfzoo.detector import Detector


PAPER = "Ojha et al., Towards Universal Fake Image Detectors, CVPR 2023 (arXiv:2302.10174)"


def _make_probe(**params: Any) -> Detector:
    """UnivFD linear probe: logistic regression on frozen CLIP image features."""
    from dfzoo.plugins.detectors._univfd import LinearProbe

    return LinearProbe(**params)


def _make_nn(**params: Any) -> Detector:
    """UnivFD nearest neighbour: cosine similarity to the nearest fake minus the nearest real feature."""
    from dfzoo.plugins.detectors._univfd import NearestNeighbourCosine

    return NearestNeighbourCosine(**params)


def _univfd_spec(name: str, factory: Callable[..., Detector], **head_params: Any) -> DetectorSpec:
    """UnivFD's two detectors share the frozen CLIP backbone and its parameters; only the head differs."""
    common = {"backbone": "clip_vit_l14", "pretrained": True, "weights_path": None, "batch_size": 64}
    params = {**common, **head_params}
    return frozen_detector_spec(name, factory, paper=PAPER, params=params, smoke_params={"backbone": "tiny_cnn"})


@hookimpl
def dfzoo_detectors():
    yield _univfd_spec("clip_probe", _make_probe, C=1.0, normalize=True, max_iter=2000)
    yield _univfd_spec("nn_cosine", _make_nn, k=1)
